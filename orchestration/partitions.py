"""Hour partitions of a Currents backfill, cut like Braze's ``date=YYYY-MM-DD-HH`` folders.

A partition key is the folder's hour (``2026-11-01-10``). Its run reads exactly that hour: the
tap's ``start_date`` is the hour and its ``end_date`` (exclusive) the next one. It keeps a Meltano
state id of its own (the job's state id with the key as suffix), so partitions are independent,
retryable and re-runnable, and a re-run reads only files its own state has not seen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from tap_braze_currents.state import HOUR_FORMAT

BACKFILL_START_ENV = "CURRENTS_BACKFILL_START"
DEFAULT_BACKFILL_DAYS = 90
EXTRACTOR = "tap-braze-currents"
LOADER = "target-mixpanel"


def backfill_start(environ: Mapping[str, str] = os.environ, today: date | None = None) -> date:
    """The first day of the backfill: ``CURRENTS_BACKFILL_START`` (YYYY-MM-DD), else 90 days ago.

    Raises:
        ValueError: The variable is set but is not a date.
    """
    raw = (environ.get(BACKFILL_START_ENV) or "").strip()
    if not raw:
        return (today or datetime.now(UTC).date()) - timedelta(days=DEFAULT_BACKFILL_DAYS)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{BACKFILL_START_ENV}={raw!r} is not a date (YYYY-MM-DD, e.g. 2026-01-01)"
        ) from None


def hour_window(partition_key: str) -> tuple[datetime, datetime]:
    """The ``[start, end)`` hour (UTC) a partition key names."""
    start = datetime.strptime(partition_key, HOUR_FORMAT).replace(tzinfo=UTC)
    return start, start + timedelta(hours=1)


def window_settings(partition_key: str) -> dict[str, str]:
    """The tap settings, as environment variables, that confine a run to one partition."""
    start, end = hour_window(partition_key)
    prefix = EXTRACTOR.upper().replace("-", "_")
    return {
        f"{prefix}_START_DATE": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"{prefix}_END_DATE": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def state_id(environment: str | None, partition_key: str) -> str:
    """The partition's Meltano state id: what ``meltano run --state-id-suffix=<key>`` would use."""
    pipeline = f"{EXTRACTOR}-to-{LOADER}:{partition_key}"
    return f"{environment}:{pipeline}" if environment else pipeline
