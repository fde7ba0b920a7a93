r"""The sandbox Mixpanel project's cohort sync to a custom webhook, pushed like Mixpanel does it.

Mixpanel's "Custom Webhook" integration (``reference/mixpanel.md`` section 7) sends a cohort's
whole membership first (action ``members``), then on each sync cycle only the users who entered
(``add_members``) or left (``remove_members``). Each export is one session
(``mixpanel_session_id``) of one or more pages of ``page_size`` members; an empty diff is one page
without members. A non-2xx answer or a broken connection is retried with backoff; a session that
still fails makes the next cycle send the whole cohort again (``members``), which is how Mixpanel
recovers. Basic auth is optional.

:class:`CohortSyncPusher` reads cohorts and profiles from a :class:`MixpanelQueryEmulator` (or a
:class:`~sandbox.mixpanel_loop.MixpanelLoop`'s, rebuilt before each cycle), so the same sandbox
project serves both the query path and the webhook path. Run it as a command to push the cohorts
of a data file (the query emulator's format) every ``--interval`` seconds::

    python -m sandbox.mixpanel_cohort_sync --webhook-url http://127.0.0.1:8080/ \\
        --cohorts cohorts.json --cycles 3 --interval 5
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import requests

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator

DEFAULT_EXPORTED_PROPERTIES = ("$braze_external_id",)
_Members = list[Any] | GeneratedMembers


@dataclass
class _Snapshot:
    """What the webhook holds for a cohort after the last complete delivery."""

    ids: set[str]
    members: _Members


class DeliveryFailed(RuntimeError):  # noqa: N818 (the name says what happened)
    """A page was still refused after every retry."""


@dataclass
class SessionReport:
    """One export session as delivered."""

    cohort_id: int
    action: str
    session_id: str
    pages: int
    members: int
    attempts: int = 0
    failed: bool = False


@dataclass
class CohortSyncPusher:
    """Pushes cohort syncs to ``webhook_url`` as Mixpanel's custom-webhook integration does.

    Args:
        query: The sandbox project (cohorts, profiles and project id).
        webhook_url: Where Mixpanel POSTs.
        auth: Optional Basic-auth (username, password).
        page_size: Members per page.
        concurrency: Pages of one session sent at once (> 1 delivers them out of order).
        exported_properties: Profile properties chosen under "Properties to Export".
        backoff: Retry policy for non-2xx answers and broken connections.
        before_cycle: Called before each cycle (e.g. ``MixpanelLoop.rebuild``).
    """

    query: MixpanelQueryEmulator
    webhook_url: str
    auth: tuple[str, str] | None = None
    page_size: int = 1000
    concurrency: int = 1
    exported_properties: Sequence[str] = DEFAULT_EXPORTED_PROPERTIES
    backoff: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(initial=0.2, maximum=5.0, jitter=(0.0, 0.2))
    )
    before_cycle: Callable[[], object] | None = None
    clock: Clock = field(default_factory=SystemClock)
    timeout: float = 60.0
    sessions: list[SessionReport] = field(default_factory=list)
    _synced: dict[int, _Snapshot] = field(default_factory=dict, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _sequence: Iterator[int] = field(default_factory=itertools.count, repr=False)

    # -- one cycle -----------------------------------------------------------------------------

    def sync(self, cohort_ids: Iterable[int] | None = None) -> list[SessionReport]:
        """One sync cycle for the given cohorts (all by default); the sessions it delivered.

        A cohort seen for the first time (or after a failed delivery) gets a ``members``
        session; afterwards an ``add_members`` and a ``remove_members`` session, each possibly
        one empty page. A session still refused after the retries is reported ``failed``.
        """
        if self.before_cycle is not None:
            self.before_cycle()
        with self.query.lock:
            cohorts = [
                c for c in self.query.cohorts.values() if cohort_ids is None or c.id in cohort_ids
            ]
        delivered = []
        for cohort in cohorts:
            delivered += self.sync_cohort(cohort)
        return delivered

    def sync_cohort(self, cohort: Cohort) -> list[SessionReport]:
        """One cycle of one cohort (see :meth:`sync`)."""
        members = _copy(cohort.members)
        current = set(_ids(members))
        previous = self._synced.pop(cohort.id, None)  # forgotten until delivered in full
        plan: list[tuple[str, _Members, set[str] | None]]
        if previous is None:
            plan = [("members", members, None)]
        else:
            plan = [
                ("add_members", members, current - previous.ids),
                ("remove_members", previous.members, previous.ids - current),
            ]
        reports = [self._deliver(cohort, action, source, ids) for action, source, ids in plan]
        if not any(r.failed for r in reports):
            self._synced[cohort.id] = _Snapshot(current, members)
        return reports

    def forget(self, cohort_id: int) -> None:
        """Send the whole cohort next cycle (as Mixpanel does after 3 days without a sync)."""
        self._synced.pop(cohort_id, None)

    # -- delivery ------------------------------------------------------------------------------

    def _deliver(
        self, cohort: Cohort, action: str, source: _Members, ids: set[str] | None
    ) -> SessionReport:
        """Send one session: every member of ``source``, or only those in ``ids``."""
        session_id = self.new_session_id()
        count = len(source) if ids is None else len(ids)
        total = max(1, -(-count // self.page_size))
        report = SessionReport(cohort.id, action, session_id, total, count)
        pages = self._pages(cohort, action, (source, ids), session_id, total)
        try:
            if self.concurrency <= 1:
                for body in pages:
                    report.attempts += self._post(body)
            else:
                report.attempts += self._post_concurrently(pages)
        except DeliveryFailed:
            report.failed = True
        self.sessions.append(report)
        return report

    def _post_concurrently(self, pages: Iterator[dict[str, Any]]) -> int:
        """POST pages ``concurrency`` at a time, building at most twice that many ahead."""
        attempts = 0
        with ThreadPoolExecutor(self.concurrency) as pool:
            pending: set[Future[int]] = set()
            try:
                for body in pages:
                    if len(pending) >= 2 * self.concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        attempts += sum(future.result() for future in done)
                    pending.add(pool.submit(self._post, body))
                attempts += sum(future.result() for future in pending)
            finally:
                for future in pending:
                    future.cancel()
        return attempts

    def new_session_id(self) -> str:
        """A new export session id (sortable by creation, like a timestamp-prefixed id)."""
        millis = int(self.clock.time() * 1000)
        return f"{millis:013d}-{next(self._sequence):06d}-{uuid.uuid4().hex[:8]}"

    def _pages(
        self,
        cohort: Cohort,
        action: str,
        selection: tuple[_Members, set[str] | None],
        session_id: str,
        total: int,
    ) -> Iterator[dict[str, Any]]:
        """The session's bodies, built one page at a time (a million members are never held).

        ``selection`` is the member list and the ids to send from it (None: all of them).
        """
        source, ids = selection
        members = (
            self._member(distinct_id, props) for distinct_id, props in self._members(source, ids)
        )
        for page in range(1, total + 1):
            chunk = list(itertools.islice(members, self.page_size))
            yield {
                "action": action,
                "parameters": {
                    "mixpanel_project_id": str(self.query.project_id),
                    "mixpanel_cohort_id": str(cohort.id),
                    "mixpanel_cohort_name": cohort.name,
                    "mixpanel_cohort_description": cohort.description,
                    "mixpanel_session_id": session_id,
                    "page_info": {"total_pages": total, "page_count": page},
                    "members": chunk,
                },
            }

    def _post(self, body: dict[str, Any]) -> int:
        """POST one page until a 2xx answer; the number of attempts it took."""
        data = msgspec.json.encode(body)
        session = self._session()
        for attempt in range(1, self.backoff.max_attempts + 1):
            try:
                response = session.post(
                    self.webhook_url,
                    data=data,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
                if 200 <= response.status_code < 300:
                    return attempt
            except requests.RequestException:
                pass
            if attempt < self.backoff.max_attempts:
                self.clock.sleep(self.backoff.delay(attempt))
        raise DeliveryFailed(f"page refused {self.backoff.max_attempts} times")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self.auth
            self._local.session = session
        return session

    # -- what Mixpanel exports for a user --------------------------------------------------------

    def _members(
        self, members: _Members, only: set[str] | None = None
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``(distinct_id, profile)`` of each member (or of those in ``only``), in list order.

        A user who left keeps a profile. Profiles are built only for the members sent.
        """
        if isinstance(members, GeneratedMembers):
            if only is None:
                yield from members.slice(0, len(members))
                return
            for index, distinct_id in enumerate(_ids(members)):
                if distinct_id in only:
                    yield from members.slice(index, index + 1)
            return
        profiles = self.query.profiles
        for distinct_id in members:
            if only is None or str(distinct_id) in only:
                yield distinct_id, profiles.get(str(distinct_id), {})

    def _member(self, distinct_id: Any, props: dict[str, Any]) -> dict[str, Any]:
        name = str(props.get("$name", ""))
        first, _, last = name.partition(" ")
        member: dict[str, Any] = {
            "mixpanel_distinct_id": str(distinct_id),
            "email": props.get("$email", ""),
            "first_name": props.get("$first_name", first),
            "last_name": props.get("$last_name", last),
        }
        for name in self.exported_properties:
            if name in props:
                member[name] = props[name]
        return member


def _ids(members: _Members) -> Iterator[str]:
    """The distinct ids of a member list, as strings, without building profiles."""
    if isinstance(members, GeneratedMembers):
        first = members.start
        if members.int_ids:
            return (str(n) for n in range(first, first + members.count))
        return (f"{members.prefix}{n}" for n in range(first, first + members.count))
    return (str(distinct_id) for distinct_id in members)


def _copy(members: _Members) -> _Members:
    """A snapshot of a member list (the emulator's may change in place)."""
    return dataclasses.replace(members) if isinstance(members, GeneratedMembers) else list(members)


def main(argv: list[str] | None = None) -> int:
    """Push the cohorts of a data file to a webhook, ``--cycles`` times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--cohorts", type=Path, required=True, help="query emulator data file")
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--interval", type=float, default=15 * 60)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    query = MixpanelQueryEmulator.from_data(json.loads(args.cohorts.read_text(encoding="utf-8")))
    username = os.environ.get("MIXPANEL_WEBHOOK_USERNAME")
    password = os.environ.get("MIXPANEL_WEBHOOK_PASSWORD")
    pusher = CohortSyncPusher(
        query,
        args.webhook_url,
        auth=(username, password) if username and password else None,
        page_size=args.page_size,
        concurrency=args.concurrency,
    )
    for cycle in range(1, args.cycles + 1):
        for report in pusher.sync():
            state = "FAILED" if report.failed else "ok"
            print(
                f"cycle {cycle}: cohort {report.cohort_id} {report.action} session "
                f"{report.session_id}: {report.members} members in {report.pages} pages, {state}",
                file=sys.stderr,
            )
        if cycle < args.cycles:
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
