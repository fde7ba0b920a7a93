"""The cycle rules of source 'webhook', on listings alone (no spool, no tap)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from braze_mixpanel_common.cohort_spool import SessionInfo
from tap_mixpanel_cohorts.spool_plan import plan_cohort

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def delivery(number: int, session: str, action: str, pages: str = "1/1") -> SessionInfo:
    present, total = pages.split("/")
    return SessionInfo(
        "7",
        session,
        int(total),
        set(range(1, int(present) + 1)),
        T0,
        action,
        arrival=f"20261201T000000{number:06d}Z-x",
    )


def plan(*deliveries: SessionInfo, watermark: str | None = None, members=True, changes=True):
    return plan_cohort(
        "7", list(deliveries), watermark, members_selected=members, changes_selected=changes
    )


def emitted(work) -> list[str]:
    return [f"{d.action[0]}{d.session_id}" for d in work.emitted]


ADD, REMOVE, MEMBERS = "add_members", "remove_members", "members"


@pytest.mark.parametrize("shared", [True, False])
def test_only_complete_cycles_are_emitted_and_failed_ones_never_hold_back(shared):
    r = (lambda n: f"s{n}") if shared else (lambda n: f"r{n}")
    work = plan(
        delivery(1, "s1", ADD),
        delivery(2, r(1), REMOVE),
        delivery(3, "s2", ADD),
        delivery(4, r(2), REMOVE, "1/2"),  # cycle 2 failed on page 2 of its remove
        delivery(5, "s3", ADD, "2/3"),  # cycle 3 failed on page 3 of its add
        delivery(6, "s4", ADD),
        delivery(7, r(4), REMOVE),
        delivery(8, "s5", ADD),  # cycle 5 in progress: its remove is not here yet
    )
    assert emitted(work) == ["as1", f"r{r(1)}", "as4", f"r{r(4)}"]
    assert [[d.session_id for d in c.deliveries] for c in work.failed] == [["s2", r(2)], ["s3"]]
    assert [[d.session_id for d in c.deliveries] for c in work.waiting] == [["s5"]]
    assert work.changes_mark is not None and work.changes_mark.endswith(f"|remove_members|{r(4)}")
    assert work.lacks_remove == 1 and work.lone_removes == 0 and work.cycles == 2


def test_nothing_of_a_cycle_in_progress_is_emitted():
    work = plan(delivery(1, "s1", ADD), delivery(2, "s1", REMOVE, "0/0"))
    assert emitted(work) == [] and work.changes_mark is None
    assert len(work.in_progress) == 1 and work.failed == []


def test_a_snapshot_supersedes_what_came_before_and_goes_alone():
    work = plan(
        delivery(1, "s1", ADD),
        delivery(2, "s2", MEMBERS, "1/2"),  # a failed full sync
        delivery(3, "s3", MEMBERS),
        delivery(4, "s4", ADD),
        delivery(5, "s5", REMOVE),
    )
    assert emitted(work) == ["ms3"] and len(work.superseded) == 2
    assert work.members_mark is not None and work.members_mark.endswith("|members|s3")
    nxt = plan(delivery(4, "s4", ADD), delivery(5, "s5", REMOVE), watermark=work.members_mark)
    assert emitted(nxt) == ["as4", "rs5"]


def test_a_remove_with_no_add_before_it_is_its_own_cycle_and_counted():
    work = plan(delivery(1, "s1", MEMBERS), delivery(2, "s2", REMOVE), changes=True, members=False)
    assert emitted(work) == ["rs2"] and work.lone_removes == 1


def test_shared_session_ids_pair_in_either_order():
    work = plan(delivery(1, "s1", REMOVE), delivery(2, "s1", ADD))
    assert emitted(work) == ["rs1", "as1"] and work.lone_removes == 0


def test_the_watermark_skips_consumed_deliveries():
    first = delivery(1, "s1", ADD)
    second = delivery(2, "s1", REMOVE)
    work = plan(first, second, watermark=second.order_key)
    assert emitted(work) == [] and work.waiting == []
