r"""The sandbox Mixpanel project's cohort sync to a custom webhook, sent as Mixpanel documents it.

Mixpanel's "Custom Webhook" integration, as its page "Syncing cohorts to a custom webhook"
(https://docs.mixpanel.com/docs/cohort-sync/webhooks) describes it and :class:`CohortSyncPusher`
sends it:

* every cycle (Mixpanel: 30 minutes; here a parameter of the command) each synced cohort gets an
  ``add_members`` call and then a ``remove_members`` call, **empty ones included**, each one
  session of pages of ``page_size`` (1,000) members; the first sync is a full sync;
* the diffs are computed against the last **successful** snapshot; a cycle fails when a page is
  still refused after 5 retries over about 60 s (exponential backoff, on 5xx, 429 and broken
  connections only) and is then re-sent "from the top" next cycle, recomputed from that snapshot;
* 400, 401, 403 and 404 **pause** the cohort's sync until :meth:`CohortSyncPusher.resume`
  (Mixpanel emails the people who set up syncs); the pause is reported;
* the snapshot expires after ``snapshot_ttl`` (Mixpanel: 3 days): the next cycle is a full sync.

Where the page is silent or contradicts itself, a switch covers each reading: ``first_sync`` as
``members`` (the prose) or ``add_members`` + an empty ``remove_members`` (the worked example);
``shared_session_id``: both calls of a cycle under one ``mixpanel_session_id`` or each under its
own; ``empty_page_info``: an empty call's ``page_info`` as ``total_pages/page_count`` ``1/1`` (no
members), ``0/0``, ``0/1``, or ``absent``; ``resend_same_session``: a failed cycle re-sent
unchanged keeps its session id(s).
``unreachable`` lets a test make chosen pages fail as a network outage would.

It reads cohorts and profiles from a :class:`MixpanelQueryEmulator` (or a
:class:`~sandbox.loop.mixpanel_loop.MixpanelLoop`'s, rebuilt before each cycle), so the same sandbox
project serves both the query path and the webhook path. Run it as a command to push the cohorts
of a data file (the query emulator's format) every ``--interval`` seconds::

    python -m sandbox.emulators.mixpanel_cohort_sync --webhook-url http://127.0.0.1:8080/ \\
        --cohorts cohorts.json --cycles 3 --interval 5 --first-sync add_members
"""

from __future__ import annotations

import argparse
import collections
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
FIRST_SYNC = ("members", "add_members")
EMPTY_PAGE_INFO = ("1/1", "0/0", "0/1", "absent")
PAUSING = frozenset({400, 401, 403, 404})
"""Answers Mixpanel treats as non-transient: the sync pauses until a person resumes it."""
THREE_DAYS = 3 * 24 * 3600.0
_Members = list[Any] | GeneratedMembers


def mixpanel_backoff() -> BackoffPolicy:
    """Mixpanel's retries: 5 after the first try, doubling from 2 s (62 s in all), no jitter."""
    return BackoffPolicy(initial=2.0, maximum=32.0, jitter=(0.0, 0.0), max_attempts=6)


@dataclass
class _Snapshot:
    """The cohort as of the last successful cycle, and when that was."""

    ids: set[str]
    members: _Members
    at: float


class DeliveryFailed(RuntimeError):  # noqa: N818 (the name says what happened)
    """A page was still refused after every retry (or refused with another 4xx)."""


class SyncPaused(RuntimeError):  # noqa: N818 (the name says what happened)
    """The webhook answered 400, 401, 403 or 404: Mixpanel pauses the cohort's sync."""


@dataclass
class SessionReport:
    """One call (one action of one session) as delivered."""

    cohort_id: int
    action: str
    session_id: str
    pages: int
    members: int
    attempts: int = 0
    failed: bool = False
    paused: bool = False


@dataclass
class CohortSyncPusher:
    """Pushes cohort syncs to ``webhook_url`` as Mixpanel's custom-webhook integration does.

    Args:
        query: The sandbox project (cohorts, profiles and project id).
        webhook_url: Where Mixpanel POSTs.
        auth: Optional Basic-auth (username, password).
        page_size: Members per page (Mixpanel: 1,000).
        concurrency: Pages of one call sent at once (> 1 delivers them out of order).
        exported_properties: Profile properties chosen under "Properties to Export".
        backoff: Retries of one page (default: Mixpanel's, :func:`mixpanel_backoff`).
        before_cycle: Called before each cycle (e.g. ``MixpanelLoop.rebuild``).
        first_sync: ``members`` or ``add_members`` (then an empty ``remove_members`` follows).
        shared_session_id: Both calls of a cycle share one session id.
        empty_page_info: The ``page_info`` of an empty call, ``total_pages/page_count`` or
            ``absent`` (see :data:`EMPTY_PAGE_INFO`).
        resend_same_session: A failed cycle re-sent with the same content keeps its ids.
        snapshot_ttl: Seconds a successful snapshot is kept (then a full sync).
        unreachable: ``(cohort_id, action, page) -> bool``: that page cannot reach the webhook.
    """

    query: MixpanelQueryEmulator
    webhook_url: str
    auth: tuple[str, str] | None = None
    page_size: int = 1000
    concurrency: int = 1
    exported_properties: Sequence[str] = DEFAULT_EXPORTED_PROPERTIES
    backoff: BackoffPolicy = field(default_factory=mixpanel_backoff)
    before_cycle: Callable[[], object] | None = None
    clock: Clock = field(default_factory=SystemClock)
    timeout: float = 60.0
    first_sync: str = "members"
    shared_session_id: bool = False
    empty_page_info: str = "1/1"
    resend_same_session: bool = False
    snapshot_ttl: float = THREE_DAYS
    unreachable: Callable[[int, str, int], bool] | None = None
    sessions: list[SessionReport] = field(default_factory=list)
    answers: collections.Counter[int] = field(default_factory=collections.Counter)
    """Every HTTP status received, by status."""
    paused: dict[int, str] = field(default_factory=dict)
    """Paused cohorts: the answer that paused each."""
    _synced: dict[int, _Snapshot] = field(default_factory=dict, repr=False)
    _failed: dict[int, tuple[Any, list[str]]] = field(default_factory=dict, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _sequence: Iterator[int] = field(default_factory=itertools.count, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.first_sync not in FIRST_SYNC:
            raise ValueError(f"first_sync must be one of {FIRST_SYNC}, not {self.first_sync!r}")
        if self.empty_page_info not in EMPTY_PAGE_INFO:
            raise ValueError(f"empty_page_info must be one of {EMPTY_PAGE_INFO}")

    # -- one cycle -----------------------------------------------------------------------------

    def sync(self, cohort_ids: Iterable[int] | None = None) -> list[SessionReport]:
        """One sync cycle for the given cohorts (all by default); the calls it made.

        A paused cohort is skipped until :meth:`resume`.
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
        """One cycle of one cohort (see :meth:`sync`): the calls made, in order.

        The cycle stops at the first call that fails; it is successful only when every call of
        it was delivered, and only then becomes the snapshot the next cycle is computed from.
        """
        if cohort.id in self.paused:
            return []
        members = _copy(cohort.members)
        current = set(_ids(members))
        previous = self._synced.get(cohort.id)
        if previous is not None and self.clock.time() - previous.at > self.snapshot_ttl:
            previous = None  # the snapshot expired: a full sync
        plan: list[tuple[str, _Members, set[str] | None]]
        if previous is None and self.first_sync == "members":
            plan = [("members", members, None)]
        elif previous is None:
            plan = [("add_members", members, None), ("remove_members", [], set())]
        else:
            plan = [
                ("add_members", members, current - previous.ids),
                ("remove_members", previous.members, previous.ids - current),
            ]
        session_ids = self._session_ids(cohort.id, plan, current)
        reports = []
        for (action, source, ids), session_id in zip(plan, session_ids, strict=True):
            report = self._deliver(cohort, action, (source, ids), session_id)
            reports.append(report)
            if report.failed:
                break
        if reports[-1].failed:
            self._failed[cohort.id] = (self._content(plan, current), session_ids)
        else:
            self._synced[cohort.id] = _Snapshot(current, members, self.clock.time())
            self._failed.pop(cohort.id, None)
        return reports

    def _session_ids(
        self, cohort_id: int, plan: list[tuple[str, _Members, set[str] | None]], current: set[str]
    ) -> list[str]:
        failed = self._failed.get(cohort_id)
        if self.resend_same_session and failed and failed[0] == self._content(plan, current):
            return failed[1]  # the same cycle, re-sent from the top
        if self.shared_session_id:
            return [self.new_session_id()] * len(plan)
        return [self.new_session_id() for _ in plan]

    def _content(
        self, plan: list[tuple[str, _Members, set[str] | None]], current: set[str]
    ) -> tuple[Any, ...]:
        """What a cycle sends, to tell a re-send of the same cycle (only with the switch on)."""
        if not self.resend_same_session:
            return ()
        return tuple((a, frozenset(current if ids is None else ids)) for a, _, ids in plan)

    def forget(self, cohort_id: int) -> None:
        """Drop the snapshot: the next cycle is a full sync (as after 3 days without success)."""
        self._synced.pop(cohort_id, None)

    def resume(self, cohort_id: int) -> None:
        """A person resumes a paused sync in Mixpanel's UI."""
        self.paused.pop(cohort_id, None)

    # -- delivery ------------------------------------------------------------------------------

    def _deliver(
        self,
        cohort: Cohort,
        action: str,
        selection: tuple[_Members, set[str] | None],
        session_id: str,
    ) -> SessionReport:
        """Send one call: every member of the source, or only those in the ids."""
        source, ids = selection
        count = len(source) if ids is None else len(ids)
        total = -(-count // self.page_size)
        report = SessionReport(cohort.id, action, session_id, max(total, 1), count)
        pages = self._pages(cohort, action, selection, session_id, total)
        try:
            if self.concurrency <= 1:
                for body in pages:
                    report.attempts += self._post(body)
            else:
                report.attempts += self._post_concurrently(pages)
        except DeliveryFailed:
            report.failed = True
        except SyncPaused as pause:
            report.failed = report.paused = True
            self.paused[cohort.id] = str(pause)
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
        """The call's bodies, built one page at a time (a million members are never held).

        ``selection`` is the member list and the ids to send from it (None: all of them). An
        empty call is one body whose ``page_info`` has the shape ``empty_page_info`` says.
        """
        source, ids = selection
        members = (
            self._member(distinct_id, props) for distinct_id, props in self._members(source, ids)
        )
        for page in range(1, max(total, 1) + 1):
            chunk = list(itertools.islice(members, self.page_size))
            parameters: dict[str, Any] = {
                "mixpanel_project_id": str(self.query.project_id),
                "mixpanel_cohort_id": str(cohort.id),
                "mixpanel_cohort_name": cohort.name,
                "mixpanel_cohort_description": cohort.description,
                "mixpanel_session_id": session_id,
                "page_info": {"total_pages": total, "page_count": page},
                "members": chunk,
            }
            if total == 0:
                if self.empty_page_info == "absent":
                    del parameters["page_info"]
                else:
                    total_pages, page_count = map(int, self.empty_page_info.split("/"))
                    parameters["page_info"] = {"total_pages": total_pages, "page_count": page_count}
            yield {"action": action, "parameters": parameters}

    def _post(self, body: dict[str, Any]) -> int:
        """POST one page until a 2xx answer; the number of attempts it took.

        5xx, 429 and broken connections are retried with :attr:`backoff`; 400, 401, 403 and
        404 raise :class:`SyncPaused`; any other answer fails the page at once.
        """
        data = msgspec.json.encode(body)
        session = self._session()
        parameters = body["parameters"]
        page = int((parameters.get("page_info") or {}).get("page_count") or 1)
        where = (int(parameters["mixpanel_cohort_id"]), str(body["action"]), page)
        for attempt in range(1, self.backoff.max_attempts + 1):
            status = self._attempt(session, data, where)
            if status is not None and 200 <= status < 300:
                return attempt
            if status in PAUSING:
                raise SyncPaused(f"{status} to {where[1]} page {page}")
            if status is not None and status != 429 and status < 500:
                raise DeliveryFailed(f"{status} to {where[1]} page {page}")
            if attempt < self.backoff.max_attempts:
                self.clock.sleep(self.backoff.delay(attempt))
        raise DeliveryFailed(f"page refused {self.backoff.max_attempts} times")

    def _attempt(
        self, session: requests.Session, data: bytes, where: tuple[int, str, int]
    ) -> int | None:
        """One POST: the answer's status, or None when it did not get through."""
        if self.unreachable is not None and self.unreachable(*where):
            return None
        try:
            response = session.post(
                self.webhook_url,
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException:
            return None
        with self._lock:
            self.answers[response.status_code] += 1
        return response.status_code

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
    parser.add_argument("--interval", type=float, default=30 * 60, help="seconds between cycles")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--first-sync", choices=FIRST_SYNC, default="members")
    parser.add_argument("--shared-session-id", action="store_true")
    parser.add_argument("--empty-page-info", choices=EMPTY_PAGE_INFO, default="1/1")
    parser.add_argument("--resend-same-session", action="store_true")
    parser.add_argument("--snapshot-ttl", type=float, default=THREE_DAYS, help="seconds")
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
        first_sync=args.first_sync,
        shared_session_id=args.shared_session_id,
        empty_page_info=args.empty_page_info,
        resend_same_session=args.resend_same_session,
        snapshot_ttl=args.snapshot_ttl,
    )
    for cycle in range(1, args.cycles + 1):
        for report in pusher.sync():
            state = "PAUSED" if report.paused else "FAILED" if report.failed else "ok"
            print(
                f"cycle {cycle}: cohort {report.cohort_id} {report.action} session "
                f"{report.session_id}: {report.members} members in {report.pages} pages, {state}",
                file=sys.stderr,
            )
        for cohort_id, reason in pusher.paused.items():
            print(f"cycle {cycle}: cohort {cohort_id}: sync PAUSED ({reason})", file=sys.stderr)
        if cycle < args.cycles:
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
