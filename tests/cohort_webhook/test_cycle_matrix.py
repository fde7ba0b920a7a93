"""Mixpanel's documented cycles, every undocumented reading at once, end to end.

One cohort per crossing of {first sync as ``members`` / as ``add_members``} x {shared / separate
session ids} x {each empty-call shape} (16 cohorts), half of them re-sending a failed cycle under
the same session ids. The real receiver, the real tap and target CLIs and the emulator run one
scenario for all of them at once, so each step is one pipeline run: failures on page 2 of 3, an
``add_members`` that completes with its ``remove_members`` failing (the pipeline runs in between),
the receiver down for a whole cycle, cycles repeated from the top, a full sync after the snapshot
expired, users joining and leaving. Braze must hold each cohort's membership as of the last cycle
Mixpanel counted successful after every run, and no cohort may be held back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_cohort_sync import EMPTY_PAGE_INFO, FIRST_SYNC, CohortSyncPusher
from sandbox.emulators.mixpanel_query import Cohort, MixpanelQueryEmulator
from tests.cohort_webhook.conftest import PASSWORD, USER
from tests.cohort_webhook.pipeline import BRAZE_KEY, WebhookLoop
from tests.support.clock import FakeClock

AUTH = (USER, PASSWORD)
CROSSINGS = list(itertools.product(FIRST_SYNC, (True, False), EMPTY_PAGE_INFO))


def users(numbers: Iterator[int] | range | set[int]) -> list[str]:
    return [f"u{n}" for n in sorted(numbers)]


class Matrix:
    """The 16 cohorts, their pushers (one per reading) and the pipeline they share."""

    def __init__(self, loop: WebhookLoop, pushers: list[CohortSyncPusher], clock: FakeClock):
        self.loop = loop
        self.pushers = pushers
        self.clock = clock
        self.query = pushers[0].query
        self.last_succeeded = False
        self.synced: dict[int, set[int]] = {}
        """Per cohort: the membership as of the last cycle Mixpanel counted successful."""

    def cycle(
        self,
        members: set[int],
        unreachable: Callable[[int, str, int], bool] | None = None,
        *,
        succeeds: bool = True,
    ) -> None:
        """One Mixpanel cycle of every cohort, with ``members`` as each cohort's membership."""
        for pusher in self.pushers:
            cohort = self.cohort(pusher)
            cohort.members = users(members)
            pusher.unreachable = unreachable
            reports = pusher.sync([cohort.id])
            assert bool(reports) and all(not r.failed for r in reports) is succeeds, reports
            if succeeds:
                self.synced[cohort.id] = set(members)
        self.last_succeeded = succeeds
        self.clock.sleep(30 * 60)

    def cohort(self, pusher: CohortSyncPusher) -> Cohort:
        return self.query.cohorts[self.pushers.index(pusher) + 801]

    def run_and_check(self, *, stale: dict[str, set[int]] | None = None) -> str:
        """One pipeline run; Braze must equal every cohort's last successful membership."""
        result = self.loop.run()
        assert result.ok, result.tap_log[-3000:] + result.target_log[-3000:]
        for pusher in self.pushers:
            cohort = self.cohort(pusher)
            expected = self.synced[cohort.id] | (stale or {}).get(pusher.first_sync, set())
            assert self.loop.holders(cohort.name) == {f"ext-u{n}" for n in expected}, (
                cohort.name,
                result.tap_log[-3000:],
            )
        if self.last_succeeded:  # no cohort waits once its latest cycle completed
            assert "0 in progress" in result.tap_log
        return result.tap_log


@pytest.fixture
def matrix(receivers, tmp_path: Path) -> Iterator[Matrix]:
    profiles = {f"u{n}": {"$braze_external_id": f"ext-u{n}"} for n in range(1, 80)}
    cohorts = [
        Cohort(801 + i, f"m{i} {first} {'shared' if shared else 'separate'} {empty}", members=[])
        for i, (first, shared, empty) in enumerate(CROSSINGS)
    ]
    query = MixpanelQueryEmulator(cohorts, profiles)
    receiver = receivers(tmp_path / "spool")
    clock = FakeClock()
    pushers = [
        CohortSyncPusher(
            query,
            receiver.url,
            auth=AUTH,
            page_size=10,
            clock=clock,
            first_sync=first,
            shared_session_id=shared,
            empty_page_info=empty,
            resend_same_session=i % 2 == 0,
        )
        for i, (first, shared, empty) in enumerate(CROSSINGS)
    ]
    with BrazeEmulator(api_key=BRAZE_KEY) as braze:
        yield Matrix(WebhookLoop(tmp_path, braze, receiver, pushers[0]), pushers, clock)


def page_of(action: str, page: int) -> Callable[[int, str, int], bool]:
    return lambda cohort, sent_action, sent_page: (sent_action, sent_page) == (action, page)


def test_every_reading_converges_after_failed_partial_repeated_and_empty_cycles(
    matrix: Matrix, receivers
):
    first = set(range(1, 26))
    # 1. The first sync (members, or add_members + an empty remove_members), 3 pages each.
    matrix.cycle(first)
    matrix.run_and_check()

    # 2. 5 leave, 25 join (3 pages of adds): the cycle fails on page 2 of 3 of its add_members.
    second = set(range(6, 51))
    matrix.cycle(second, page_of("add_members", 2), succeeds=False)
    matrix.run_and_check()  # nothing of the failed cycle

    # 3. Repeated from the top (the same session ids for half the cohorts), then complete.
    matrix.cycle(second)
    log = matrix.run_and_check()
    assert "8 discarded as failed" in log  # the 8 cohorts whose re-send got new session ids

    # 4. u51 joins, u6 leaves: add_members completes, remove_members fails; the pipeline runs.
    matrix.cycle(second | {51} - {6}, page_of("remove_members", 1), succeeds=False)
    matrix.run_and_check()
    # 5. Computed from the snapshot of step 3: u51 has left again, u52 joined. u51 never shows.
    fifth = second - {6} | {52}
    matrix.cycle(fifth)
    matrix.run_and_check()

    # 6. The receiver is down for a whole cycle (every page retried 5 times, then given up).
    port = matrix.loop.receiver.port
    matrix.loop.receiver.stop()
    matrix.cycle(fifth | {53}, succeeds=False)
    matrix.loop.receiver = receivers(matrix.loop.receiver_spool, port=port)
    matrix.run_and_check()

    # 7. Down longer than the snapshot is kept: a full sync; u7 left meanwhile. A full sync as
    #    add_members cannot say who left (docs/cohort-webhook.md): u7 stays in those cohorts.
    matrix.clock.sleep(3 * 24 * 3600)
    seventh = fifth | {53} - {7}
    matrix.cycle(seventh)
    matrix.run_and_check(stale={"add_members": {7}})

    # 8. A quiet cycle: both calls empty, in each reading's shape.
    matrix.cycle(seventh)
    matrix.run_and_check(stale={"add_members": {7}})

    for pusher in matrix.pushers:
        assert pusher.paused == {}
        assert all(200 <= status < 300 for status in pusher.answers), pusher.answers
