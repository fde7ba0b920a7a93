"""What Mixpanel holds: Aggregate Event Counts (``GET /api/query/events``) per event and hour.

One query asks up to ``events_per_query`` event names (``event`` is a JSON array) over the
whole window (``from_date``/``to_date``, days in the project's timezone) with ``unit=hour`` and
``type=general`` (total events, not uniques). The window's cost is therefore
``ceil(event names / events_per_query)`` queries, whatever its length. Every query goes through
tap-mixpanel-cohorts' query client: the shared retry loop, the shared rate limiter
(``max_queries_per_hour`` per sliding hour, ``max_concurrent_queries`` at once) and the shared
auth and region code.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, tzinfo
from typing import Any

from braze_mixpanel_common.errors import ConfigurationError
from tap_mixpanel_cohorts.client import MixpanelQueryClient, MixpanelQueryError

EVENTS_PATH = "/api/query/events"
CONSEQUENCE = "The reconciliation did not finish: no verdict."


def queries_needed(names: int, events_per_query: int) -> int:
    """Queries one window costs for ``names`` event names."""
    return math.ceil(names / events_per_query) if names else 0


def check_budget(names: int, events_per_query: int, query_budget: int) -> int:
    """The queries the window needs; raise before any query when over ``query_budget``."""
    needed = queries_needed(names, events_per_query)
    if needed > query_budget:
        raise ConfigurationError(
            f"Checking {names} event names needs {needed} queries ({events_per_query} names a "
            f"query, setting 'events_per_query'), more than 'query_budget' allows "
            f"({query_budget}). Raise one of them, or pass fewer 'event_types'."
        )
    return needed


def _date_range(start: datetime, end: datetime, timezone: tzinfo) -> tuple[str, str]:
    last = end - timedelta(seconds=1)
    return (
        start.astimezone(timezone).strftime("%Y-%m-%d"),
        last.astimezone(timezone).strftime("%Y-%m-%d"),
    )


def _values(body: Any, what: str) -> dict[str, Any]:
    values = body.get("data", {}).get("values") if isinstance(body, dict) else None
    if not isinstance(values, dict):
        raise MixpanelQueryError(
            f"Mixpanel {what} answered without data.values; expected Aggregate Event Counts."
        )
    return values


def count_found(
    client: MixpanelQueryClient,
    names: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    timezone: tzinfo,
    events_per_query: int,
    logger: logging.Logger,
) -> Counter[tuple[str, str]]:
    """Mixpanel's total events per (event name, hour key) for ``names`` over ``[start, end)``.

    Hours outside the window (the rest of the first and last day) are returned too; the caller
    keeps the window's.
    """
    found: Counter[tuple[str, str]] = Counter()
    if not names:
        return found
    from_date, to_date = _date_range(start, end, timezone)
    batches = [
        list(names[i : i + events_per_query]) for i in range(0, len(names), events_per_query)
    ]

    def query(batch_number: int) -> dict[str, Any]:
        batch = batches[batch_number]
        what = f"events query {batch_number + 1} of {len(batches)}"
        body = client.request(
            EVENTS_PATH,
            {
                "event": json.dumps(batch),
                "type": "general",
                "unit": "hour",
                "from_date": from_date,
                "to_date": to_date,
            },
            what=what,
            method="GET",
            consequence=CONSEQUENCE,
        )
        return _values(body, what)

    workers = max(1, min(len(batches), client.limiter.max_in_flight or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="events-query") as pool:
        for values in pool.map(query, range(len(batches))):
            for name, hours in values.items():
                if not isinstance(hours, dict):
                    continue
                for hour, count in hours.items():
                    if isinstance(count, int | float) and count:
                        found[str(name), str(hour)] += int(count)
    logger.info(
        "Mixpanel: %d queries for %d event names, %s to %s (%s).",
        len(batches),
        len(names),
        from_date,
        to_date,
        getattr(timezone, "key", timezone),
    )
    return found
