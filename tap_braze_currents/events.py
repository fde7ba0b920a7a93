"""JSON Schemas of the known Currents event types, from the shared catalogue."""

from __future__ import annotations

from braze_mixpanel_common.currents import known_event_types
from tap_braze_currents.schemas import JSONSchema, record_schema


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
