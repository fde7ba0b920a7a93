"""Decoding once: a file's records wait in memory, then on disk, until the whole file decoded."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import fastavro
import pytest

from sandbox.currents_gen import EventFactory, avro_schema
from tap_braze_currents.reader import CorruptFileError, check_structure, iter_records
from tap_braze_currents.staging import CHUNK_RECORDS, RecordStage
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


@pytest.mark.parametrize("hold", [0, 10, 1_000_000])
def test_every_record_comes_back_once_in_order(hold):
    rows = records(CHUNK_RECORDS * 2 + 7)
    handle = avro_file(rows)
    check_structure(handle, "f.avro")
    assert list(iter_records(handle, "f.avro", hold_records=hold)) == rows


def test_a_bad_record_past_the_memory_budget_yields_nothing():
    rows = records(CHUNK_RECORDS * 2)
    rows[-2]["name"] = MARKER
    data = (
        avro_file(rows).getvalue().replace(MARKER.encode(), b"\xff\xfe\xfd" + MARKER[3:].encode())
    )
    handle = io.BytesIO(data)
    check_structure(handle, "f.avro")
    with pytest.raises(CorruptFileError, match=f"record {len(rows) - 1} cannot be decoded"):
        iter_records(handle, "f.avro", hold_records=10)


def test_a_truncated_file_past_the_memory_budget_yields_nothing():
    data = avro_file(records(CHUNK_RECORDS * 2)).getvalue()
    handle = io.BytesIO(data[: len(data) - 100])
    check_structure(handle, "f.avro")
    with pytest.raises(CorruptFileError, match="truncated"):
        iter_records(handle, "f.avro", hold_records=10)


def test_types_marshal_refuses_keep_their_type_on_disk():
    moment = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    rows = [{"when": moment, "price": Decimal("1.10"), "n": i} for i in range(CHUNK_RECORDS + 1)]
    stage = RecordStage(hold_records=0)
    stage.extend(rows)
    back = list(stage.drain())
    assert back == rows
    assert type(back[-1]["when"]) is dt.datetime and type(back[0]["price"]) is Decimal
