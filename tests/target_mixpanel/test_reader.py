"""The bytes reader dispatches and fails as the SDK's msgspec reader does."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.exceptions import InvalidInputLine

from target_mixpanel.reader import BytesMsgSpecReader

LINES = (
    '{"type": "SCHEMA", "stream": "s", "schema": {}, "key_properties": []}\n'
    '{"type": "RECORD", "stream": "s", "record": {"price": 1.10, "n": 1}}\n'
    '{"type": "STATE", "value": {"a": 1}}\n'
    '{"type": "RECORD", "stream": "s", "record": {"price": 2.5, "n": 2}}\n'
)


def read(reader, stream):
    seen: list[dict] = []
    kinds = ("SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH")
    counts = reader.process_lines(stream, dict.fromkeys(kinds, seen.append))
    return seen, counts


@pytest.mark.parametrize("as_bytes", [True, False])
def test_same_messages_and_counts_as_the_sdk_reader(as_bytes):
    stream = io.BytesIO(LINES.encode()) if as_bytes else io.StringIO(LINES)
    ours, our_counts = read(BytesMsgSpecReader(), stream)
    theirs, their_counts = read(MsgSpecReader(), io.StringIO(LINES))
    assert ours == theirs
    assert our_counts == their_counts
    assert ours[1]["record"]["price"] == Decimal("1.10")  # floats as the SDK reads them


@pytest.mark.parametrize(
    ("line", "error"),
    [("not json\n", InvalidInputLine), ('{"stream": "s"}\n', InvalidInputLine)],
)
def test_bad_lines_fail_as_in_the_sdk(line, error):
    with pytest.raises(error):
        read(BytesMsgSpecReader(), io.BytesIO(line.encode()))


def test_unknown_message_type_fails_as_in_the_sdk():
    with pytest.raises(ValueError, match="Unknown message type 'NOPE'"):
        read(BytesMsgSpecReader(), io.BytesIO(b'{"type": "NOPE"}\n'))
