"""Mixpanel's rules for one imported event, as the /import emulator applies them.

Follows Mixpanel's Import Events reference (https://developer.mixpanel.com/reference/import-events):
the required ``event`` name and ``time``, ``distinct_id`` and ``$insert_id`` properties, the ids
Mixpanel refuses, the time window, the limits on properties, nesting and size
(https://docs.mixpanel.com/docs/data-structure/property-reference/data-type), the duplicate
identity (https://developer.mixpanel.com/reference/event-deduplication) and the truncation of
strings to 255 characters. :func:`validate` words the first problem as ``failed_records`` does;
:func:`plainly_valid` is its fast twin for the common case.
"""

from __future__ import annotations

import json
import re
from typing import Any

DISALLOWED_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        *("anon", "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown"),
        *("<nil>", "0", "-1", "true", "false", "[]", "{}"),
    }
)
MIN_TIME = 31_536_000  # 1971-01-01T00:00:00Z
MS_THRESHOLD = 100_000_000_000
MAX_EVENT_BYTES = 1_048_576
_INSERT_ID = re.compile(r"[A-Za-z0-9-]+")
# The fast path's checks (plainly_valid; the emulator's _parse_fast): ASCII, so bytes == chars.
_SHORT_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}").fullmatch
# json.dumps (ASCII escapes, ", " and ": ") writes at most 6 characters per byte of the JSON it
# was parsed from ("\x7f" -> "\\u007f"; "1e15" -> "1000000000000000.0" is 4.5), so an event
# parsed from fewer bytes than this cannot reach the 1 MB limit.
SURELY_SMALL = MAX_EVENT_BYTES // 6
_CONTAINERS = frozenset((dict, list))


def dedupe_key(event: dict[str, Any]) -> tuple[Any, ...]:
    """Mixpanel's duplicate identity: (event, distinct_id, time in ms, $insert_id)."""
    props = event["properties"]
    raw_time = props["time"]
    time_ms = int(raw_time) if raw_time >= MS_THRESHOLD else round(raw_time * 1000)
    return (event["event"], str(props.get("distinct_id")), time_ms, props["$insert_id"])


def plainly_valid(event: Any, latest: float) -> bool:
    """True if :func:`validate` surely finds nothing (the common case, in a few checks).

    False means "not sure", not "invalid": :func:`validate` then decides. The 1 MB size check
    is the caller's (from the event's size in bytes).
    """
    if type(event) is not dict:
        return False
    name = event.get("event")
    props = event.get("properties")
    if type(name) is not str or not name or type(props) is not dict or len(props) >= 255:
        return False
    return _plain_time(props.get("time"), latest) and _plain_ids(props) and _plain_values(props)


def _plain_time(raw_time: Any, latest: float) -> bool:
    """A number of seconds or milliseconds from 1971 to ``latest``."""
    kind = type(raw_time)
    if kind is not int and kind is not float:
        return False
    seconds = raw_time / 1000 if raw_time >= MS_THRESHOLD else raw_time
    return MIN_TIME <= seconds <= latest


def _plain_ids(props: dict[str, Any]) -> bool:
    """An allowed string or integer distinct_id and a short, plain, allowed $insert_id."""
    distinct_id: Any = props.get("distinct_id")
    kind = type(distinct_id)
    if kind is str:
        if distinct_id.lower() in DISALLOWED_IDS:
            return False
    elif kind is not int or str(distinct_id) in DISALLOWED_IDS:
        return False
    insert_id: Any = props.get("$insert_id")
    return (
        type(insert_id) is str
        and _SHORT_INSERT_ID(insert_id) is not None
        and insert_id.lower() not in DISALLOWED_IDS
    )


def _plain_values(props: dict[str, Any]) -> bool:
    """No nested value too deep or too large."""
    if _CONTAINERS.isdisjoint(map(type, props.values())):
        return True  # no nested values to check
    for value in props.values():
        kind = type(value)
        if (kind is dict or kind is list) and _check_nested(value, 1):
            return False
    return True


def validate(event: Any, now: float) -> tuple[str, str] | None:
    """Return (field, message) of the first problem, or None for a valid event."""
    if not isinstance(event, dict):
        return "event", "each event must be a JSON object"
    name = event.get("event")
    if not isinstance(name, str) or not name:
        return "event", "'event' is invalid: must be a non-empty string"
    props = event.get("properties")
    if not isinstance(props, dict):
        return "properties", "'properties' is invalid: must be an object"
    return (
        _time_problem(props, now)
        or _distinct_id_problem(props)
        or _insert_id_problem(props)
        or _properties_problem(props)
        or _size_problem(event)
    )


def _time_problem(props: dict[str, Any], now: float) -> tuple[str, str] | None:
    """``time``: seconds (or milliseconds) since the epoch, after 1971, at most 1 h ahead."""
    if "time" not in props:
        return "properties.time", "'properties.time' is required"
    raw_time = props["time"]
    if isinstance(raw_time, bool) or not isinstance(raw_time, int | float):
        return (
            "properties.time",
            "'properties.time' is invalid: must be specified as seconds since epoch",
        )
    seconds = raw_time / 1000 if raw_time >= MS_THRESHOLD else raw_time
    if seconds < MIN_TIME:
        return "properties.time", "'properties.time' is invalid: must be after 1971-01-01"
    if seconds > now + 3600:
        return (
            "properties.time",
            "'properties.time' is invalid: must not be more than 1 hour in the future",
        )
    return None


def _distinct_id_problem(props: dict[str, Any]) -> tuple[str, str] | None:
    """``distinct_id``: a string or an integer, none of the disallowed placeholder ids."""
    if "distinct_id" not in props:
        return "properties.distinct_id", "'properties.distinct_id' is required"
    distinct_id = props["distinct_id"]
    if not isinstance(distinct_id, str | int) or isinstance(distinct_id, bool):
        return "properties.distinct_id", "'properties.distinct_id' is invalid: must be a string"
    if str(distinct_id).lower() in DISALLOWED_IDS:
        return (
            "properties.distinct_id",
            f"'properties.distinct_id' is invalid: {distinct_id!r} is not an allowed distinct_id",
        )
    return None


def _insert_id_problem(props: dict[str, Any]) -> tuple[str, str] | None:
    """``$insert_id``: letters, digits and hyphens, at most 36 bytes, not a placeholder."""
    insert_id = props.get("$insert_id")
    if insert_id is None:
        return "properties.$insert_id", "'properties.$insert_id' is required"
    if (
        not isinstance(insert_id, str)
        or len(insert_id.encode()) > 36
        or not _INSERT_ID.fullmatch(insert_id)
    ):
        return (
            "$insert_id",
            "'$insert_id' is invalid: must only contain alphanumeric or hyphen '-' characters "
            "and be at most 36 bytes",
        )
    if insert_id.lower() in DISALLOWED_IDS:
        return "$insert_id", f"'$insert_id' is invalid: {insert_id!r} is not allowed"
    return None


def _properties_problem(props: dict[str, Any]) -> tuple[str, str] | None:
    """Fewer than 255 properties, each nested at most 3 levels and 255 items wide."""
    if len(props) >= 255:
        return "properties", f"event has {len(props)} properties; it must have fewer than 255"
    for key, value in props.items():
        problem = _check_nested(value, 1)
        if problem:
            return f"properties.{key}", f"'properties.{key}' is invalid: {problem}"
    return None


def _size_problem(event: dict[str, Any]) -> tuple[str, str] | None:
    if len(json.dumps(event)) >= MAX_EVENT_BYTES:
        return "event", "event must be smaller than 1MB of uncompressed JSON"
    return None


def _check_nested(value: Any, depth: int) -> str | None:
    if isinstance(value, dict):
        if depth > 3:
            return "objects may be nested at most 3 levels deep"
        if len(value) >= 255:
            return "objects must have fewer than 255 keys"
        for item in value.values():
            if problem := _check_nested(item, depth + 1):
                return problem
    elif isinstance(value, list):
        if len(value) >= 255:
            return "lists must have fewer than 255 elements"
        for item in value:
            if problem := _check_nested(item, depth + 1):
                return problem
    return None


def truncate(value: Any) -> Any:
    """Mixpanel truncates every string to 255 characters."""
    if isinstance(value, str):
        return value[:255]
    if isinstance(value, dict):
        return {k: truncate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [truncate(v) for v in value]
    return value
