"""Compare the Currents files with Mixpanel, per event name and hour, into a report."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from reconcile.export_loop.expected import count_expected, hour_keys
from reconcile.export_loop.found import check_budget, count_found
from reconcile.export_loop.settings import Settings
from reconcile.report import Report, Row
from tap_braze_currents.storage import CurrentsStorage
from tap_mixpanel_cohorts.client import MixpanelQueryClient

CHECK = "export-loop"
COLUMNS = ("expected", "found", "difference")


def whole_hour(moment: datetime) -> datetime:
    """``moment`` in UTC, cut to its hour (windows are whole hours)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def reconcile_export_loop(
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    logger: logging.Logger,
    client: MixpanelQueryClient | None = None,
) -> Report:
    """Check the hours ``[start, end)``: every event name the files hold, every hour.

    A row per (event name, hour) where either side has events; ``difference`` is found minus
    expected (negative: events missing in Mixpanel; positive: more in Mixpanel than the files
    hold, e.g. another source sending the same event name, or events delivered later than
    ``late_hours``), and the row's drift its size.
    """
    start, end = whole_hour(start), whole_hour(end)
    if end <= start:
        raise ValueError("the window is empty: its end must be after its start")
    storage = CurrentsStorage(settings.storage_url, settings.storage_options)
    expected = count_expected(
        storage,
        start,
        end,
        timezone=settings.timezone,
        min_event_time=settings.min_event_time,
        late_hours=settings.late_hours,
        event_types=settings.event_types,
    )
    names = sorted({name for name, _ in expected.counts})
    if not names:
        logger.warning(
            "No Currents events in %s to %s: nothing to compare. Check 'storage_url' and "
            "'event_types' if events were expected.",
            start.isoformat(),
            end.isoformat(),
        )
    queries = check_budget(len(names), settings.events_per_query, settings.query_budget)
    found = count_found(
        client or MixpanelQueryClient(settings.query, logger),
        names,
        start,
        end,
        timezone=settings.timezone,
        events_per_query=settings.events_per_query,
        logger=logger,
    )
    hours = hour_keys(start, end, settings.timezone)
    rows = []
    for name in names:
        for hour in hours:
            want, got = expected.counts[name, hour], found[name, hour]
            if want or got:
                counts = {"expected": want, "found": got, "difference": got - want}
                rows.append(Row({"event": name, "hour": hour}, counts, abs(got - want)))
    return Report(
        CHECK,
        checked=sum(expected.counts.values()),
        rows=rows,
        details={
            "window": {
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "hours": int((end - start).total_seconds() // 3600),
                "project_timezone": settings.timezone.key,
            },
            "event_names": len(names),
            "queries": queries,
            "expected_total": sum(expected.counts.values()),
            "found_total": sum(found[name, hour] for name in names for hour in hours),
            **expected.details(),
        },
    )
