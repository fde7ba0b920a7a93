"""Holding a file's output until the whole file has decoded, with flat memory.

A Currents file is decoded once. Its records are emitted only after its last record decoded,
so a corrupt file never yields half its records. Until then they wait here, in one of two forms:

- :class:`EncodedStage`, the fast path: each record is encoded as its RECORD message line (or
  its JSONL batch-file line) as soon as it is decoded; the lines wait in memory up to
  ``hold_bytes``, then in an anonymous temporary file, and are written out in large blocks.
  Nothing is decoded or encoded twice.
- :class:`RecordStage`, for the SDK's own record path (stream maps, flattening, deselected
  fields, a record limit, BATCH through the SDK's batcher): the decoded records wait in memory
  up to ``hold_records``, then in an anonymous temporary file, in chunks serialised with
  ``marshal`` (``pickle`` for the rare chunk that holds a type ``marshal`` refuses, such as a
  ``datetime`` of an Avro logical type). Both keep every value's exact type.
"""

from __future__ import annotations

import io
import marshal
import os
import pickle
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

# About 20-40 MB of decoded Currents records: Braze's 15,000-event files stay in memory whole.
DEFAULT_HOLD_RECORDS = 20_000
# Encoded RECORD lines held in memory before they spill: a 15,000-event file is about 15 MB.
DEFAULT_HOLD_BYTES = 32 << 20
SPILL_BYTES = 1 << 20  # write buffer of the temporary file, and block size when copying it out
CHUNK_RECORDS = 2_000  # records per serialised chunk on disk
_HEADER = struct.Struct("<cQ")  # format tag, payload length
_MARSHAL, _PICKLE = b"m", b"p"

Record = dict[str, Any]


class EncodedStage:
    """RECORD message lines of one file, encoded as its blocks decode, written out at the end.

    ``prefix`` and ``suffix`` are the encoded message around its record (the stream, the
    version, ``time_extracted``); ``encode_into(record, buffer, offset)`` appends a record's JSON
    (the SDK writer's own msgspec encoder). Memory stays bounded: past ``hold_bytes`` the lines
    go to an anonymous temporary file (unlinked at creation, so nothing is left behind).
    """

    def __init__(
        self,
        prefix: bytes,
        suffix: bytes,
        encode_into: Callable[[Any, bytearray, int], None],
        hold_bytes: int | None = None,
    ) -> None:
        self.prefix, self.suffix, self.encode_into = prefix, suffix, encode_into
        self.hold_bytes = DEFAULT_HOLD_BYTES if hold_bytes is None else hold_bytes
        self.count = 0
        self._lines = bytearray()
        self._spill: IO[bytes] | None = None

    def add(self, records: list[Record]) -> None:
        """Encode one block's records."""
        block, prefix, suffix, encode_into = bytearray(), self.prefix, self.suffix, self.encode_into
        for record in records:
            block += prefix
            encode_into(record, block, -1)
            block += suffix
        self.count += len(records)
        if self._spill is not None:
            self._spill.write(block)
            return
        self._lines += block
        if len(self._lines) >= self.hold_bytes:
            self._spill = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
                prefix="currents-stage-", buffering=SPILL_BYTES
            )
            self._spill.write(self._lines)
            self._lines = bytearray()

    def write_to(self, out: IO[bytes]) -> None:
        """Write every line, in order, to ``out``; the stage is empty and closed afterwards.

        Spilled lines go from the temporary file to ``out`` by ``sendfile`` when both are
        files (no copy through this process), else in blocks.
        """
        if self._spill is not None:
            self._spill.flush()
            size = self._spill.tell()
            self._spill.seek(0)
            if not _send_file(self._spill, out, size):
                shutil.copyfileobj(self._spill, out, SPILL_BYTES)
        out.write(self._lines)
        self.close()

    def close(self) -> None:
        """Drop what is held (also for a file that turned out corrupt)."""
        self._lines = bytearray()
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def _send_file(source: IO[bytes], out: IO[bytes], size: int) -> bool:
    """Copy ``size`` bytes from ``source`` to ``out`` in the kernel; False if it cannot."""
    if not isinstance(out, io.BufferedWriter | io.FileIO):  # in memory, or a gzip stream
        return False
    try:
        out_fd = out.fileno()
    except OSError:
        return False
    out.flush()
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(out_fd, source.fileno(), offset, size - offset)
            if sent == 0:  # the temporary file is shorter than it said
                raise OSError(f"temporary file ended at byte {offset} of {size}")
            offset += sent
    except OSError:
        if offset:
            raise  # part of the lines are out: never write them twice
        return False
    return True


class RecordStage:
    """Decoded records of one file, kept in input order until :meth:`drain`.

    Memory stays bounded whatever the file size: past ``hold_records`` records, the rest go to
    an anonymous temporary file (unlinked at creation, so nothing is left behind).
    """

    def __init__(self, hold_records: int = DEFAULT_HOLD_RECORDS) -> None:
        self.hold_records = hold_records
        self.held: list[Record] = []
        self.pending: list[Record] = []
        self.count = 0
        self._spill: IO[bytes] | None = None

    def extend(self, records: list[Record]) -> None:
        """Add one block's records."""
        self.count += len(records)
        # Once one block waits in ``pending`` (or on disk), every later block queues behind it,
        # even one small enough for ``held``: records leave in file order.
        if (
            self._spill is None
            and not self.pending
            and len(self.held) + len(records) <= self.hold_records
        ):
            self.held.extend(records)
            return
        self.pending.extend(records)
        if len(self.pending) >= CHUNK_RECORDS:
            self._write_chunk()

    def drain(self) -> Iterator[Record]:
        """Yield every record, in order, once; the temporary file is closed at the end."""
        held, self.held = self.held, []
        yield from held
        del held
        if self._spill is None:
            yield from self._take_pending()
            return
        if self.pending:
            self._write_chunk()
        spill, self._spill = self._spill, None
        try:
            spill.seek(0)
            yield from _read_chunks(spill)
        finally:
            spill.close()

    def close(self) -> None:
        """Drop what is held (a file that turned out corrupt)."""
        self.held, self.pending = [], []
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _take_pending(self) -> list[Record]:
        pending, self.pending = self.pending, []
        return pending

    def _write_chunk(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="currents-stage-")  # noqa: SIM115
        records = self._take_pending()
        try:
            tag, payload = _MARSHAL, marshal.dumps(records)
        except ValueError:  # a type marshal does not know
            tag, payload = _PICKLE, pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
        self._spill.write(_HEADER.pack(tag, len(payload)))
        self._spill.write(payload)


def _read_chunks(spill: IO[bytes]) -> Iterator[Record]:
    while header := spill.read(_HEADER.size):
        tag, size = _HEADER.unpack(header)
        payload = spill.read(size)
        records = (
            marshal.loads(payload) if tag == _MARSHAL else pickle.loads(payload)
        )  # our own file
        del payload
        yield from records
