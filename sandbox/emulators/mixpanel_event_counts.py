"""Mixpanel's Aggregate Event Counts (``GET /api/query/events``), counted from stored events.

The query API emulator (:mod:`sandbox.emulators.mixpanel_query`) routes the endpoint here after
its own authentication and query-rate limit, so these queries count against the same 60 an hour
and 5 at once as ``engage``. The events are those the ``/import`` emulator kept, which are
already de-duplicated on (event, distinct_id, time, ``$insert_id``) as Mixpanel does.

Documented parameters (https://developer.mixpanel.com/reference/list-recent-events): ``event``
(a JSON array of names, required), ``type`` (``general`` | ``unique`` | ``average``, required),
``unit`` (``minute`` | ``hour`` | ``day`` | ``week`` | ``month``, required; no hourly uniques),
``interval`` or ``from_date`` + ``to_date`` (``YYYY-MM-DD``, inclusive, in the project's
timezone). Where the documentation is silent the emulator chooses and says so: ``type=general``
with ``unit=hour`` or ``day`` is served (what the reconciliation needs), other combinations get a
400 naming them; the answer lists every hour of the range in ``series`` and every asked event in
``values`` (zeros included), with ``legend_size`` the number of events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

UNITS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d"}
MS_THRESHOLD = 100_000_000_000


class EventCountsError(Exception):
    """A request Mixpanel answers with 400; the message is the body's ``error``."""


def _day(params: dict[str, str], name: str) -> date:
    raw = params.get(name)
    if not raw:
        raise EventCountsError(f"{name} is required (or interval)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise EventCountsError(f"{name} must be in the format YYYY-MM-DD, got {raw!r}") from None


def _names(params: dict[str, str]) -> list[str]:
    raw = params.get("event")
    if not raw:
        raise EventCountsError("event is required: a JSON array of event names")
    try:
        names = json.loads(raw)
    except ValueError:
        raise EventCountsError("event must be a JSON-encoded array of event names") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise EventCountsError("event must be a JSON-encoded array of event names")
    return names


def _seconds(raw: Any) -> float:
    value = float(raw)
    return value / 1000 if value >= MS_THRESHOLD else value


def event_counts(
    params: dict[str, str],
    events: Callable[[], Iterable[dict[str, Any]]],
    timezone: tzinfo = UTC,
) -> dict[str, Any]:
    """The answer to one Aggregate Event Counts request, or :class:`EventCountsError`."""
    names = _names(params)
    kind, unit = params.get("type"), params.get("unit")
    if kind not in ("general", "unique", "average"):
        raise EventCountsError("type must be one of general, unique, average")
    if unit not in ("minute", "hour", "day", "week", "month"):
        raise EventCountsError("unit must be one of minute, hour, day, week, month")
    if kind == "unique" and unit in ("minute", "hour"):
        raise EventCountsError("hourly uniques are not supported")
    if kind != "general" or unit not in UNITS:
        raise EventCountsError("the emulator serves type=general with unit hour or day only")
    first, last = _day(params, "from_date"), _day(params, "to_date")
    if last < first:
        raise EventCountsError("to_date must not be before from_date")
    key = UNITS[unit]
    begin = datetime(first.year, first.month, first.day, tzinfo=timezone)
    stop = datetime(last.year, last.month, last.day, tzinfo=timezone) + timedelta(days=1)
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    series, moment = [], begin
    while moment < stop:
        series.append(moment.strftime(key))
        moment += step
    wanted = set(names)
    counted: Counter[tuple[str, str]] = Counter()
    low, high = begin.timestamp(), stop.timestamp()
    for event in events():
        name = event.get("event")
        if name not in wanted:
            continue
        seconds = _seconds(event["properties"]["time"])
        if low <= seconds < high:
            counted[name, datetime.fromtimestamp(seconds, timezone).strftime(key)] += 1
    values = {name: {slot: counted[name, slot] for slot in series} for name in names}
    return {"data": {"series": series, "values": values}, "legend_size": len(names)}
