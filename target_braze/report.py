"""What a run tells the user: one-time warnings, the end-of-run summary and its figures."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.counters import Counters
from braze_mixpanel_common.deadletter import DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter
from braze_mixpanel_common.http import describe_waits, waits_by_cause
from braze_mixpanel_common.progress import Progress, log_summary_json
from target_braze.run import StreamRun, UpsertCounts
from target_braze.settings import Settings


class WarnOnce:
    """Logs each kind of warning (named by a key) once per run."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: set[str] = set()

    def __call__(self, key: str, message: str, *args: Any) -> None:
        """Log ``message % args`` as a warning unless ``key`` was warned about already."""
        if key not in self._seen:
            self._seen.add(key)
            self.logger.warning(message, *args)


class UsersProgress:
    """Counts users (and data points) sent or planned; logs progress every few seconds.

    Adds ``users`` and ``data_points`` to the run's counters, next to the HTTP caller's
    ``requests``, ``retries`` and ``rate_limited``. Call :meth:`count` once per request.
    """

    def __init__(
        self, counters: Counters, clock: Clock, logger: logging.Logger, *, dry_run: bool
    ) -> None:
        self.counters = counters
        self.progress = Progress(logger, "target-braze", clock=clock)
        self.verb = "planned (dry run)" if dry_run else "confirmed"

    def count(self, users: int, data_points: int = 0) -> None:
        """Count one request's users and data points; maybe log a progress line."""
        counters = self.counters
        counters.add(users=users, data_points=data_points)
        self.progress.update(
            counters["users"],
            lambda rate: (
                f"{counters['requests']:.0f} requests ({counters['retries']:.0f} retries, "
                f"{counters['rate_limited']:.0f} rate-limited), {counters['users']:.0f} users "
                f"{self.verb}, {counters['data_points']:.0f} data points, {rate:.0f} users/s"
            ),
        )


def log_summary(
    logger: logging.Logger,
    settings: Settings,
    *,
    streams: Mapping[str, StreamRun],
    upserts: Mapping[str, UpsertCounts],
    counters: Counters,
    dead_letters: DeadLetterFile,
    dry_run: DryRunWriter | None,
) -> None:
    """Log per-cohort adds/removes/skipped, per-stream upserts and the request figures."""
    verb = "planned (dry run)" if settings.dry_run else "confirmed"
    for run in streams.values():
        plan = run.plan
        for cohort_id, counts in sorted(run.counts.items()):
            cohort = plan.cohorts.get(cohort_id) if plan else None
            flags = []
            if cohort and cohort.withheld:
                flags.append(f"removals withheld: {cohort.leavers}")
            if cohort and cohort.vanished:
                flags.append("vanished upstream")
            added, removed = counts.added, counts.removed
            if settings.dry_run and cohort:
                added, removed = cohort.planned_adds, cohort.planned_removes
            logger.info(
                "Cohort '%s' (id %s, stream %s): %d added, %d removed %s, %d rejected, "
                "%d skipped without '%s'%s.",
                counts.name,
                cohort_id,
                run.stream,
                added,
                removed,
                verb,
                counts.rejected,
                counts.skipped,
                settings.user_id_field,
                f" ({'; '.join(flags)})" if flags else "",
            )
        if plan and settings.dry_run:
            logger.info(
                "Stream '%s': %d additions and %d removals planned (dry run, nothing sent).",
                run.stream,
                plan.adds,
                plan.removes,
            )
    for stream, up in upserts.items():
        logger.info(
            "Stream '%s': %d users upserted, %d rejected, %d skipped without '%s'.",
            stream,
            up.sent,
            up.rejected,
            up.skipped,
            settings.user_id_field,
        )
    logger.info(
        "Braze requests: %d (%d retries, %d rate-limited), %s, dead letters: %d%s.",
        counters["requests"],
        counters["retries"],
        counters["rate_limited"],
        describe_waits(counters),
        dead_letters.count,
        f" in {dead_letters.path}" if dead_letters.count else "",
    )
    if settings.mode == "attributes":
        logger.info(
            "Braze data points: %d %s by %d users (see docs/target-braze.md, 'Data points').",
            counters["data_points"],
            "a real run would consume" if settings.dry_run else "consumed",
            counters["users"],
        )
    if dry_run is not None:
        logger.info("Dry run: %d request bodies written.", dry_run.count)
    log_summary_json(
        logger,
        "target-braze",
        figures(
            settings, streams=streams, upserts=upserts, counters=counters, dead_letters=dead_letters
        ),
    )


def figures(
    settings: Settings,
    *,
    streams: Mapping[str, StreamRun],
    upserts: Mapping[str, UpsertCounts],
    counters: Counters,
    dead_letters: DeadLetterFile,
) -> dict[str, Any]:
    """The run's totals (the JSON summary's fields).

    In a dry run, ``added``/``removed`` are the planned changes and ``data_points`` what a real
    run would consume; ``users`` counts attribute objects Braze accepted (or a dry run wrote),
    in mode ``partner_cohorts`` the user ids of accepted (or planned) cohort changes.
    """
    added = removed = rejected = skipped = 0
    for run in streams.values():
        for cohort_id, counts in run.counts.items():
            cohort = run.plan.cohorts.get(cohort_id) if run.plan else None
            if settings.dry_run and cohort is not None:
                added, removed = added + cohort.planned_adds, removed + cohort.planned_removes
            else:
                added, removed = added + counts.added, removed + counts.removed
            rejected += counts.rejected
            skipped += counts.skipped
    return {
        "mode": settings.mode,
        "dry_run": settings.dry_run,
        "cohort_members_added": added,
        "cohort_members_removed": removed,
        "rejected": rejected + sum(u.rejected for u in upserts.values()),
        "skipped": skipped + sum(u.skipped for u in upserts.values()),
        "users_upserted": sum(u.sent for u in upserts.values()),
        "users": int(counters["users"]),
        "data_points": int(counters["data_points"]),
        "requests": int(counters["requests"]),
        "retries": int(counters["retries"]),
        "rate_limited": int(counters["rate_limited"]),
        "waited_s": round(counters["waited_s"], 3),
        **{f"waited_{cause}_s": round(s, 3) for cause, s in waits_by_cause(counters).items()},
        "dead_letters": dead_letters.count,
    }


def summary(
    streams: Mapping[str, StreamRun], counters: Counters, dead_letters: DeadLetterFile
) -> dict[str, Any]:
    """The run's figures as a dict (tests and benchmarks)."""
    return {
        "cohorts": {
            (run.stream, cid): Counter(
                added=c.added, removed=c.removed, rejected=c.rejected, skipped=c.skipped
            )
            for run in streams.values()
            for cid, c in run.counts.items()
        },
        "requests": int(counters["requests"]),
        "retries": int(counters["retries"]),
        "dead_letters": dead_letters.count,
    }
