"""Source 'webhook': the spool of Mixpanel cohort-sync pages, planned once per run.

The receiver (``mixpanel-cohort-webhook``) writes one object per delivered page; this module
lists the spool once, applies the cycle rules of :mod:`tap_mixpanel_cohorts.spool_plan` with
the watermarks in the tap's state, reports what it consumes, discards and waits for (every
assumption about Mixpanel's undocumented behaviour is counted), warns about deliveries still
missing pages, and reads a delivery's pages one at a time for the streams. It also counts, per
cohort, the members delivered without the Braze id property.
"""

from __future__ import annotations

import collections
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
        self._first_pages: dict[tuple[str, str, str], Page] = {}
        self.without_property: collections.Counter[str] = collections.Counter()
        """Per cohort: members delivered without ``user_id_property``."""
        self.fell_back: collections.Counter[str] = collections.Counter()
        """Per cohort: of those, members sent to Braze under their distinct id."""

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
                members_selected=members_selected,
                changes_selected=changes_selected,
            )
        self._report(plans)
        return plans

    def _report(self, plans: Mapping[str, CohortWork]) -> None:
        total = collections.Counter[str]()
        for work in plans.values():
            total["cycles"] += work.cycles
            total["superseded"] += len(work.superseded)
            total["failed"] += len(work.failed)
            total["in progress"] += len(work.in_progress)
            total["held"] += len(work.waiting) - len(work.in_progress)
            total["lacks remove"] += work.lacks_remove
            total["lone remove"] += work.lone_removes
        self.logger.info(
            "Spool: %d cohort(s), %d cycle(s) to emit, %d superseded by a later full export, "
            "%d discarded as failed (a later cycle completed), %d in progress (waiting for "
            "pages or their remove_members call), %d held back behind a snapshot; assumptions: "
            "%d add_members without a remove_members after it, %d remove_members without an "
            "add_members before it.",
            len(plans),
            total["cycles"],
            total["superseded"],
            total["failed"],
            total["in progress"],
            total["held"],
            total["lacks remove"],
            total["lone remove"],
        )
        if self.spool.older_layout_pages:
            self.logger.warning(
                "Spool: %d page(s) are stored in the layout of an earlier release "
                "(cohort=…/session=…/page-….json, without an action folder) and are not read. "
                "Consume them with the earlier release first, or re-sync those cohorts from "
                "Mixpanel (docs/cohort-webhook.md, 'The spool').",
                self.spool.older_layout_pages,
            )
        for work in plans.values():
            for cycle in work.failed:
                self.logger.warning(
                    "Cohort %s: discarded the failed cycle %s: a later cycle completed, and "
                    "Mixpanel computed it from the snapshot before the failed one.",
                    work.cohort_id,
                    _describe(cycle.deliveries),
                )
            if work.lone_removes:
                self.logger.warning(
                    "Cohort %s: %d remove_members call(s) with no add_members call before them "
                    "were applied on their own (the sender did not send add_members first).",
                    work.cohort_id,
                    work.lone_removes,
                )
        limit = timedelta(minutes=self.settings.incomplete_session_warn_minutes)
        for session in (s for w in plans.values() for s in w.incomplete):
            age = self.now - session.first_seen
            if age >= limit:
                missing = session.missing_pages
                self.logger.warning(
                    "Cohort %s: %s session %s still misses %d of %d pages (first: %s) %d minutes "
                    "after its first page arrived; its cycle waits until it completes or a later "
                    "cycle does (setting 'incomplete_session_warn_minutes').",
                    session.cohort_id,
                    session.action,
                    session.session_id,
                    len(missing),
                    session.total_pages,
                    ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else ""),
                    age.total_seconds() // 60,
                )

    def count_without_property(self, cohort_id: str, fell_back: bool) -> None:
        """Count a member delivered without ``user_id_property`` (and whether it fell back)."""
        self.without_property[cohort_id] += 1
        self.fell_back[cohort_id] += fell_back

    def report_members(self, stream: str) -> None:
        """One stream's summary of members delivered without ``user_id_property``, per cohort.

        Called by each stream when it has emitted its part (the counts then start again).
        """
        prop = self.settings.user_id_property
        for cohort_id, count in sorted(self.without_property.items()):
            self.logger.warning(
                "%s: cohort %s: %d member(s) delivered without the property %r (%d sent to Braze "
                "under their Mixpanel distinct id, %d skipped). Check that %r is chosen under "
                "\"Properties to Export\" in Mixpanel's sync, or set 'user_id_property' to the "
                "name Mixpanel delivers.",
                stream,
                cohort_id,
                count,
                prop,
                self.fell_back[cohort_id],
                count - self.fell_back[cohort_id],
                prop,
            )
        self.without_property.clear()
        self.fell_back.clear()

    def first_page(self, session: SessionInfo) -> Page:
        """Page 1 of a complete delivery (read once per run, then kept without its members)."""
        key = (session.cohort_id, session.session_id, session.action)
        page = self._first_pages.get(key)
        if page is None:
            full = self.spool.read_page(session, 1)
            params = {k: v for k, v in full.parameters.items() if k != "members"}
            page = self._first_pages[key] = Page(full.received_at, full.action, params)
        return page

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
            if page.action != session.action:
                raise SourceError(
                    f"Spool session {session.session_id} of cohort {session.cohort_id}: a page "
                    f"in its {session.action} folder holds {page.action}; it is not read."
                )
            yield page


def _describe(deliveries: list[SessionInfo]) -> str:
    return " + ".join(
        f"{d.action} session {d.session_id} ({len(d.pages_present)} of {d.total_pages or '?'} "
        "pages)"
        for d in deliveries
    )


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
