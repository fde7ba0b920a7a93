"""Source 'webhook': the spool of Mixpanel cohort-sync pages, planned once per run.

The receiver (``mixpanel-cohort-webhook``) writes one object per delivered page; this module
lists the spool once, applies the ordering rules of :mod:`tap_mixpanel_cohorts.spool_plan` with
the watermarks in the tap's state, warns about sessions still missing pages, and reads a
session's pages one at a time for the streams.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from braze_mixpanel_common.cohort_spool import Page, SessionInfo, Spool, open_spool
from braze_mixpanel_common.errors import SourceError
from tap_mixpanel_cohorts.settings import Settings
from tap_mixpanel_cohorts.spool_plan import CohortWork, plan_cohort

WATERMARKS = "watermarks"
"""Key of the per-cohort watermarks in a stream's state: ``{cohort_id: order key}``."""


@dataclass(frozen=True)
class CohortInfo:
    """A cohort as its latest emitted delivery describes it."""

    cohort_id: int
    name: str
    description: str | None
    project_id: int | None


class SpoolSource:
    """The spool as one run sees it.

    Args:
        settings: the tap's settings (``spool_url``, ``spool_options``, ``cohort_ids``, ...).
        logger: the tap's logger.
        now: the current time (for the age of incomplete sessions).
    """

    def __init__(
        self, settings: Settings, logger: logging.Logger, now: datetime | None = None
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.now = now or datetime.now(UTC)
        self._first_pages: dict[tuple[str, str], Page] = {}

    @cached_property
    def spool(self) -> Spool:
        """The opened spool (never logged with its options, which may hold credentials)."""
        return open_spool(str(self.settings.spool_url), self.settings.spool_options)

    def plan(
        self,
        watermarks: Mapping[str, str],
        *,
        members_selected: bool,
        changes_selected: bool,
    ) -> dict[str, CohortWork]:
        """Each selected cohort's work for this run, from one listing of the spool."""
        wanted = {str(i) for i in self.settings.cohort_ids or ()}
        plans: dict[str, CohortWork] = {}
        for cohort_id, sessions in sorted(self.spool.scan().items()):
            if wanted and cohort_id not in wanted:
                continue
            plans[cohort_id] = plan_cohort(
                cohort_id,
                sessions,
                watermarks.get(cohort_id),
                self.action,
                members_selected=members_selected,
                changes_selected=changes_selected,
            )
        self._report(plans)
        return plans

    def _report(self, plans: Mapping[str, CohortWork]) -> None:
        emitted = sum(len(w.emitted) for w in plans.values())
        superseded = sum(len(w.superseded) for w in plans.values())
        incomplete = [s for w in plans.values() for s in w.incomplete]
        held = sum(len(w.waiting) for w in plans.values()) - len(incomplete)
        self.logger.info(
            "Spool: %d cohort(s), %d session(s) to emit, %d superseded by a later full export, "
            "%d incomplete (waiting for pages), %d held back behind them or a snapshot.",
            len(plans),
            emitted,
            superseded,
            len(incomplete),
            held,
        )
        limit = timedelta(minutes=self.settings.incomplete_session_warn_minutes)
        for session in incomplete:
            age = self.now - session.first_seen
            if age >= limit:
                missing = session.missing_pages
                self.logger.warning(
                    "Cohort %s: session %s still misses %d of %d pages (first: %s) %d minutes "
                    "after its first page arrived; it and the later sessions of this cohort wait "
                    "(setting 'incomplete_session_warn_minutes').",
                    session.cohort_id,
                    session.session_id,
                    len(missing),
                    session.total_pages,
                    ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else ""),
                    age.total_seconds() // 60,
                )

    def first_page(self, session: SessionInfo) -> Page:
        """Page 1 of a complete session (read once per run, then kept without its members)."""
        key = (session.cohort_id, session.session_id)
        page = self._first_pages.get(key)
        if page is None:
            full = self.spool.read_page(
                session.cohort_id, session.session_id, 1, session.total_pages
            )
            params = {k: v for k, v in full.parameters.items() if k != "members"}
            page = self._first_pages[key] = Page(full.received_at, full.action, params)
        return page

    def action(self, session: SessionInfo) -> str:
        """The session's action, from its first page."""
        return self.first_page(session).action

    def cohort_info(self, session: SessionInfo) -> CohortInfo:
        """The cohort's id, name and description as this session delivered them."""
        params = self.first_page(session).parameters
        return CohortInfo(
            cohort_id=self.cohort_number(session),
            name=str(params.get("mixpanel_cohort_name") or ""),
            description=_text(params.get("mixpanel_cohort_description")),
            project_id=_int(params.get("mixpanel_project_id")),
        )

    def cohort_number(self, session: SessionInfo) -> int:
        """The cohort id as an integer (Mixpanel's ids are numbers); an error names the folder."""
        number = _int(session.cohort_id)
        if number is None:
            raise SourceError(
                f"Spool {self.spool.display(self.spool.session_path(session.cohort_id, ''))}: "
                f"cohort id {session.cohort_id!r} is not a number."
            )
        return number

    def pages(self, session: SessionInfo) -> Iterator[Page]:
        """The session's pages in page order, one in memory at a time; checks each belongs."""
        for page in self.spool.iter_pages(session):
            if page.action != self.action(session):
                raise SourceError(
                    f"Spool session {session.session_id} of cohort {session.cohort_id} mixes "
                    f"actions ({self.action(session)} and {page.action}); it is not read."
                )
            yield page


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
