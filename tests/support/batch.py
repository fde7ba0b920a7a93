"""Writing BATCH files and messages the way the Singer SDK's batchers do."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any


def write_batch_file(
    directory: Path, name: str, records: list[dict[str, Any]], fmt: str, compression: str
) -> str:
    """Write ``records`` as one batch file and return its ``file://`` URL.

    ``jsonl`` + ``gzip`` is a gzipped JSON Lines file (the SDK's JSONL batcher); ``parquet`` +
    ``gzip`` is a Parquet file with gzip-compressed pages (the SDK's Parquet batcher).
    """
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        body = "".join(json.dumps(r) + "\n" for r in records).encode()
        path = directory / f"{name}.jsonl{'.gz' if compression == 'gzip' else ''}"
        path.write_bytes(gzip.compress(body) if compression == "gzip" else body)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        table = pa.Table.from_pylist(records)
        pq.write_table(table, buffer, compression="gzip" if compression == "gzip" else "none")
        path = directory / f"{name}.parquet{'.gz' if compression == 'gzip' else ''}"
        path.write_bytes(buffer.getvalue())
    return path.as_uri()


def batch_msg(stream: str, urls: list[str], fmt: str = "jsonl", compression: str = "gzip"):
    """A BATCH message naming ``urls``."""
    return {
        "type": "BATCH",
        "stream": stream,
        "encoding": {"format": fmt, "compression": compression},
        "manifest": urls,
    }


def as_batches(
    messages: list[dict[str, Any]],
    directory: Path,
    fmt: str = "jsonl",
    compression: str = "gzip",
    per_file: int = 3,
    files_per_batch: int = 2,
) -> list[dict[str, Any]]:
    """``messages`` with every run of consecutive RECORDs of a stream replaced by BATCH messages.

    Each BATCH names up to ``files_per_batch`` files of up to ``per_file`` records; every other
    message (SCHEMA, STATE, ACTIVATE_VERSION) keeps its place.
    """
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    run_stream = ""
    counter = iter(range(1_000_000))

    def flush() -> None:
        step = per_file * files_per_batch
        for start in range(0, len(run), step):
            chunk = run[start : start + step]
            urls = [
                write_batch_file(
                    directory, f"b{next(counter)}", chunk[i : i + per_file], fmt, compression
                )
                for i in range(0, len(chunk), per_file)
            ]
            out.append(batch_msg(run_stream, urls, fmt, compression))
        run.clear()

    for message in messages:
        if message.get("type") == "RECORD" and (not run or message["stream"] == run_stream):
            run_stream = message["stream"]
            run.append(message["record"])
            continue
        if run:
            flush()
        if message.get("type") == "RECORD":
            run_stream = message["stream"]
            run.append(message["record"])
        else:
            out.append(message)
    if run:
        flush()
    return out
