"""Holding a file's decoded records until the whole file has decoded, with flat memory.

A Currents file is decoded once. Its records are emitted only after its last record decoded,
so a corrupt file never yields half its records. Until then they wait here: in memory up to
``hold_records``, then in an anonymous temporary file, in chunks serialised with ``marshal``
(``pickle`` for the rare chunk that holds a type ``marshal`` refuses, such as a ``datetime`` of
an Avro logical type). Both keep every value's exact type. A ``marshal`` round trip costs about
a third of decoding the same records again, which is what large files used to pay.
"""

from __future__ import annotations

import marshal
import pickle
import struct
import tempfile
from collections.abc import Iterator
from typing import IO, Any

# About 20-40 MB of decoded Currents records: Braze's 15,000-event files stay in memory whole.
DEFAULT_HOLD_RECORDS = 20_000
CHUNK_RECORDS = 2_000  # records per serialised chunk on disk
_HEADER = struct.Struct("<cQ")  # format tag, payload length
_MARSHAL, _PICKLE = b"m", b"p"

Record = dict[str, Any]


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
        if self._spill is None and len(self.held) + len(records) <= self.hold_records:
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
