"""The Singer message reader: the SDK's msgspec reader, reading stdin as bytes in a tighter loop.

The SDK's :class:`~singer_sdk.contrib.msgspec.MsgSpecReader` reads ``sys.stdin`` as text (every
line decoded from UTF-8 into a ``str`` that msgspec then reads again) and checks each message
through a set and a counter dict. This reader hands msgspec the raw bytes of each line and
dispatches RECORD messages first; every other message, and every error, takes the same path and
raises the same exceptions as the SDK's.
"""

from __future__ import annotations

import sys
import typing as t
from collections import Counter

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader, decoder
from singer_sdk.singerlib.encoding.base import SingerMessageType
from typing_extensions import override

_decode = decoder.decode  # the SDK's own (floats as Decimal, as its reader reads them)
_RECORD = SingerMessageType.RECORD.value


class BytesMsgSpecReader(MsgSpecReader):
    """Reads Singer messages from the bytes of stdin (or any text or binary stream)."""

    @override
    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        """Read every line and call its message type's callback; count the messages by type.

        Without ``file_input`` it reads standard input's binary buffer (standard input itself
        when it has none, as under a test's replacement).
        """
        on_record = callbacks[SingerMessageType.RECORD]
        records = 0
        others: Counter[str] = Counter()
        lines = file_input if file_input is not None else getattr(sys.stdin, "buffer", sys.stdin)
        for line in lines:
            try:
                message = _decode(line)
            except msgspec.DecodeError:
                message = self.deserialize_json(line)  # logs and raises InvalidInputLine
            if type(message) is dict and message.get("type") == _RECORD:
                on_record(message)
                records += 1
                continue
            self._current_message = line
            self.assert_line_requires(message, requires={"type"})
            kind = message["type"]
            if callback := callbacks.get(kind):
                callback(message)
            else:
                self._process_unknown_message(message)
            others[kind] += 1
        if records:
            others[_RECORD] += records
        return others
