"""Decoding once: a file's records wait in memory, then on disk, until the whole file decoded."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import fastavro
import pytest
from singer_sdk.contrib.msgspec import encoder

from sandbox.loop.currents_gen import EventFactory, avro_schema
from tap_braze_currents.reader import CorruptFileError, check_structure, decode_blocks
from tap_braze_currents.staging import CHUNK_RECORDS, EncodedStage, RecordStage
from tests.support.corpus import HOUR, MARKER

CUSTOM = "users.behaviors.CustomEvent"


def records(count: int) -> list[dict]:
    schema = avro_schema(CUSTOM)
    factory = EventFactory(3, null_external_ids=0.0)
    return [factory.record(CUSTOM, schema, HOUR) for _ in range(count)]


def avro_file(rows: list[dict]) -> io.BytesIO:
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(avro_schema(CUSTOM)), rows, sync_interval=2000)
    buffer.seek(0)
    return buffer


def decoded(handle: io.BytesIO) -> list[list[dict]]:
    check_structure(handle, "f.avro")
    return list(decode_blocks(handle, "f.avro"))


@pytest.mark.parametrize("hold", [0, 10, 1_000_000])
def test_every_record_comes_back_once_in_order(hold):
    rows = records(CHUNK_RECORDS * 2 + 7)
    stage = RecordStage(hold_records=hold)
    for block in decoded(avro_file(rows)):
        stage.extend(block)
    assert list(stage.drain()) == rows


@pytest.mark.parametrize("hold", [0, 1000, 1 << 30])
def test_every_record_line_comes_back_once_in_order(hold):
    rows = records(CHUNK_RECORDS * 2 + 7)
    stage = EncodedStage(b"<", b">\n", encoder.encode_into, hold_bytes=hold)
    for block in decoded(avro_file(rows)):
        stage.add(block)
    out = io.BytesIO()
    stage.write_to(out)
    assert stage.count == len(rows)
    assert out.getvalue() == b"".join(b"<" + encoder.encode(row) + b">\n" for row in rows)


def test_a_bad_record_is_named_by_its_number_in_the_file():
    rows = records(CHUNK_RECORDS * 2)
    rows[-2]["name"] = MARKER
    data = (
        avro_file(rows).getvalue().replace(MARKER.encode(), b"\xff\xfe\xfd" + MARKER[3:].encode())
    )
    with pytest.raises(CorruptFileError, match=f"record {len(rows) - 1} cannot be decoded"):
        decoded(io.BytesIO(data))


def test_a_truncated_file_is_corrupt():
    data = avro_file(records(CHUNK_RECORDS * 2)).getvalue()
    with pytest.raises(CorruptFileError, match="truncated"):
        decoded(io.BytesIO(data[: len(data) - 100]))


def test_types_marshal_refuses_keep_their_type_on_disk():
    moment = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    rows = [{"when": moment, "price": Decimal("1.10"), "n": i} for i in range(CHUNK_RECORDS + 1)]
    stage = RecordStage(hold_records=0)
    stage.extend(rows)
    back = list(stage.drain())
    assert back == rows
    assert type(back[-1]["when"]) is dt.datetime and type(back[0]["price"]) is Decimal


@pytest.mark.parametrize("hold", [0, 1 << 30], ids=["spilled", "in-memory"])
def test_lines_go_to_a_real_file_after_what_was_written_before(tmp_path, hold):
    rows = records(500)
    stage = EncodedStage(b"", b"\n", encoder.encode_into, hold_bytes=hold)
    for block in decoded(avro_file(rows)):
        stage.add(block)
    target = tmp_path / "out.jsonl"
    with open(target, "wb") as out:
        out.write(b"before\n")  # buffered: must be out before the spilled lines
        stage.write_to(out)
    expected = b"before\n" + b"".join(encoder.encode(row) + b"\n" for row in rows)
    assert target.read_bytes() == expected


def test_a_small_block_after_one_that_did_not_fit_keeps_file_order():
    # 19,000 records fit in held; 1,500 do not (and are fewer than a chunk, so they wait in
    # pending, not on disk); the last 500 would fit in held again but must come after them.
    stage = RecordStage(hold_records=20_000)
    blocks = [
        [{"n": i} for i in range(start, start + size)]
        for start, size in [(0, 19_000), (19_000, 1_500), (20_500, 500)]
    ]
    for block in blocks:
        stage.extend(block)
    assert [r["n"] for r in stage.drain()] == list(range(21_000))
