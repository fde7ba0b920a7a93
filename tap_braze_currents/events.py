"""The catalogue of known Currents event types and the stream name of each.

`catalogue.json` lists, for every Currents event type Braze documents (plus the retired News Feed
card events), its fields and Avro types, so discovery works on an empty bucket.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from tap_braze_currents.schemas import JSONSchema, record_schema


def stream_name(event_type: str) -> str:
    """`users.behaviors.CustomEvent` -> `users_behaviors_customevent`."""
    return event_type.replace(".", "_").lower()


@cache
def known_event_types() -> dict[str, list[list[Any]]]:
    """Event type -> list of `[field, avro type]`, as in the catalogue file."""
    text = resources.files(__package__).joinpath("catalogue.json").read_text(encoding="utf-8")
    return json.loads(text)


def catalogue_schema(event_type: str) -> JSONSchema | None:
    """JSON Schema of a known event type, or None for a type the catalogue does not know."""
    fields = known_event_types().get(event_type)
    if fields is None:
        return None
    avro = {
        "type": "record",
        "name": event_type.rsplit(".", 1)[-1],
        "fields": [{"name": name, "type": avro_type} for name, avro_type in fields],
    }
    return record_schema(avro)
