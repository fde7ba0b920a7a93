"""The two streams: ``cohorts`` and ``cohort_members``, each a full snapshot per run."""

from __future__ import annotations

import collections
import functools
import math
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.helpers.types import Context
from typing_extensions import override

from braze_mixpanel_common.cohorts import (
    COHORT_ID,
    COHORT_NAME,
    COHORTS_STREAM,
    DISTINCT_ID,
    EXTERNAL_ID,
    MEMBERS_STREAM,
)
from braze_mixpanel_common.http import describe_waits, waits_by_cause
from braze_mixpanel_common.progress import Progress, log_summary_json
from tap_mixpanel_cohorts.client import PageStats
from tap_mixpanel_cohorts.members import SKIP_NO_EXTERNAL_ID, member_record

if TYPE_CHECKING:
    from tap_mixpanel_cohorts.tap import TapMixpanelCohorts

ANY_JSON: dict[str, Any] = {
    "type": ["string", "number", "integer", "boolean", "object", "array", "null"],
    "description": "Mixpanel profile property, as Mixpanel returns it",
}


class SnapshotStream(Stream):
    """A full-table stream whose ``ACTIVATE_VERSION`` closes a *complete* snapshot.

    The SDK writes ``ACTIVATE_VERSION`` before the records; consumers that delete what a version
    does not contain (SQL targets, target-braze) must only see it once every record is out, so
    the message is written when :meth:`snapshot_records` finishes without error, never after a
    failed or truncated run. Set ``emit_activate_version_messages`` to false to turn it off.

    Args:
        tap: the tap, whose settings, client and cohort selection the stream reads.
        schema: the stream's schema (default: the class's).
    """

    def __init__(self, tap: TapMixpanelCohorts, schema: dict[str, Any] | None = None) -> None:
        super().__init__(tap, schema=schema)
        self.cohort_tap = tap

    @override
    @property
    def emit_activate_version_messages(self) -> bool:
        """Disable the SDK's message at the start of the sync; see :meth:`get_records`."""
        return False

    def snapshot_records(self) -> Iterable[dict[str, Any]]:
        """Every record of the snapshot."""
        raise NotImplementedError

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield the snapshot, then write ``ACTIVATE_VERSION`` if it completed."""
        activate = self.cohort_tap.settings.emit_activate_version_messages
        if activate:
            # Records carry this version; the SDK's sync would have set it with its own message.
            self._stream_version = int(time.time() * 1000)
        yield from self.snapshot_records()
        if activate and self.selected and self._stream_version is not None:
            self._write_activate_version_message(self._stream_version)


def parse_created(value: Any) -> str | None:
    """Mixpanel's ``created`` (``YYYY-MM-DD HH:MM:SS``, no zone) as ISO 8601 in UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class CohortsStream(SnapshotStream):
    """Cohorts from ``/api/query/cohorts/list``: every visible one, or those in ``cohort_ids``."""

    name = COHORTS_STREAM
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType, required=True, description="Cohort id"),
        th.Property("name", th.StringType, description="Cohort name"),
        th.Property("description", th.StringType),
        th.Property("count", th.IntegerType, description="Members when Mixpanel listed it"),
        th.Property(
            "created",
            th.DateTimeType,
            description="Creation time (Mixpanel gives no zone; read as UTC)",
        ),
        th.Property("is_visible", th.BooleanType),
        th.Property("project_id", th.IntegerType),
    ).to_dict()

    @override
    def snapshot_records(self) -> Iterable[dict[str, Any]]:
        """One record per selected cohort."""
        for cohort in self.cohort_tap.selected_cohorts():
            yield {
                "id": int(cohort["id"]),
                "name": cohort.get("name"),
                "description": cohort.get("description"),
                "count": _int_or_none(cohort.get("count")),
                "created": parse_created(cohort.get("created")),
                "is_visible": bool(_int_or_none(cohort.get("is_visible")) or 0),
                "project_id": _int_or_none(cohort.get("project_id")),
            }


class CohortMembersStream(SnapshotStream):
    """Members of each selected cohort from ``/api/query/engage`` with ``filter_by_cohort``.

    One record per (cohort, member), streamed page by page: memory stays flat whatever the
    cohort size. ``external_id`` comes from ``user_id_property``, else the ``distinct_id``
    (``fallback_to_distinct_id``), else the member is skipped and counted.
    """

    name = MEMBERS_STREAM
    primary_keys = (COHORT_ID, DISTINCT_ID)

    def __init__(self, tap: TapMixpanelCohorts, output_properties: Sequence[str]) -> None:
        super().__init__(tap, schema=member_schema(output_properties))

    @override
    def snapshot_records(self) -> Iterable[dict[str, Any]]:
        """Every member of every selected cohort."""
        tap = self.cohort_tap
        settings = tap.settings
        client = tap.client
        cohorts = tap.selected_cohorts()
        user_id_property = settings.user_id_property
        totals: collections.Counter[str] = collections.Counter()
        started = client.limiter.used
        progress = Progress(self.logger, tap.name, clock=tap.clock)

        for index, cohort in enumerate(cohorts):
            cohort_id = int(cohort["id"])
            cohort_name = str(cohort.get("name") or "")
            later = cohorts[index + 1 :]
            stats = PageStats()
            members = 0
            skipped: collections.Counter[str] = collections.Counter()
            pages = client.iter_member_pages(
                cohort_id,
                settings.requested_properties,
                stats,
                expected_members=_int_or_none(cohort.get("count")),
                pages_after=functools.partial(_pages_for, later, settings.page_size),
            )
            for page in pages:
                for result in page:
                    record, reason = member_record(
                        result,
                        cohort_id,
                        cohort_name,
                        user_id_property=user_id_property,
                        fallback_to_distinct_id=settings.fallback_to_distinct_id,
                        output_properties=settings.output_properties,
                    )
                    if record is None:
                        skipped[str(reason)] += 1
                        continue
                    members += 1
                    yield record
                progress.update(  # once per page; a line every few seconds
                    totals["members"] + members,
                    functools.partial(
                        _progress_line,
                        f"cohort {cohort_id} ({index + 1}/{len(cohorts)})",
                        members,
                        totals["pages"] + stats.pages,
                        client.http.counters["waited_budget_s"],
                    ),
                )
            detail = _describe_skips(skipped, user_id_property)
            self.logger.info(
                "Cohort %s %r: %d members, %d skipped%s, %d pages, %d queries used.",
                cohort_id,
                cohort_name,
                members,
                sum(skipped.values()),
                f" ({detail})" if detail else "",
                stats.pages,
                stats.queries,
            )
            totals.update(members=members, skipped=sum(skipped.values()), pages=stats.pages)
        self.logger.info(
            "cohort_members snapshot complete: %d cohorts, %d members, %d skipped, %d pages, "
            "%d queries used this run (%d with cohorts/list), %s.",
            len(cohorts),
            totals["members"],
            totals["skipped"],
            totals["pages"],
            client.limiter.used - started,
            client.limiter.used,
            describe_waits(client.http.counters),
        )
        elapsed = progress.elapsed()
        log_summary_json(
            self.logger,
            tap.name,
            {
                "stream": self.name,
                "cohorts": len(cohorts),
                "members": totals["members"],
                "skipped": totals["skipped"],
                "pages": totals["pages"],
                "queries": client.limiter.used - started,
                "queries_with_cohorts_list": client.limiter.used,
                **{
                    f"waited_{cause}_s": round(seconds, 3)
                    for cause, seconds in waits_by_cause(client.http.counters).items()
                },
                "elapsed_s": round(elapsed, 3),
                "members_per_s": round(totals["members"] / max(elapsed, 1e-9), 1),
            },
        )


def _progress_line(cohort: str, members: int, pages: int, waited: float, rate: float) -> str:
    """The progress line while a cohort's pages are read (``pages``: of the whole run)."""
    return (
        f"{cohort}: {members} members so far; run: {pages} pages, {rate:.0f} members/s, "
        f"{waited:.0f} s waited for the query budget"
    )


def member_schema(output_properties: Sequence[str]) -> dict[str, Any]:
    """The ``cohort_members`` schema: the contract's fields, then each extra property."""
    schema = th.PropertiesList(
        th.Property(COHORT_ID, th.IntegerType, required=True),
        th.Property(COHORT_NAME, th.StringType),
        th.Property(DISTINCT_ID, th.StringType, required=True),
        th.Property(EXTERNAL_ID, th.StringType, description="The Braze external_id"),
    ).to_dict()
    for name in output_properties:
        schema["properties"][name] = dict(ANY_JSON)
    return schema


def _pages_for(cohorts: Sequence[dict[str, Any]], page_size: int) -> int:
    """Pages the cohorts need by their listed ``count`` (at least one each), for progress logs."""
    return sum(max(math.ceil((_int_or_none(c.get("count")) or 0) / page_size), 1) for c in cohorts)


def _describe_skips(skipped: collections.Counter[str], user_id_property: str) -> str:
    parts = []
    for reason, count in sorted(skipped.items()):
        label = f"no '{user_id_property}'" if reason == SKIP_NO_EXTERNAL_ID else reason
        parts.append(f"{count} with {label}")
    return ", ".join(parts)
