"""Writes realistic Braze Currents export trees, for the tests, the benchmarks and the demo.

The layout, file names and Avro schemas follow what Braze documents for Currents storage
exports (https://www.braze.com/docs/user_guide/data/distribution/braze_currents/ and its FAQ) and
the schemas of Braze's sample files (https://github.com/braze-inc/currents-examples): one Avro
container file per event type and batch, under
``<prefix>/dataexport.<cluster>.<S3|GCS|AzureBlob>.integration.<id>/event_type=<type>/
date=<YYYY-MM-DD-HH>/<version=N/env | schema-id/zone>/<name>+<partition>+<offset>.avro``.
Field lists come from the tap's own catalogue. The data includes null ``external_user_id``s,
unicode, at-least-once duplicates, schema drift (older files lack the newest optional fields),
a truncated file and an empty file.

Run ``python -m sandbox.loop.currents_gen OUT --events 5000`` to write a sample export.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro

from braze_mixpanel_common.currents import known_event_types

DEFAULT_EVENT_TYPES = (
    "users.behaviors.CustomEvent",
    "users.behaviors.Purchase",
    "users.behaviors.app.SessionStart",
    "users.messages.email.Send",
    "users.messages.email.Open",
    "users.messages.pushnotification.Send",
    "users.canvas.Entry",
    "users.campaigns.Conversion",
)
CUSTOM_EVENT_NAMES = ("added_to_cart", "viewed_product", "Søgning", "注册完成", "level up 🎮")
PRODUCTS = ("sku-1001", "sku-2002", "café-crème", "ticket_vip")
CURRENT_VERSION = 10
# Fields that older files of a type lack (Braze only ever appends optional fields).
DRIFT_FIELDS = 3


@dataclass
class Export:
    """What was written: the records the tap must deliver, and the files it must skip."""

    root: Path
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    corrupt_files: dict[Path, str] = field(default_factory=dict)

    def expected_ids(self, event_type: str | None = None) -> list[str]:
        """Event ids the tap must emit (duplicates included), optionally for one type."""
        return [r["id"] for t, r in self.events if event_type in (None, t)]


def avro_schema(event_type: str, *, drop_newest: int = 0) -> dict[str, Any]:
    """The Avro writer schema of ``event_type`` (optionally without its newest fields)."""
    fields = known_event_types()[event_type]
    if drop_newest:
        optional = [f for f in fields if isinstance(f[1], list) and "null" in f[1]]
        dropped = {name for name, _ in optional[-drop_newest:]}
        fields = [f for f in fields if f[0] not in dropped]
    namespace, _, name = f"dataexport.S3.inner.{event_type}".rpartition(".")
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": [
            {"name": n, "type": t, **({"default": None} if _nullable(t) else {})} for n, t in fields
        ],
    }


def _nullable(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


class EventFactory:
    """Builds plausible event records for any catalogue type, deterministically from a seed."""

    def __init__(self, seed: int = 0, *, users: int = 500, null_external_ids: float = 0.1):
        self.rng = random.Random(seed)
        self.users = users
        self.null_external_ids = null_external_ids

    def record(self, event_type: str, schema: dict[str, Any], when: datetime) -> dict[str, Any]:
        """One record matching ``schema``; ``time`` within the hour before ``when``."""
        rng = self.rng
        user = rng.randrange(self.users)
        record: dict[str, Any] = {}
        for spec in schema["fields"]:
            name, kind = spec["name"], spec["type"]
            record[name] = self._value(event_type, name, kind, user, when)
        return record

    def _value(self, event_type: str, name: str, kind: Any, user: int, when: datetime) -> Any:
        rng = self.rng
        if _nullable(kind):
            if name == "external_user_id":
                if rng.random() < self.null_external_ids:
                    return None
                return f"user-{user:05d}"
            if rng.random() < 0.15:
                return None
            kind = next(k for k in kind if k != "null")
        special = {
            "id": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "user_id": lambda: f"{user:024x}",
            "external_user_id": lambda: f"user-{user:05d}",
            "time": lambda: int(when.timestamp()) - rng.randrange(3600),
            "time_ms": lambda: int(when.timestamp() * 1000) - rng.randrange(3_600_000),
            "name": lambda: rng.choice(CUSTOM_EVENT_NAMES),
            "properties": lambda: self._properties(event_type),
            "email_address": lambda: f"user{user}@example.com",
            "platform": lambda: rng.choice(("ios", "android", "web")),
            "os_version": lambda: rng.choice(("iOS 18.1", "Android 15", "Windows 11")),
            "device_model": lambda: rng.choice(("iPhone16,2", "Pixel 9", "Desktop")),
            "timezone": lambda: rng.choice(("Europe/Paris", "America/New_York", "Asia/Tokyo")),
            "product_id": lambda: rng.choice(PRODUCTS),
            "currency": lambda: rng.choice(("USD", "EUR", "JPY")),
            "price": lambda: round(rng.uniform(0.5, 300), 2),
            "campaign_name": lambda: rng.choice(("Rentrée 2026", "Winter sale ❄", "Onboarding")),
            "canvas_name": lambda: rng.choice(("Welcome journey", "Réactivation", "VIP")),
        }
        if name in special:
            return special[name]()
        if kind == "string":
            return f"{name}-{rng.randrange(10_000)}"
        if kind in ("int", "long"):
            return rng.randrange(100)
        if kind in ("float", "double"):
            return round(rng.uniform(0, 100), 3)
        if kind == "boolean":
            return rng.random() < 0.5
        if isinstance(kind, dict) and kind.get("type") == "array":
            return [f"{name}-{i}" for i in range(rng.randrange(3))]
        raise ValueError(f"no generator for {event_type}.{name}: {kind!r}")

    def _properties(self, event_type: str) -> str:
        rng = self.rng
        if event_type.endswith("Purchase"):
            props: dict[str, Any] = {"quantity": rng.randrange(1, 5), "gift": rng.random() < 0.2}
        else:
            props = {
                "screen": rng.choice(("home", "checkout", "paramètres")),
                "value": rng.randrange(1000),
                "ratio": round(rng.random(), 4),
                "tags": ["a", "ü"][: rng.randrange(3)],
                "nested": {"level": rng.randrange(3), "label": "niveau ☆"},
            }
        return json.dumps(props, ensure_ascii=rng.random() < 0.5)


def integration_folder(
    integration_id: str, cluster: str = "prod-01", connection: str = "S3"
) -> str:
    """``dataexport.<cluster>.<connection>.integration.<id>``."""
    return f"dataexport.{cluster}.{connection}.integration.{integration_id}"


def write_avro(path: Path, schema: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    """Write one Avro container file (null codec, like Braze's samples)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(schema), records, codec="null")
    return path


def generate_export(
    root: str | Path,
    *,
    seed: int = 0,
    event_types: tuple[str, ...] | list[str] = DEFAULT_EVENT_TYPES,
    hours: int = 3,
    files_per_hour: int = 2,
    events_per_file: int = 50,
    start: datetime = datetime(2026, 11, 1, 10, tzinfo=UTC),
    layout: str = "mixed",
    prefix: str = "currents",
    integration_id: str = "65fdf55eea9932004d7fb071",
    connection: str = "S3",
    duplicates: float = 0.02,
    null_external_ids: float = 0.1,
    drift: bool = True,
    corrupt: bool = True,
) -> Export:
    """Write an export tree under ``root`` and return what the tap should read from it.

    ``layout`` is ``version`` (``version=<n>/<env>``), ``schema_id`` (``<schema-id>/<zone>``) or
    ``mixed`` (event types alternate between the two). With ``drift`` the first hour of each
    type is written with an older schema lacking the newest optional fields. With ``corrupt``
    a truncated file and an empty file are added to the first event type's last hour.
    """
    root = Path(root)
    export = Export(root)
    factory = EventFactory(seed, null_external_ids=null_external_ids)
    integration = integration_folder(integration_id, connection=connection)
    base = root / prefix / integration
    offset = 0
    for type_index, event_type in enumerate(event_types):
        old_layout = layout == "schema_id" or (layout == "mixed" and type_index % 2 == 1)
        for hour_index in range(hours):
            hour = start + timedelta(hours=hour_index)
            drifted = drift and hour_index == 0
            schema = avro_schema(event_type, drop_newest=DRIFT_FIELDS if drifted else 0)
            version = CURRENT_VERSION - 1 if drifted else CURRENT_VERSION
            inner = f"{100 + version}/us-01" if old_layout else f"version={version}/us-01"
            folder = base / f"event_type={event_type}" / f"date={hour:%Y-%m-%d-%H}" / inner
            for _ in range(files_per_hour):
                records = [
                    factory.record(event_type, schema, hour + timedelta(minutes=59))
                    for _ in range(events_per_file)
                ]
                repeats = [r for r in records if factory.rng.random() < duplicates]
                records.extend(dict(r) for r in repeats)  # at-least-once delivery
                offset += len(records)
                name = f"{integration}+0+{offset:010d}.avro"
                export.files.append(write_avro(folder / name, schema, records))
                export.events.extend((event_type, r) for r in records)
        if corrupt and type_index == 0:
            _add_corrupt_files(export, folder, event_type, factory, hour)
    return export


def _add_corrupt_files(
    export: Export, folder: Path, event_type: str, factory: EventFactory, hour: datetime
) -> None:
    schema = avro_schema(event_type)
    records = [factory.record(event_type, schema, hour) for _ in range(40)]
    whole = write_avro(folder / "truncated+0+9999999990.avro", schema, records)
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) * 2 // 3])
    empty = folder / "empty+0+9999999991.avro"
    empty.write_bytes(b"")
    export.corrupt_files[whole] = "truncated"
    export.corrupt_files[empty] = "empty"


def main() -> None:
    """Command line: write a sample export for the demo or a benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=5000, help="approximate number of events")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hours", type=int, default=3)
    parser.add_argument("--files-per-hour", type=int, default=2)
    parser.add_argument("--no-corrupt", action="store_true")
    args = parser.parse_args()
    per_file = max(1, args.events // (len(DEFAULT_EVENT_TYPES) * args.hours * args.files_per_hour))
    export = generate_export(
        args.out,
        seed=args.seed,
        hours=args.hours,
        files_per_hour=args.files_per_hour,
        events_per_file=per_file,
        corrupt=not args.no_corrupt,
    )
    print(f"wrote {len(export.events)} events in {len(export.files)} files under {args.out}")


if __name__ == "__main__":
    main()
