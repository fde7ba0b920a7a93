"""Reading one Currents Avro file safely: decode it whole, once, then stream its records.

The header is checked first; then every block (sizes, codec, sync markers) is read and every
record decoded before the first record is emitted, so a truncated, empty, non-Avro or
undecodable file yields no records at all. Until then the file's output waits in a stage
(:mod:`tap_braze_currents.staging`), so memory stays flat whatever the file size. Remote files
are first downloaded to a temporary file.
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
    """Check the file's header (magic, metadata, codec, schema); return the writer schema.

    The blocks are checked by :func:`decode_blocks`, in the same pass that decodes them.

    Raises:
        CorruptFileError: empty file, bad magic/header, unknown codec or a schema that is not
            a record.
    """
    handle.seek(0, 2)
    if handle.tell() == 0:
        raise CorruptFileError(path, "empty file (0 bytes)")
    handle.seek(0)
    if handle.read(4) != AVRO_MAGIC:
        raise CorruptFileError(path, "not an Avro container file (bad magic bytes)")
    handle.seek(0)
    try:
        schema = fastavro.block_reader(handle).writer_schema
    except Exception as exc:
        raise _structure_error(path, exc) from exc
    if not isinstance(schema, dict):  # a primitive or union schema: no fields to read
        raise CorruptFileError(path, "the file's Avro schema is not a record")
    handle.seek(0)
    return schema


def decode_blocks(handle: IO[bytes], path: str) -> Iterator[list[dict[str, Any]]]:
    """Decode the file block by block (call after :func:`check_structure`).

    Each item is one block's records. A block that cannot be read (block sizes, sync marker,
    codec) or a record that cannot be decoded (bytes that are not UTF-8, a value that does not
    match the writer schema) raises; the caller holds what came before until the last block, so
    a corrupt file never yields half its records.

    Raises:
        CorruptFileError: a block cannot be read or a record cannot be decoded.
    """
    handle.seek(0)
    decoded = 0
    try:
        blocks = iter(fastavro.block_reader(handle))
    except Exception as exc:
        raise _structure_error(path, exc) from exc
    while True:
        try:
            block = next(blocks, None)
        except Exception as exc:
            raise _structure_error(path, exc) from exc
        if block is None:
            return
        records: list[Any] = []
        try:
            records.extend(block)
        except Exception as exc:
            number = decoded + len(records) + 1
            reason = f"record {number} cannot be decoded ({type(exc).__name__}: {exc})"
            raise CorruptFileError(path, reason) from exc
        decoded += len(records)
        yield cast(list[dict[str, Any]], records)  # a record schema's values


def _structure_error(path: str, exc: Exception) -> CorruptFileError:
    """The corrupt-file error for a header or block that cannot be read."""
    if isinstance(exc, EOFError):
        return CorruptFileError(path, f"truncated Avro file ({exc})")
    if isinstance(exc, ValueError):
        reason = str(exc)
        if "cannot read header" in reason:
            reason = "not an Avro container file (unreadable header)"
        return CorruptFileError(path, reason)
    return CorruptFileError(path, f"{type(exc).__name__}: {exc}")


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
