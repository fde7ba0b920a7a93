"""plan_snapshot on its own: the diff of a staged snapshot against what Braze confirmed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from target_braze.ledger import ADD, REMOVE, Ledger
from target_braze.ledger.diff import Plan, plan_snapshot

NS_KEY = "attributes|https://rest.example|mixpanel_cohorts|cohort_members"
Snapshot = dict[str, tuple[str, Iterable[str]]]


class Run:
    """One run's ledger: stage a snapshot, plan, and confirm every planned change."""

    def __init__(self, path: Path) -> None:
        self.ledger = Ledger(path)
        self.ns = self.ledger.namespace(NS_KEY)

    def stage(self, snapshot: Snapshot, listed: Iterable[str] | None = None) -> None:
        rows = [(u, cid, name) for cid, (name, users) in snapshot.items() for u in users]
        self.ledger.stage_members(self.ns, rows)
        for cid, (name, _) in snapshot.items():
            self.ledger.stage_cohort(self.ns, cid, name)
        for cid in snapshot if listed is None else listed:
            self.ledger.stage_listed(cid, None, None)

    def plan(
        self,
        *,
        complete: bool = True,
        listing_seen: bool = True,
        max_removal_fraction: float = 0.5,
        guard_min_members: int = 3,
        per_name: bool = True,
    ) -> Plan:
        return plan_snapshot(
            self.ledger,
            self.ns,
            complete=complete,
            listing_seen=listing_seen,
            max_removal_fraction=max_removal_fraction,
            guard_min_members=guard_min_members,
            per_name=per_name,
        )

    def changes(self) -> set[tuple[str, str, str, int, bool]]:
        return {
            (c.external_id, c.cohort_id, c.name, c.op, c.send)
            for _, group in self.ledger.changes_by_user()
            for c in group
        }

    def confirm(self) -> None:
        for _, group in self.ledger.changes_by_user():
            self.ledger.apply(self.ns, group)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    opened: list[Run] = []
    yield opened
    for run in opened:
        run.ledger.close()


@pytest.fixture
def new_run(tmp_path: Path, runs: list[Run]):
    def make() -> Run:
        run = Run(tmp_path / "ledger.sqlite3")
        runs.append(run)
        return run

    return make


def synced(new_run, snapshot: Snapshot) -> None:
    """A first run whose every change Braze confirmed."""
    run = new_run()
    run.stage(snapshot)
    run.plan()
    run.confirm()


def users(*ids: int) -> list[str]:
    return [f"u{i}" for i in ids]


def test_first_snapshot_is_all_joins(new_run):
    run = new_run()
    run.stage({"1": ("A", users(1, 2)), "2": ("B", users(2))})
    plan = run.plan()
    assert (plan.adds, plan.removes, plan.withheld) == (3, 0, [])
    assert plan.cohorts["1"].snapshot_members == 2 and plan.cohorts["1"].synced_members == 0
    assert run.changes() == {
        ("u1", "1", "A", ADD, True),
        ("u2", "1", "A", ADD, True),
        ("u2", "2", "B", ADD, True),
    }


def test_joins_and_leaves(new_run):
    synced(new_run, {"1": ("A", users(1, 2, 3, 4))})
    run = new_run()
    run.stage({"1": ("A", users(2, 3, 4, 5))})
    plan = run.plan()
    cohort = plan.cohorts["1"]
    assert (cohort.synced_members, cohort.snapshot_members, cohort.leavers) == (4, 4, 1)
    assert (cohort.planned_adds, cohort.planned_removes, cohort.withheld) == (1, 1, False)
    assert run.changes() == {("u5", "1", "A", ADD, True), ("u1", "1", "A", REMOVE, True)}


def test_unchanged_snapshot_plans_nothing(new_run):
    synced(new_run, {"1": ("A", users(1, 2))})
    run = new_run()
    run.stage({"1": ("A", users(1, 2))})
    plan = run.plan()
    assert (plan.adds, plan.removes) == (0, 0)
    assert run.changes() == set()


def test_rename_moves_every_member_to_the_new_name(new_run):
    synced(new_run, {"1": ("Trial", users(1, 2))})
    run = new_run()
    run.stage({"1": ("Trial (EU)", users(1, 2))})
    plan = run.plan()
    assert plan.cohorts["1"].name == "Trial (EU)"
    assert plan.cohorts["1"].leavers == 0  # a rename is no leave: the guard stays out of it
    assert run.changes() == {
        ("u1", "1", "Trial (EU)", ADD, True),
        ("u2", "1", "Trial (EU)", ADD, True),
        ("u1", "1", "Trial", REMOVE, True),
        ("u2", "1", "Trial", REMOVE, True),
    }


def test_vanished_cohort_loses_its_members_without_the_guard(new_run):
    synced(new_run, {"1": ("A", users(1)), "2": ("B", users(1, 2, 3, 4))})
    run = new_run()
    run.stage({"1": ("A", users(1))})  # cohort 2 is neither listed nor in the snapshot
    plan = run.plan()
    cohort = plan.cohorts["2"]
    assert (cohort.vanished, cohort.withheld, cohort.leavers) == (True, False, 4)
    assert {c[:2] for c in run.changes()} == {(u, "2") for u in users(1, 2, 3, 4)}


def test_cohort_missing_without_a_listing_is_guarded_not_vanished(new_run):
    synced(new_run, {"1": ("A", users(1)), "2": ("B", users(1, 2, 3, 4))})
    run = new_run()
    run.stage({"1": ("A", users(1))})
    plan = run.plan(listing_seen=False)  # no cohorts stream: absence proves nothing
    cohort = plan.cohorts["2"]
    assert (cohort.vanished, cohort.withheld) == (False, True)
    assert plan.withheld == [cohort]
    assert run.changes() == set()


def test_empty_snapshot_of_listed_cohorts_is_withheld_by_the_guard(new_run):
    synced(new_run, {"1": ("A", users(1, 2, 3, 4))})
    run = new_run()
    run.stage({}, listed=["1"])
    plan = run.plan()
    cohort = plan.cohorts["1"]
    assert (cohort.snapshot_members, cohort.leavers, cohort.withheld) == (0, 4, True)
    assert (plan.adds, plan.removes) == (0, 0)


def test_empty_snapshot_removes_everyone_when_the_guard_allows_it(new_run):
    synced(new_run, {"1": ("A", users(1, 2, 3, 4))})
    run = new_run()
    run.stage({}, listed=["1"])
    plan = run.plan(max_removal_fraction=1)
    assert (plan.adds, plan.removes, plan.withheld) == (0, 4, [])


def test_small_cohort_is_below_the_guard(new_run):
    synced(new_run, {"1": ("A", users(1, 2))})
    run = new_run()
    run.stage({}, listed=["1"])
    plan = run.plan(guard_min_members=3)
    assert (plan.removes, plan.cohorts["1"].withheld) == (2, False)


def test_incomplete_snapshot_plans_joins_only(new_run):
    synced(new_run, {"1": ("A", users(1, 2))})
    run = new_run()
    run.stage({"1": ("A", users(2, 3))})
    plan = run.plan(complete=False)
    assert (plan.complete, plan.adds, plan.removes) == (False, 1, 0)
    assert plan.cohorts["1"].leavers == 0
    assert run.changes() == {("u3", "1", "A", ADD, True)}


def test_a_name_another_cohort_keeps_is_not_sent_as_removed(new_run):
    synced(new_run, {"1": ("VIP", users(1)), "2": ("VIP", users(1))})
    run = new_run()
    run.stage({"2": ("VIP", users(1))}, listed=["1", "2"])
    plan = run.plan()
    assert plan.removes == 1
    # the ledger row of cohort 1 goes, but Braze keeps "VIP" through cohort 2
    assert run.changes() == {("u1", "1", "VIP", REMOVE, False)}
