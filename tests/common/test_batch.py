"""Reading BATCH manifests: every SDK encoding, fsspec URLs, and clear errors."""

from __future__ import annotations

import datetime as dt
import gzip
import uuid
from decimal import Decimal
from pathlib import Path

import fsspec
import pytest

from braze_mixpanel_common.batch import BatchFileError, BatchManifest, BatchReader
from tests.support.batch import batch_msg, write_batch_file

RECORDS = [
    {"id": i, "name": f"user-{i}", "score": 1.5 + i, "tags": ["a", "b"], "nested": {"k": i}}
    for i in range(5)
]
ENCODINGS = [(f, c) for f in ("jsonl", "parquet") for c in ("gzip", "none")]


@pytest.mark.parametrize(("fmt", "compression"), ENCODINGS)
def test_every_encoding_yields_every_record_in_order(tmp_path: Path, fmt, compression) -> None:
    urls = [
        write_batch_file(tmp_path, "part-1", RECORDS[:3], fmt, compression),
        write_batch_file(tmp_path, "part-2", RECORDS[3:], fmt, compression),
    ]
    manifest = BatchManifest.from_message(batch_msg("s", urls, fmt, compression))
    reader = BatchReader()
    got = list(reader.records(manifest))
    assert reader.files_read == 2
    # Floats arrive as Decimal, as the targets' message reader parses them from RECORD lines.
    assert got == [{**r, "score": Decimal(str(r["score"]))} for r in RECORDS]


def test_gzip_is_detected_from_the_bytes_not_the_message(tmp_path: Path) -> None:
    # The SDK's JSONL batcher gzips every file, even when the tap's encoding says "none".
    url = write_batch_file(tmp_path, "f", RECORDS, "jsonl", "gzip")
    manifest = BatchManifest.from_message(batch_msg("s", [url], "jsonl", "none"))
    assert len(list(BatchReader().records(manifest))) == len(RECORDS)


def test_gzipped_parquet_file_is_read(tmp_path: Path) -> None:
    url = write_batch_file(tmp_path, "f", RECORDS, "parquet", "none")
    path = Path(url.removeprefix("file://"))
    path.write_bytes(gzip.compress(path.read_bytes()))
    manifest = BatchManifest.from_message(batch_msg("s", [url], "parquet", "gzip"))
    assert [r["id"] for r in BatchReader().records(manifest)] == [0, 1, 2, 3, 4]


def test_parquet_timestamps_become_iso_strings(tmp_path: Path) -> None:
    when = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
    url = write_batch_file(tmp_path, "f", [{"at": when, "day": when.date()}], "parquet", "none")
    manifest = BatchManifest.from_message(batch_msg("s", [url], "parquet", "none"))
    assert list(BatchReader().records(manifest)) == [
        {"at": "2026-03-01T12:30:00+00:00", "day": "2026-03-01"}
    ]


def test_plain_paths_and_fsspec_urls_with_options(tmp_path: Path) -> None:
    url = write_batch_file(tmp_path, "f", RECORDS, "jsonl", "none")
    plain = url.removeprefix("file://")
    with fsspec.open("memory://bucket/f.jsonl", "wb") as f:
        f.write(Path(plain).read_bytes())
    manifest = BatchManifest.from_message(
        batch_msg("s", [plain, "memory://bucket/f.jsonl"], "jsonl", "none")
    )
    assert len(list(BatchReader({"skip_instance_cache": True}).records(manifest))) == 10


def test_a_large_file_is_streamed(tmp_path: Path) -> None:
    records = [{"i": i} for i in range(20_000)]
    url = write_batch_file(tmp_path, "big", records, "parquet", "gzip")
    manifest = BatchManifest.from_message(batch_msg("s", [url], "parquet", "gzip"))
    iterator = BatchReader().records(manifest)
    assert next(iterator) == {"i": 0}  # the first record arrives before the file is decoded
    assert sum(1 for _ in iterator) == 19_999


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ({"format": "csv", "compression": "none"}, "encoding csv (none) cannot be read"),
        ({"format": "jsonl", "compression": "zstd"}, "encoding jsonl (zstd) cannot be read"),
        ({"compression": "gzip"}, "encoding  (gzip) cannot be read"),
    ],
)
def test_unknown_encodings_fail_before_any_file_is_read(encoding, expected) -> None:
    message = {"type": "BATCH", "stream": "s", "encoding": encoding, "manifest": ["file:///x"]}
    with pytest.raises(BatchFileError) as err:
        BatchManifest.from_message(message)
    assert expected in str(err.value)
    assert "stream 's'" in str(err.value)
    assert "file:///x" in str(err.value)


@pytest.mark.parametrize("manifest", [None, "file:///x", [1], [""]])
def test_malformed_manifest_is_refused(manifest) -> None:
    message = batch_msg("s", [])
    message["manifest"] = manifest
    with pytest.raises(BatchFileError, match="'manifest' must be a list of file URLs"):
        BatchManifest.from_message(message)


def _read(urls: list[str], fmt: str = "jsonl", compression: str = "none") -> list[dict]:
    manifest = BatchManifest.from_message(batch_msg("events", urls, fmt, compression))
    return list(BatchReader().records(manifest))


def test_missing_file_names_the_file_and_encoding(tmp_path: Path) -> None:
    url = (tmp_path / "gone.jsonl.gz").as_uri()
    with pytest.raises(BatchFileError) as err:
        _read([url], "jsonl", "gzip")
    text = str(err.value)
    assert url in text
    assert "jsonl (gzip)" in text
    assert "cannot be opened" in text
    assert "FileNotFoundError" in text


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(BatchFileError, match=r"nosuch://b/f.jsonl \(jsonl \(none\)\) cannot be"):
        _read(["nosuch://b/f.jsonl"])


def test_bad_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(BatchFileError, match=r"f.jsonl \(jsonl \(none\)\): line 2 cannot be read"):
        _read([path.as_uri()])


def test_a_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(BatchFileError, match="line 2 is a JSON list, not an object"):
        _read([path.as_uri()])


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    url = write_batch_file(tmp_path, "f", RECORDS * 50, "jsonl", "gzip")
    path = Path(url.removeprefix("file://"))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(BatchFileError, match="cannot be read: EOFError"):
        _read([url], "jsonl", "gzip")


def test_jsonl_file_declared_parquet_is_a_clear_error(tmp_path: Path) -> None:
    url = write_batch_file(tmp_path, "f", RECORDS, "jsonl", "none")
    with pytest.raises(BatchFileError, match=r"\(parquet \(none\)\) is not a readable Parquet"):
        _read([url], "parquet", "none")


def test_s3_url_is_read_with_the_storage_options(tmp_path: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from sandbox.emulators.server import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        bucket = f"batches-{uuid.uuid4().hex[:12]}"  # moto's S3 is shared within the process
        s3.create_bucket(Bucket=bucket)
        url = write_batch_file(tmp_path, "f", RECORDS, "parquet", "gzip")
        s3.put_object(Bucket=bucket, Key="t/f.parquet", Body=Path(url[7:]).read_bytes())
        manifest = BatchManifest.from_message(
            batch_msg("s", [f"s3://{bucket}/t/f.parquet"], "parquet", "gzip")
        )
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        got = list(BatchReader({**options, "skip_instance_cache": True}).records(manifest))
        assert [r["id"] for r in got] == [0, 1, 2, 3, 4]
        # A missing object is one clear error naming the URL and the encoding.
        gone = BatchManifest.from_message(
            batch_msg("s", [f"s3://{bucket}/t/gone.parquet"], "parquet", "gzip")
        )
        with pytest.raises(BatchFileError, match=rf"s3://{bucket}/t/gone.parquet \(parquet \(gzip"):
            list(BatchReader({**options, "skip_instance_cache": True}).records(gone))
    finally:
        server.stop()
