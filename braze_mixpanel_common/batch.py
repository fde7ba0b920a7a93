"""Reading the Singer SDK's BATCH messages: the records of every file of a manifest, one by one.

A BATCH message (``{"type": "BATCH", "stream", "encoding": {"format", "compression"},
"manifest": [url, ...]}``) stands for the records written to the files of its manifest. Both
targets feed each of those records through their RECORD path, so a BATCH is loaded, skipped,
dead-lettered and checkpointed exactly like the RECORD messages it replaces.

Formats are the two the SDK writes: ``jsonl`` (one JSON object per line) and ``parquet``
(pyarrow, the ``parquet`` extra). Compression is read from the file itself (gzip's magic
bytes) rather than trusted from the message: the SDK's own JSONL batcher writes gzip whatever
``compression`` says. Files are opened with fsspec (``file://`` URLs, plain paths and any
installed filesystem such as ``s3://``), using the target's ``batch_storage_options``. Reading
is streamed: JSONL a line at a time, Parquet a record batch at a time, so memory stays bounded
whatever the file size.

Anything that cannot be read (unknown format, unreachable URL, corrupt file, a line that is not
a JSON object) raises :class:`BatchFileError`, whose message names the stream, the file and the
encoding.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import importlib.util
import math
import shutil
import tempfile
import typing as t
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

import fsspec
import msgspec

from braze_mixpanel_common.errors import SourceError

FORMATS = ("jsonl", "parquet")
COMPRESSIONS = ("gzip", "none")
PARQUET_ROWS_PER_READ = 2048  # rows decoded at once from a Parquet file
_GZIP_MAGIC = b"\x1f\x8b"
_SPOOL_BYTES = 64 * 1024 * 1024  # a gzipped Parquet file is unpacked in memory up to this size

# The same decoding as the targets' message reader (MsgSpecReader): numbers with a fraction
# become Decimal, so a record read from a file equals the one a RECORD message would carry.
_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)


class BatchFileError(SourceError):
    """A BATCH message, or a file of its manifest, cannot be read; the message names both."""


@dataclass(frozen=True)
class BatchManifest:
    """One BATCH message: the stream, the files' encoding and the files."""

    stream: str
    format: str
    compression: str
    files: tuple[str, ...]
    version: int | None = None

    @property
    def encoding(self) -> str:
        """The encoding as log lines and errors name it, e.g. ``jsonl (gzip)``."""
        return f"{self.format} ({self.compression})"

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> BatchManifest:
        """Read and check a BATCH message.

        Raises:
            BatchFileError: a field is missing, or the format or compression is not one the
                SDK defines (``jsonl``/``parquet``, ``gzip``/``none``).
        """
        stream = message.get("stream")
        if not isinstance(stream, str) or not stream:
            raise BatchFileError("A BATCH message has no 'stream'.")
        encoding = message.get("encoding")
        if not isinstance(encoding, Mapping):
            raise BatchFileError(f"BATCH for stream '{stream}' has no 'encoding' object.")
        fmt = str(encoding.get("format") or "").lower()
        compression = str(encoding.get("compression") or "none").lower()
        files = message.get("manifest")
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise BatchFileError(
                f"BATCH for stream '{stream}': 'manifest' must be a list of file URLs."
            )
        manifest = cls(stream, fmt, compression, tuple(files), _version(message.get("version")))
        if fmt not in FORMATS or compression not in COMPRESSIONS:
            first = f" (first file: {files[0]})" if files else ""
            raise BatchFileError(
                f"BATCH for stream '{stream}'{first}: encoding {manifest.encoding} cannot be "
                f"read; the formats are {' and '.join(FORMATS)}, the compressions "
                f"{' and '.join(COMPRESSIONS)}."
            )
        if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise BatchFileError(
                f"BATCH for stream '{stream}' (first file: {files[0] if files else '-'}): "
                "encoding parquet needs pyarrow; install the 'parquet' extra "
                "(pip install 'braze-mixpanel-singer[parquet]')."
            )
        return manifest


def _version(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class BatchReader:
    """Yields the records of a manifest's files, in order, with bounded memory.

    Args:
        storage_options: fsspec options for opening the files (credentials, endpoint, ...).
    """

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        self.files_read = 0
        """Manifest files read to the end."""

    def records(self, manifest: BatchManifest) -> Iterator[dict[str, Any]]:
        """Every record of every file of ``manifest``.

        Raises:
            BatchFileError: a file cannot be opened or decoded (names the file and encoding).
        """
        for url in manifest.files:
            yield from self._file_records(manifest, url)
            self.files_read += 1

    def _file_records(self, manifest: BatchManifest, url: str) -> Iterator[dict[str, Any]]:
        where = f"BATCH for stream '{manifest.stream}': file {url} ({manifest.encoding})"
        with ExitStack() as stack:
            try:
                raw = stack.enter_context(fsspec.open(url, "rb", **self.storage_options))
                stream = _uncompressed(raw, stack)
            except Exception as exc:
                raise BatchFileError(f"{where} cannot be opened: {_why(exc)}") from exc
            if manifest.format == "jsonl":
                yield from _jsonl_records(stream, where)
            else:
                yield from _parquet_records(stream, where, stack)


def delete_files(urls: list[str], storage_options: Mapping[str, Any] | None, logger: Any) -> int:
    """Delete the batch files at ``urls``; return how many went. Failures are logged, not raised."""
    deleted = 0
    for url in urls:
        try:
            fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
            fs.rm_file(path)
            deleted += 1
        except Exception as exc:  # each backend has its own errors; the records are loaded
            logger.warning("Could not delete the loaded BATCH file %s: %s", url, _why(exc))
    return deleted


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _uncompressed(raw: IO[bytes], stack: ExitStack) -> IO[bytes]:
    """The file's bytes, unzipped when they start with gzip's magic number."""
    head = raw.read(len(_GZIP_MAGIC))
    raw.seek(0)
    if head == _GZIP_MAGIC:
        unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
        stack.callback(unzipped.close)
        return t.cast(IO[bytes], unzipped)  # a GzipFile reads like any binary file
    return raw


def _jsonl_records(stream: IO[bytes], where: str) -> Iterator[dict[str, Any]]:
    number = 1  # the line being read or decoded
    try:
        for line in stream:
            if line.strip():
                record = _decoder.decode(line)
                if not isinstance(record, dict):
                    raise BatchFileError(
                        f"{where}: line {number} is a JSON {type(record).__name__}, not an object."
                    )
                yield record
            number += 1
    except BatchFileError:
        raise
    except (msgspec.DecodeError, OSError, EOFError, ValueError) as exc:
        raise BatchFileError(f"{where}: line {number} cannot be read: {_why(exc)}") from exc


def _parquet_records(stream: IO[bytes], where: str, stack: ExitStack) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        seekable = stream
        if isinstance(stream, gzip.GzipFile):
            # Parquet is read from its footer backwards; unpack a gzipped file once.
            seekable = stack.enter_context(tempfile.SpooledTemporaryFile(_SPOOL_BYTES))  # noqa: SIM115
            shutil.copyfileobj(stream, seekable)
            seekable.seek(0)
        parquet = pq.ParquetFile(seekable)
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise BatchFileError(f"{where} is not a readable Parquet file: {_why(exc)}") from exc
    rows = 0
    try:
        for table in parquet.iter_batches(batch_size=PARQUET_ROWS_PER_READ):
            for row in table.to_pylist():
                rows += 1
                yield {key: _json_value(value) for key, value in row.items()}
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise BatchFileError(f"{where}: row {rows + 1} cannot be read: {_why(exc)}") from exc


def _json_value(value: Any) -> Any:
    """A Parquet value as its JSON form would arrive in a RECORD message.

    Timestamps and dates become ISO 8601 strings, floats Decimal (as the message reader parses
    them), bytes text; lists and structs are converted item by item.
    """
    if value is None or isinstance(value, str | bool | int | decimal.Decimal):
        return value
    if isinstance(value, float):
        return decimal.Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # pyarrow gives a map column as a list of (key, value) pairs.
        return [_json_value(v) for v in value]
    return str(value)


__all__ = ["BatchFileError", "BatchManifest", "BatchReader"]
