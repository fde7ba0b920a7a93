"""Source 'webhook': the three streams, read from the spool incrementally.

Only whole cycles are emitted (see :mod:`tap_mixpanel_cohorts.spool_plan`).

* ``cohort_members``: one complete ``members`` session = a snapshot of that one cohort, followed
  by its own ``ACTIVATE_VERSION``; records carry ``session_id`` and ``received_at``, which tells
  target-braze the snapshot replaces that cohort only.
* ``cohort_member_changes``: one record per member of each ``add_members`` / ``remove_members``
  session, in delivery order per cohort (never netted).
* ``cohorts``: id, name and description of each cohort this run emits sessions of, with
  ``members_session_id`` naming the snapshot it carries (so an empty snapshot is seen too).

The state holds one watermark per cohort and stream (see :mod:`tap_mixpanel_cohorts.spool_plan`),
stored right after the stream emitted that cohort's part: a spooled page is read once and the
state stays as small as the number of cohorts.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from typing_extensions import override

from braze_mixpanel_common.cohort_spool import Page, SessionInfo
from braze_mixpanel_common.cohorts import (
    CHANGE,
    CHANGE_ADD,
    CHANGE_REMOVE,
    CHANGES_STREAM,
    COHORT_ID,
    COHORT_NAME,
    COHORTS_STREAM,
    DISTINCT_ID,
    EXTERNAL_ID,
    MEMBERS_SESSION_ID,
    MEMBERS_STREAM,
    RECEIVED_AT,
    SESSION_ID,
)
from braze_mixpanel_common.errors import SourceError
from braze_mixpanel_common.fast_records import PassThroughRecords
from tap_mixpanel_cohorts.members import SKIP_NO_EXTERNAL_ID, delivered_ids, id_string
from tap_mixpanel_cohorts.spool_plan import CohortWork
from tap_mixpanel_cohorts.streams import CohortsStream
from tap_mixpanel_cohorts.webhook import WATERMARKS, SpoolSource

if TYPE_CHECKING:
    from tap_mixpanel_cohorts.tap import TapMixpanelCohorts

LISTED = ("id", "name", "description", "project_id")
"""Fields of the query source's ``cohorts`` records that a delivery also carries."""
CHANGE_OF_ACTION = {"add_members": CHANGE_ADD, "remove_members": CHANGE_REMOVE}


class SpoolStream(PassThroughRecords, Stream):
    """A stream of the webhook source: incremental by per-cohort watermarks, not by a field.

    Records are written as built (every value already has its schema type) without the SDK's
    per-record passes when no stream map or deselected field needs them.

    Args:
        tap: the tap, which holds the run's plan.
        schema: the stream's schema (default: the class's).
    """

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapMixpanelCohorts, schema: dict[str, Any] | None = None) -> None:
        super().__init__(tap, schema=schema)
        self.cohort_tap = tap
        self.forced_replication_method = "INCREMENTAL"

    @property
    def source(self) -> SpoolSource:
        """The run's spool source."""
        return self.cohort_tap.spool_source

    @property
    def plans(self) -> dict[str, CohortWork]:
        """The run's per-cohort work (computed once, before any stream emits)."""
        return self.cohort_tap.webhook_plan

    def watermarks(self) -> dict[str, str]:
        """This stream's stored watermarks."""
        return dict(self.stream_state.get(WATERMARKS) or {})

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """No per-record bookmark: the watermark moves after a whole session (see ``mark``)."""

    def mark(self, cohort_id: str, key: str | None) -> None:
        """Store that this stream consumed ``cohort_id``'s sessions up to ``key``; emit state."""
        if key is None:
            return
        self.stream_state.setdefault(WATERMARKS, {})[cohort_id] = key
        self.state_manager.is_flushed = False
        self._write_state_message()

    def delivered(
        self, session: SessionInfo, skipped: collections.Counter[str]
    ) -> Iterator[tuple[Page, dict[str, Any], str, str]]:
        """``(page, member, distinct_id, external_id)`` of each usable member, in order.

        Members without a distinct id or a Braze id are counted in ``skipped`` by reason;
        members without ``user_id_property`` are counted per cohort by the source.
        """
        settings = self.cohort_tap.settings
        prop = settings.user_id_property
        for page in self.source.pages(session):
            for member in page.members:
                distinct_id, external_id, reason = delivered_ids(
                    member,
                    user_id_property=prop,
                    fallback_to_distinct_id=settings.fallback_to_distinct_id,
                )
                if reason == SKIP_NO_EXTERNAL_ID:
                    self.source.count_without_property(session.cohort_id, fell_back=False)
                elif external_id == distinct_id and id_string(member.get(prop)) is None:
                    self.source.count_without_property(session.cohort_id, fell_back=True)
                if reason is not None:
                    skipped[reason] += 1
                    continue
                yield page, member, str(distinct_id), str(external_id)

    def skip_note(self, skipped: collections.Counter[str]) -> str:
        """Skipped members by reason, for a log line."""
        user_id_property = self.cohort_tap.settings.user_id_property
        parts = [
            f"{n} with {f'no {user_id_property!r}' if r == SKIP_NO_EXTERNAL_ID else r}"
            for r, n in sorted(skipped.items())
        ]
        return f" ({', '.join(parts)})" if parts else ""


class SpoolCohortsStream(SpoolStream):
    """The cohorts this run emits sessions of, as their latest delivery describes them."""

    name = COHORTS_STREAM
    primary_keys = ("id",)
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            **{k: CohortsStream.schema["properties"][k] for k in LISTED},
            MEMBERS_SESSION_ID: {
                "type": ["string", "null"],
                "description": "The members session whose snapshot this run's cohort_members "
                "carries",
            },
        },
        "required": ["id"],
    }

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """One record per cohort with sessions emitted this run."""
        for work in self.plans.values():
            if not work.emitted:
                continue
            info = self.source.cohort_info(work.emitted[-1])
            yield {
                "id": info.cohort_id,
                "name": info.name,
                "description": info.description,
                "project_id": info.project_id,
                MEMBERS_SESSION_ID: work.snapshot.session_id if work.snapshot else None,
            }


class SpoolMembersStream(SpoolStream):
    """Complete ``members`` sessions: each a snapshot of one cohort, then ACTIVATE_VERSION."""

    name = MEMBERS_STREAM
    primary_keys = (COHORT_ID, DISTINCT_ID)

    def __init__(self, tap: TapMixpanelCohorts, member_schema: dict[str, Any]) -> None:
        schema = {**member_schema, "properties": dict(member_schema["properties"])}
        schema["properties"][SESSION_ID] = th.StringType().to_dict()
        schema["properties"][RECEIVED_AT] = th.DateTimeType().to_dict()
        super().__init__(tap, schema=schema)
        self._last_version = 0

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Each planned snapshot, its ACTIVATE_VERSION, then its watermark."""
        activate = self.cohort_tap.settings.emit_activate_version_messages
        for cohort_id, work in self.plans.items():
            if work.snapshot is not None:
                version = self._next_version()
                self._stream_version = version
                yield from self._snapshot(work.snapshot)
                if activate:
                    self._write_activate_version_message(version)
            self.mark(cohort_id, work.members_mark)
        self.source.report_members(self.name)

    def _next_version(self) -> int:
        self._last_version = max(int(time.time() * 1000), self._last_version + 1)
        return self._last_version

    def _snapshot(self, session: SessionInfo) -> Iterator[dict[str, Any]]:
        info = self.source.cohort_info(session)
        properties = self.cohort_tap.settings.output_properties
        skipped: collections.Counter[str] = collections.Counter()
        count = 0
        for page, member, distinct_id, external_id in self.delivered(session, skipped):
            record = {
                COHORT_ID: info.cohort_id,
                COHORT_NAME: info.name,
                SESSION_ID: session.session_id,
                RECEIVED_AT: page.received_at,
                DISTINCT_ID: distinct_id,
                EXTERNAL_ID: external_id,
            }
            for name in properties:
                record[name] = member.get(name)
            count += 1
            yield record
        self.logger.info(
            "Cohort %s %r: snapshot from members session %s (%d pages): %d members, %d skipped%s.",
            info.cohort_id,
            info.name,
            session.session_id,
            session.total_pages,
            count,
            sum(skipped.values()),
            self.skip_note(skipped),
        )


class CohortChangesStream(SpoolStream):
    """``add_members`` / ``remove_members`` sessions: one record per delivered member."""

    name = CHANGES_STREAM
    primary_keys = (COHORT_ID, SESSION_ID, DISTINCT_ID)
    schema = th.PropertiesList(
        th.Property(COHORT_ID, th.IntegerType, required=True),
        th.Property(COHORT_NAME, th.StringType),
        th.Property(EXTERNAL_ID, th.StringType, required=True, description="The Braze external_id"),
        th.Property(DISTINCT_ID, th.StringType, required=True),
        th.Property(
            CHANGE, th.StringType(allowed_values=[CHANGE_ADD, CHANGE_REMOVE]), required=True
        ),
        th.Property(SESSION_ID, th.StringType, required=True),
        th.Property(RECEIVED_AT, th.DateTimeType, description="When the receiver stored the page"),
    ).to_dict()

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Each planned change session in order, then the cohort's watermark."""
        for cohort_id, work in self.plans.items():
            for session in work.changes:
                yield from self._changes(session)
            self.mark(cohort_id, work.changes_mark)
        self.source.report_members(self.name)

    def _changes(self, session: SessionInfo) -> Iterator[dict[str, Any]]:
        info = self.source.cohort_info(session)
        action = session.action
        change = CHANGE_OF_ACTION.get(action)
        if change is None:
            raise SourceError(
                f"Spool session {session.session_id} of cohort {session.cohort_id} has action "
                f"{action!r}; expected members, add_members or remove_members."
            )
        skipped: collections.Counter[str] = collections.Counter()
        count = 0
        for page, _, distinct_id, external_id in self.delivered(session, skipped):
            count += 1
            yield {
                COHORT_ID: info.cohort_id,
                COHORT_NAME: info.name,
                EXTERNAL_ID: external_id,
                DISTINCT_ID: distinct_id,
                CHANGE: change,
                SESSION_ID: session.session_id,
                RECEIVED_AT: page.received_at,
            }
        self.logger.info(
            "Cohort %s %r: %s session %s (%d pages): %d changes, %d skipped%s.",
            info.cohort_id,
            info.name,
            action,
            session.session_id,
            session.total_pages,
            count,
            sum(skipped.values()),
            self.skip_note(skipped),
        )
