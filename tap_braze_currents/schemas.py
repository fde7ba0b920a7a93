"""Avro writer schemas -> JSON Schema, and the union of several schemas of one event type.

Braze only ever adds optional fields to a Currents schema, so the stream schema of an event type is
the union of the schemas of all its files: every field of every file, with the union of the types
each file gave it.
"""

from __future__ import annotations

from typing import Any

JSONSchema = dict[str, Any]

_PRIMITIVES: dict[str, JSONSchema] = {
    "null": {"type": ["null"]},
    "boolean": {"type": ["boolean"]},
    "int": {"type": ["integer"]},
    "long": {"type": ["integer"]},
    "float": {"type": ["number"]},
    "double": {"type": ["number"]},
    "bytes": {"type": ["string"], "contentEncoding": "base64"},
    "string": {"type": ["string"]},
}
_LOGICAL: dict[str, JSONSchema] = {
    "timestamp-millis": {"type": ["string"], "format": "date-time"},
    "timestamp-micros": {"type": ["string"], "format": "date-time"},
    "local-timestamp-millis": {"type": ["string"], "format": "date-time"},
    "local-timestamp-micros": {"type": ["string"], "format": "date-time"},
    "date": {"type": ["string"], "format": "date"},
    "time-millis": {"type": ["string"], "format": "time"},
    "time-micros": {"type": ["string"], "format": "time"},
    "uuid": {"type": ["string"]},
    "decimal": {"type": ["number"]},
}


def avro_to_jsonschema(avro: Any, named: dict[str, JSONSchema] | None = None) -> JSONSchema:
    """Convert one Avro type (primitive, union, record, array, map, enum, fixed, logical)."""
    named = {} if named is None else named
    if isinstance(avro, list):
        return _merge_all([avro_to_jsonschema(branch, named) for branch in avro])
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return dict(_PRIMITIVES[avro])
        if avro in named:
            return named[avro]
        return {}  # an unknown named type: accept any value rather than fail the stream
    logical = avro.get("logicalType")
    if logical in _LOGICAL:
        return dict(_LOGICAL[logical])
    kind = avro.get("type")
    if kind == "record":
        schema: JSONSchema = {
            "type": ["object"],
            "properties": {
                field["name"]: avro_to_jsonschema(field["type"], named) for field in avro["fields"]
            },
        }
    elif kind == "array":
        schema = {"type": ["array"], "items": avro_to_jsonschema(avro["items"], named)}
    elif kind == "map":
        schema = {"type": ["object"], "additionalProperties": avro_to_jsonschema(avro["values"])}
    elif kind == "enum":
        schema = {"type": ["string"], "enum": list(avro["symbols"])}
    elif kind == "fixed":
        schema = dict(_PRIMITIVES["bytes"])
    else:
        schema = avro_to_jsonschema(kind, named)
    if kind in ("record", "enum", "fixed") and "name" in avro:
        named[avro["name"]] = schema
        if avro.get("namespace"):
            named[f"{avro['namespace']}.{avro['name']}"] = schema
    return schema


def record_schema(writer_schema: Any) -> JSONSchema:
    """JSON Schema of a Currents file's records (an Avro record schema).

    Raises:
        ValueError: ``writer_schema`` is not a record schema.
    """
    schema = avro_to_jsonschema(writer_schema)
    if "properties" not in schema:
        raise ValueError("the file's Avro schema is not a record")
    return schema


def merge(left: JSONSchema, right: JSONSchema) -> JSONSchema:
    """Union of two JSON Schemas as produced by :func:`avro_to_jsonschema`."""
    if not left or not right:
        return {}
    types = _types(left) + [t for t in _types(right) if t not in _types(left)]
    merged: JSONSchema = {**left, **right, "type": types}
    if "properties" in left or "properties" in right:
        props = dict(left.get("properties", {}))
        for name, prop in right.get("properties", {}).items():
            props[name] = merge(props[name], prop) if name in props else prop
        merged["properties"] = props
    if "items" in left and "items" in right:
        merged["items"] = merge(left["items"], right["items"])
    if left.get("format") != right.get("format") or left.get("enum") != right.get("enum"):
        merged.pop("format", None)
        merged.pop("enum", None)
    return merged


def _merge_all(schemas: list[JSONSchema]) -> JSONSchema:
    result = schemas[0]
    for schema in schemas[1:]:
        result = merge(result, schema)
    return result


def _types(schema: JSONSchema) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)
