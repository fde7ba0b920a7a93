"""A corpus of bad Braze Currents files, built by code (no binary files in the repository).

Every builder returns the bytes of one ``.avro`` file that looks like part of a CustomEvent
export. :func:`write_corpus` lays them out, together with good files, under one export root.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

from sandbox.loop.currents_gen import EventFactory, avro_schema, integration_folder

EVENT_TYPE = "users.behaviors.CustomEvent"
HOUR = datetime(2026, 11, 1, 10, tzinfo=UTC)
MARKER = "NONUTF8-MARKER-XYZ"


def _records(count: int, seed: int) -> list[dict[str, Any]]:
    schema = avro_schema(EVENT_TYPE)
    factory = EventFactory(seed, null_external_ids=0.0)
    return [factory.record(EVENT_TYPE, schema, HOUR) for _ in range(count)]


def avro_bytes(
    records: list[dict[str, Any]], schema: dict[str, Any] | None = None, codec: str = "null"
) -> bytes:
    """One Avro container file (``sync_interval=1``: a block per record, like big exports)."""
    buffer = io.BytesIO()
    parsed = fastavro.parse_schema(schema or avro_schema(EVENT_TYPE))
    fastavro.writer(buffer, parsed, records, codec=codec, sync_interval=1)
    return buffer.getvalue()


def good(seed: int = 1, count: int = 5) -> bytes:
    """A valid file."""
    return avro_bytes(_records(count, seed))


def truncated() -> bytes:
    """A valid file cut in the middle of its blocks."""
    data = good(2, 20)
    return data[: len(data) * 2 // 3]


def zero_bytes() -> bytes:
    """An empty file."""
    return b""


def not_avro() -> bytes:
    """JSON lines with an .avro name."""
    return b'{"id": "x", "time": 1}\n' * 50


def wrong_magic() -> bytes:
    """A valid file whose magic says Avro version 2."""
    return b"Obj\x02" + good(3)[4:]


def unknown_codec() -> bytes:
    """A valid file whose header names a codec nobody implements (same length as 'null')."""
    data = good(4)
    assert data.count(b"avro.codec\x08null") == 1
    return data.replace(b"avro.codec\x08null", b"avro.codec\x08zzzz")


def huge_string(size: int = 5_000_000) -> bytes:
    """A valid file with one 5 MB custom event name (a legitimate, if silly, event)."""
    records = _records(3, 5)
    records[1]["name"] = "x" * size
    return avro_bytes(records)


def non_utf8() -> bytes:
    """A file whose third record's ``name`` holds bytes that are not UTF-8."""
    records = _records(5, 6)
    records[2]["name"] = MARKER
    data = avro_bytes(records)
    assert data.count(MARKER.encode()) == 1
    return data.replace(MARKER.encode(), b"\xff\xfe\xfd" + MARKER.encode()[3:])


def not_a_record_schema() -> bytes:
    """A file whose writer schema is a bare string, not a record."""
    return avro_bytes(["a", "b"], {"type": "string"})


def unexpected_field_type() -> bytes:
    """``time`` as an ISO string and an extra map field: valid Avro, unexpected shape."""
    schema = avro_schema(EVENT_TYPE)
    for spec in schema["fields"]:
        if spec["name"] == "time":
            spec["type"] = "string"
    schema["fields"].append({"name": "extra", "type": {"type": "map", "values": "long"}})
    records = _records(3, 7)
    for record in records:
        record["time"] = "2026-11-01T10:30:00Z"
        record["extra"] = {"a": 1}
    return avro_bytes(records, schema)


def unknown_avro_type() -> bytes:
    """A header whose schema names a type Avro does not have."""
    data = good(8)
    marker = b'"name": "time", "type": "int"'
    assert data.count(marker) == 1
    return data.replace(marker, marker.replace(b'"int"', b'"inx"'))


@dataclass(frozen=True)
class BadFile:
    """One corpus entry: how to build it and what the tap must do with it."""

    name: str
    build: Callable[[], bytes]
    corrupt: bool  # skipped as corrupt (no records) vs read (records emitted)
    reason: str = ""  # a fragment of the logged reason


CORPUS = (
    BadFile("truncated", truncated, True, "truncated"),
    BadFile("zero_bytes", zero_bytes, True, "empty file (0 bytes)"),
    BadFile("not_avro", not_avro, True, "not an Avro container file"),
    BadFile("wrong_magic", wrong_magic, True, "not an Avro container file"),
    BadFile("unknown_codec", unknown_codec, True, "zzzz"),
    BadFile("non_utf8", non_utf8, True, "cannot be decoded"),
    BadFile("not_a_record_schema", not_a_record_schema, True, "not a record"),
    BadFile("unknown_avro_type", unknown_avro_type, True, "inx"),
    BadFile("huge_string", huge_string, False),
    BadFile("unexpected_field_type", unexpected_field_type, False),
)


def partition_folder(root: Path) -> Path:
    """The folder of the corpus' hour partition under ``root``."""
    integration = integration_folder("65fdf55eea9932004d7fb071")
    return (
        root
        / "currents"
        / integration
        / f"event_type={EVENT_TYPE}"
        / f"date={HOUR:%Y-%m-%d-%H}"
        / "version=10/us-01"
    )


def write_corpus(root: Path, entries: tuple[BadFile, ...] = CORPUS) -> dict[str, Path]:
    """Write two good files and every corpus entry; return name -> path."""
    folder = partition_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, entry in enumerate(entries):
        path = folder / f"{entry.name}+0+{index:010d}.avro"
        path.write_bytes(entry.build())
        paths[entry.name] = path
    for seed in (101, 102):
        path = folder / f"good{seed}+0+{seed:010d}.avro"
        path.write_bytes(good(seed))
        paths[f"good{seed}"] = path
    return paths
