"""Record -> Mixpanel event.

Braze Currents streams are mapped as Braze's connector maps them; generic streams through the
``event_name`` / ``event_name_field`` / ``distinct_id_field`` / ``time_field`` /
``insert_id_field`` settings.

A mapper returns the event dict, or raises :class:`SkipRecord` (deliberate skip, counted) or
:class:`RejectRecord` (cannot be sent; the record goes to the dead-letter file).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

import msgspec

from target_mixpanel.events import (
    CUSTOM_EVENT_PREFIX,
    CUSTOM_EVENT_TYPE,
    EVENT_NAMES,
    EVENT_TYPE_BY_STREAM,
    PURCHASE_TYPE,
    generic_event_name,
)
from target_mixpanel.stats import RunStats

MAX_PROPERTIES = 254  # Mixpanel: "Each event must have fewer than 255 properties."
MAX_STRING = 255  # Mixpanel: "We truncate all strings down to 255 characters."
MS_THRESHOLD = 100_000_000_000  # larger epoch values are milliseconds (year 5138 in seconds)

# Mixpanel refuses these as distinct_id or $insert_id (import-events docs).
DISALLOWED_IDS = frozenset(
    {
        "00000000-0000-0000-0000-000000000000",
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "na",
        "undefined",
        "unknown",
        "<nil>",
        "0",
        "-1",
        "true",
        "false",
        "[]",
        "{}",
    }
)
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_hash_encoder = msgspec.json.Encoder(order="sorted", enc_hook=str, decimal_format="number")
_props_decoder = msgspec.json.Decoder()

CURRENTS_PROPERTY_PREFIX = {
    CUSTOM_EVENT_TYPE: "[Custom event property] ",
    PURCHASE_TYPE: "[Purchase property] ",
}
# Currents fields that are not copied under their own name.
_CURRENTS_CONSUMED = frozenset(
    {"id", "external_user_id", "time", "device_model", "os_version", "distinct_id", "$insert_id"}
)
_GENERIC_RESERVED = frozenset({"time", "distinct_id", "$insert_id"})
_SCALARS = (int, float, bool, Decimal)


class SkipRecord(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The record is deliberately not sent (the reason is counted in the summary)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RejectRecord(Exception):  # noqa: N818
    """The record cannot become a valid Mixpanel event; it goes to the dead-letter file."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def stable_insert_id(value: Any) -> str:
    """A valid ``$insert_id`` for ``value``.

    ``value`` itself when Mixpanel accepts it (<= 36 chars of ``[A-Za-z0-9-]``, not a reserved
    word), else a 32-hex-char hash of it: stable, so replays dedupe.
    """
    text = value if isinstance(value, str) else str(value)
    if _INSERT_ID.fullmatch(text) and text.lower() not in DISALLOWED_IDS:
        return text
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def record_hash_id(stream: str, record: dict[str, Any]) -> str:
    """A stable ``$insert_id`` from the record's content (``_sdc_`` fields excluded)."""
    clean = {k: v for k, v in record.items() if not k.startswith("_sdc_")}
    digest = hashlib.blake2b(stream.encode("utf-8"), digest_size=16)
    digest.update(_hash_encoder.encode(clean))
    return digest.hexdigest()


def parse_event_time(value: Any) -> tuple[int | float, float]:
    """Return (the value to send as ``time``, epoch seconds) for epoch s/ms or ISO date-times.

    Whole seconds are sent as integer seconds; anything finer as integer milliseconds (Mixpanel
    accepts both and keeps millisecond precision).

    Raises:
        ValueError: the value is not a time.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError("not a time")
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, int | float | Decimal):
        return _from_number(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            return _from_number(Decimal(text))
        except (InvalidOperation, ValueError):
            pass
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        raise ValueError("not a time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    seconds = moment.timestamp()
    if moment.microsecond:
        return round(seconds * 1000), seconds
    return int(seconds), seconds


def _from_number(number: float | Decimal) -> tuple[int | float, float]:
    if math.isnan(number) or number in (float("inf"), float("-inf")):  # NaN / infinite
        raise ValueError("not a time")
    if number >= MS_THRESHOLD:
        return int(number), float(number) / 1000
    if number == int(number):
        return int(number), float(number)
    return round(float(number) * 1000), float(number)


class EventMapper:
    """Shared limits handling: string truncation, nested values, the property cap."""

    def __init__(self, stream: str, stats: RunStats, *, min_time: float, ip: str | None) -> None:
        self.stream = stream
        self.stats = stats
        self.min_time = min_time
        self.ip = ip

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        """Build the Mixpanel event for ``record``."""
        raise NotImplementedError

    def _clip(self, value: Any) -> Any:
        """Truncate strings (also nested ones and object keys) to 255 characters."""
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING:
                self.stats.truncated_strings += 1
                return value[:MAX_STRING]
            return value
        if kind is dict:
            return {self._clip(str(k)): self._clip(v) for k, v in value.items()}
        if kind is list:
            return [self._clip(v) for v in value]
        return value

    def _put(self, props: dict[str, Any], key: str, value: Any) -> None:
        if len(key) > MAX_STRING:
            self.stats.truncated_strings += 1
            key = key[:MAX_STRING]
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING:
                self.stats.truncated_strings += 1
                value = value[:MAX_STRING]
        elif kind is dict or kind is list:
            value = self._clip(value)
        props[key] = value

    def _finish(self, event: str, props: dict[str, Any]) -> dict[str, Any]:
        if len(props) > MAX_PROPERTIES:
            self.stats.dropped_properties += len(props) - MAX_PROPERTIES
            props = dict(islice(props.items(), MAX_PROPERTIES))
        if len(event) > MAX_STRING:
            self.stats.truncated_strings += 1
            event = event[:MAX_STRING]
        return {"event": event, "properties": props}

    def _base_properties(
        self,
        record: dict[str, Any],
        *,
        distinct_id: Any,
        missing_reason: str,
        time_field: str,
        insert_source: Any,
    ) -> dict[str, Any]:
        """``time``, ``distinct_id`` and ``$insert_id``, or skip/reject the record."""
        if distinct_id is None or distinct_id == "":
            raise SkipRecord(missing_reason)
        sent_time, _ = self._check_time(record.get(time_field), time_field)
        return {
            "time": sent_time,
            "distinct_id": distinct_id if type(distinct_id) is str else str(distinct_id),
            "$insert_id": stable_insert_id(insert_source)
            if insert_source not in (None, "")
            else record_hash_id(self.stream, record),
        }

    def _check_time(self, value: Any, field: str) -> tuple[int | float, float]:
        try:
            sent, seconds = parse_event_time(value)
        except (ValueError, TypeError, OverflowError):
            raise RejectRecord(
                field, f"field '{field}' is missing or not a time: {value!r}"
            ) from None
        if seconds < self.min_time:
            raise SkipRecord("before_min_event_time")
        return sent, seconds


class CurrentsMapper(EventMapper):
    """A Braze Currents stream, mapped as Braze's own Currents -> Mixpanel connector does."""

    def __init__(
        self,
        stream: str,
        stats: RunStats,
        *,
        min_time: float,
        ip: str | None,
        event_type: str | None = None,
    ) -> None:
        super().__init__(stream, stats, min_time=min_time, ip=ip)
        self.event_type = event_type or EVENT_TYPE_BY_STREAM.get(stream)
        self.is_custom = self.event_type == CUSTOM_EVENT_TYPE
        self.prefix = CURRENTS_PROPERTY_PREFIX.get(self.event_type or "")
        if self.event_type:
            self.event_name = EVENT_NAMES.get(self.event_type) or generic_event_name(
                self.event_type
            )
        else:
            self.event_name = generic_event_name(stream)

    def map(self, record: dict[str, Any]) -> dict[str, Any]:  # noqa: D102
        props = self._base_properties(
            record,
            distinct_id=record.get("external_user_id"),
            missing_reason="no_external_user_id",
            time_field="time",
            insert_source=record.get("id"),
        )
        props["$partner_id"] = "braze"
        if self.ip is not None:
            props["ip"] = self.ip
        if (device := record.get("device_model")) is not None:
            self._put(props, "$device", device)
        if (os_version := record.get("os_version")) is not None:
            self._put(props, "$os", os_version)
        prefix = self.prefix
        for key, value in record.items():
            if value is None or key in _CURRENTS_CONSUMED or key.startswith("_sdc_"):
                continue
            if prefix is not None and key == "properties":
                self._expand(props, value, prefix)
                continue
            kind = type(value)  # inlined fast path of _put: this loop runs for every field
            if kind is str:
                text = value
                if len(text) > MAX_STRING:
                    self.stats.truncated_strings += 1
                    text = text[:MAX_STRING]
                if len(key) > MAX_STRING:
                    self._put(props, key, text)
                else:
                    props[key] = text
            elif kind in _SCALARS and len(key) <= MAX_STRING:
                props[key] = value
            else:
                self._put(props, key, value)
        if self.is_custom:
            name = record.get("name")
            if not name:
                raise RejectRecord("name", "CustomEvent record has no 'name'")
            event = CUSTOM_EVENT_PREFIX + str(name)
        else:
            event = self.event_name
        return self._finish(event, props)

    def _expand(self, props: dict[str, Any], raw: Any, prefix: str) -> None:
        """Expand the ``properties`` JSON; keep it raw (and count it) if not an object."""
        if isinstance(raw, dict):
            parsed: Any = raw
        else:
            try:
                parsed = _props_decoder.decode(raw)
            except (msgspec.DecodeError, TypeError):
                parsed = None
            if parsed is None and raw in ("", "null"):
                return
        if not isinstance(parsed, dict):
            self.stats.invalid_properties_json += 1
            self._put(props, "properties", raw if isinstance(raw, str) else str(raw))
            return
        for key, value in parsed.items():
            self._put(props, prefix + str(key), value)


class GenericMapper(EventMapper):
    """Any other stream: one event per record.

    The event is named by the record's ``event_name_field`` when that field holds a name, else
    by ``event_name``, else by the stream; the name field is not repeated as a property.
    """

    def __init__(
        self,
        stream: str,
        stats: RunStats,
        *,
        min_time: float,
        ip: str | None,
        event_name: str | None,
        distinct_id_field: str,
        time_field: str,
        insert_id_field: str | None,
        event_name_field: str | None = None,
    ) -> None:
        super().__init__(stream, stats, min_time=min_time, ip=ip)
        self.event_name = event_name or stream
        self.event_name_field = event_name_field
        self.distinct_id_field = distinct_id_field
        self.time_field = time_field
        self.insert_id_field = insert_id_field
        self._left_out = _GENERIC_RESERVED | ({event_name_field} if event_name_field else set())

    def _name(self, record: dict[str, Any]) -> str:
        """The event name: the record's name field when it holds one, else the fallback."""
        if self.event_name_field is None:
            return self.event_name
        value = record.get(self.event_name_field)
        if isinstance(value, str):
            if value.strip():
                return value
        elif isinstance(value, int | Decimal | float) and not isinstance(value, bool):
            return str(value)
        elif value is not None:
            raise RejectRecord(
                self.event_name_field,
                f"the event name field holds a {type(value).__name__}, not text",
            )
        self.stats.event_name_fallbacks += 1
        return self.event_name

    def map(self, record: dict[str, Any]) -> dict[str, Any]:  # noqa: D102
        props = self._base_properties(
            record,
            distinct_id=record.get(self.distinct_id_field),
            missing_reason="no_distinct_id",
            time_field=self.time_field,
            insert_source=record.get(self.insert_id_field) if self.insert_id_field else None,
        )
        name = self._name(record)
        if self.ip is not None:
            props["ip"] = self.ip
        left_out = self._left_out
        for key, value in record.items():
            if value is None or key in left_out or key.startswith("_sdc_"):
                continue
            if type(value) in _SCALARS and len(key) <= MAX_STRING:
                props[key] = value
            else:
                self._put(props, key, value)
        return self._finish(name, props)


def is_currents_stream(stream: str, schema: dict[str, Any]) -> bool:
    """Whether a stream gets the Currents mapping.

    True for a known Currents stream name, or an unknown ``users_*``/``agentconsole_*`` stream
    whose schema has the Currents shape (``id``, ``time``, ``external_user_id``).
    """
    if stream in EVENT_TYPE_BY_STREAM:
        return True
    props = schema.get("properties") or {}
    return stream.startswith(("users_", "agentconsole_")) and {
        "id",
        "time",
        "external_user_id",
    } <= set(props)
