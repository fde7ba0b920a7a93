"""Reading one Currents Avro file safely: check its structure first, then stream its records.

A file is checked block by block (header, codec, block sizes, sync markers) before its first
record is emitted, so a truncated, empty or non-Avro file yields no records at all. Remote files
are first downloaded to a temporary file, so both passes read local bytes and memory stays flat
whatever the file size.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

import fastavro
from fsspec.implementations.local import LocalFileSystem

from braze_mixpanel_common.errors import SourceError

AVRO_MAGIC = b"Obj\x01"


class CorruptFileError(SourceError):
    """A file that is not a readable Avro container; ``reason`` says why.

    Skipped under ``on_corrupt_file: skip``; under ``fail`` it ends the run with its message.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Corrupt file: {path}: {reason}")
        self.path = path
        self.reason = reason


class UnreadableFileError(Exception):
    """The storage refused or failed to give the file's bytes (permissions, network)."""


@contextmanager
def open_local(fs: Any, path: str) -> Iterator[IO[bytes]]:
    """Yield a seekable local binary handle on ``path`` (a temporary copy for remote files)."""
    if isinstance(fs, LocalFileSystem):
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UnreadableFileError(f"{type(exc).__name__}: {exc}") from exc
        with handle:
            yield handle
        return
    descriptor, local_path = tempfile.mkstemp(prefix="currents-", suffix=".avro")
    os.close(descriptor)
    try:
        try:
            fs.get_file(path, local_path)
        except Exception as exc:  # storage errors differ per backend: all mean "not now"
            raise UnreadableFileError(f"{type(exc).__name__}: {exc}") from exc
        with open(local_path, "rb") as handle:
            yield handle
    finally:
        os.unlink(local_path)


def check_structure(handle: IO[bytes], path: str) -> dict[str, Any]:
    """Walk every block of the file without decoding records; return the writer schema.

    Raises:
        CorruptFileError: empty file, bad magic/header, unknown codec, truncated block or a
            missing sync marker.
    """
    handle.seek(0, 2)
    if handle.tell() == 0:
        raise CorruptFileError(path, "empty file (0 bytes)")
    handle.seek(0)
    if handle.read(4) != AVRO_MAGIC:
        raise CorruptFileError(path, "not an Avro container file (bad magic bytes)")
    handle.seek(0)
    try:
        blocks = fastavro.block_reader(handle)
        schema = blocks.writer_schema
        for _ in blocks:
            pass
    except EOFError as exc:
        raise CorruptFileError(path, f"truncated Avro file ({exc})") from exc
    except ValueError as exc:
        reason = str(exc)
        if "cannot read header" in reason:
            reason = "not an Avro container file (unreadable header)"
        raise CorruptFileError(path, reason) from exc
    except Exception as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(schema, dict):  # a primitive or union schema: no fields to read
        raise CorruptFileError(path, "the file's Avro schema is not a record")
    handle.seek(0)
    return schema


# Files up to this size are decoded once, into memory; larger ones are decoded twice (a
# validation pass, then the emitting pass) so memory stays flat whatever the file size.
BUFFER_BELOW_BYTES = 4 << 20


def iter_records(handle: IO[bytes], path: str) -> Iterator[dict[str, Any]]:
    """Decode the file's records (call after :func:`check_structure`).

    Every record is decoded before the first one is returned, so a record that cannot be
    decoded (bytes that are not UTF-8, a value that does not match the writer schema) makes the
    whole file corrupt: it yields no records at all, never half a file.

    Raises:
        CorruptFileError: a record cannot be decoded.
    """
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    if size <= BUFFER_BELOW_BYTES:
        return iter(_decode_all(handle, path, keep=True))
    _decode_all(handle, path, keep=False)
    handle.seek(0)
    return cast(Iterator[dict[str, Any]], iter(fastavro.reader(handle)))


def _decode_all(handle: IO[bytes], path: str, *, keep: bool) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    count = 0
    try:
        for record in fastavro.reader(handle):
            count += 1
            if keep:
                records.append(cast(dict[str, Any], record))  # a record schema's values
    except Exception as exc:
        reason = f"record {count + 1} cannot be decoded ({type(exc).__name__}: {exc})"
        raise CorruptFileError(path, reason) from exc
    return records


def float32_fields(writer_schema: dict[str, Any]) -> list[str]:
    """Top-level fields of Avro type ``float`` (32-bit), such as Purchase ``price``."""
    names = []
    for spec in writer_schema.get("fields", []):
        kind = spec["type"]
        branches = kind if isinstance(kind, list) else [kind]
        if "float" in branches:
            names.append(spec["name"])
    return names


def shortest_float32(value: float) -> float:
    """The shortest decimal that is the same 32-bit float: 76.55000305175781 -> 76.55.

    Avro ``float`` is 32-bit; widening it to a Python float exposes binary noise that Braze's
    own exports (Java's ``Float.toString``) do not show.
    """
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value
