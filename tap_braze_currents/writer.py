"""The Singer message writer: the SDK's msgspec writer without a write call per record.

The SDK's :class:`~singer_sdk.contrib.msgspec.MsgSpecWriter` writes and flushes stdout after
every message: one ``write`` system call per record (stdout is unbuffered under
``PYTHONUNBUFFERED``, which Meltano and many schedulers set). This writer gathers RECORD messages
in its own buffer and writes them in blocks of about 64 KiB; any other message is written at
once, after the records before it. A STATE message is therefore never written before the records
it covers, and never held back; records wait at most until the next STATE (the tap emits one
after every file) or until the buffer is full. What is left is written at exit.
"""

from __future__ import annotations

import atexit
import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.singerlib.encoding.base import SingerMessageType
from singer_sdk.singerlib.encoding.simple import Message
from typing_extensions import override

FLUSH_BYTES = 64 << 10


class BufferedMsgSpecWriter(MsgSpecWriter):
    """Writes RECORD messages in blocks; writes and flushes any other message at once."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        atexit.register(self.flush)

    @override
    def write_message(self, message: Message) -> None:
        """Buffer a RECORD; write anything else at once, after the records buffered before it.

        The SDK's own encoder appends the message straight to the buffer (no copy per record).
        """
        pending = self._pending
        encoder.encode_into(message.to_dict(), pending, -1)
        pending.append(0x0A)  # newline
        if message.type != SingerMessageType.RECORD or len(pending) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered to stdout and flush it."""
        if self._pending:
            sys.stdout.buffer.write(self._pending)
            self._pending.clear()
        sys.stdout.flush()
