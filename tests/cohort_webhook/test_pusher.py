"""The sandbox's Mixpanel cohort sync pushing to the real receiver: sessions, diffs, retries."""

from __future__ import annotations

import threading
import time
import uuid

from braze_mixpanel_common.cohort_spool import open_spool
from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator
from tests.cohort_webhook.conftest import PASSWORD, USER
from tests.cohort_webhook.pages import spooled_ids, stored_files, stored_pages

AUTH = (USER, PASSWORD)


def project(members: list[str], cohort_id: int = 501) -> MixpanelQueryEmulator:
    profiles = {
        m: {"$braze_external_id": f"ext-{m}", "$email": f"{m}@example.com", "$name": f"N {m}"}
        for m in ["u1", "u2", "u3", "u4", "u5", "u6", "u7"]
    }
    return MixpanelQueryEmulator([Cohort(cohort_id, "Buyers", members=members)], profiles)


def test_first_a_paginated_members_session_then_diffs(receiver, spool_dir):
    query = project(["u1", "u2", "u3", "u4", "u5"], cohort_id=501)
    pusher = CohortSyncPusher(query, receiver.url, auth=AUTH, page_size=2)
    (first,) = pusher.sync()
    assert (first.action, first.pages, first.members, first.failed) == ("members", 3, 5, False)
    spool = open_spool(str(spool_dir))
    (session,) = spool.scan(501)["501"]
    pages = list(spool.iter_pages(session))
    assert [p.action for p in pages] == ["members"] * 3
    assert [m["mixpanel_distinct_id"] for p in pages for m in p.members] == [
        "u1",
        "u2",
        "u3",
        "u4",
        "u5",
    ]
    assert pages[0].members[0] == {
        "mixpanel_distinct_id": "u1",
        "email": "u1@example.com",
        "first_name": "N",
        "last_name": "u1",
        "$braze_external_id": "ext-u1",
    }
    assert pages[0].parameters["mixpanel_cohort_name"] == "Buyers"

    # Next cycle: u2 and u5 left, u6 entered; the cohort was renamed in Mixpanel.
    query.cohorts[501].members = ["u1", "u3", "u4", "u6"]
    query.cohorts[501].name = "Buyers (EU)"
    added, removed = pusher.sync()
    assert (added.action, added.members, removed.action, removed.members) == (
        "add_members",
        1,
        "remove_members",
        2,
    )
    found = spooled_ids(str(spool_dir), "501")
    assert found[added.session_id] == ["u6"]
    assert found[removed.session_id] == ["u2", "u5"]
    sessions = spool.scan(501)["501"]
    assert [s.session_id for s in sessions] == [
        first.session_id,
        added.session_id,
        removed.session_id,
    ]
    removed_page = next(spool.iter_pages(sessions[2]))
    assert removed_page.parameters["mixpanel_cohort_name"] == "Buyers (EU)"
    assert removed_page.members[0]["$braze_external_id"] == "ext-u2"

    # Nothing changed: each diff is one page without members.
    empty = pusher.sync()
    assert [(r.action, r.pages, r.members) for r in empty] == [
        ("add_members", 1, 0),
        ("remove_members", 1, 0),
    ]
    assert all(
        found == []
        for found in map(spooled_ids(str(spool_dir), "501").get, [r.session_id for r in empty])
    )


def test_out_of_order_concurrent_pages_of_a_generated_cohort(receiver, spool_dir):
    cohort_id = 502
    members = GeneratedMembers(250, prefix=f"g{uuid.uuid4().hex[:6]}-")
    query = MixpanelQueryEmulator([Cohort(cohort_id, "Generated", members=members)])
    pusher = CohortSyncPusher(query, receiver.url, auth=AUTH, page_size=10, concurrency=8)
    (report,) = pusher.sync()
    assert report.pages == 25 and not report.failed
    (ids,) = spooled_ids(str(spool_dir), str(cohort_id)).values()
    assert ids == [f"{members.prefix}{n}" for n in range(250)]


def test_a_401_pauses_the_sync_until_resumed_then_the_full_sync_is_resent(receivers, tmp_path):
    spool = tmp_path / "spool"
    receiver = receivers(spool)
    query = project(["u1", "u2"], cohort_id=503)
    pusher = CohortSyncPusher(query, receiver.url, auth=(USER, "wrong"), page_size=1)
    (members,) = pusher.sync()
    assert members.failed and members.paused and members.attempts == 0
    assert pusher.answers == {401: 1}  # no retry of a non-transient answer
    assert pusher.paused == {503: "401 to members page 1"}
    assert stored_files(spool) == []
    assert pusher.sync() == []  # paused: nothing is sent until a person resumes it
    pusher.auth = AUTH
    pusher._local = threading.local()  # new HTTP sessions, with the right credentials
    pusher.resume(503)
    query.cohorts[503].members = ["u1", "u3"]
    (again,) = pusher.sync()
    assert again.action == "members" and not again.failed
    assert spooled_ids(str(spool)) == {again.session_id: ["u1", "u3"]}


def test_transient_failures_are_retried_five_times_over_a_minute(receiver, spool_dir):
    from tests.support.clock import FakeClock

    clock = FakeClock()
    pusher = CohortSyncPusher(
        project(["u1"], cohort_id=505), receiver.url, auth=AUTH, clock=clock,
        unreachable=lambda cohort, action, page: action == "remove_members",
    )  # fmt: skip
    pusher.sync()
    pusher.query.cohorts[505].members = ["u1", "u2"]
    added, removed = pusher.sync()
    assert not added.failed and removed.failed and not removed.paused
    assert clock.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]  # 6 tries, 62 s
    # The cycle failed: the next one is computed from the first snapshot again (u2 re-sent).
    pusher.unreachable = None
    again, quiet = pusher.sync()
    assert (again.action, again.members, quiet.members) == ("add_members", 1, 0)
    assert again.session_id != added.session_id


def test_a_receiver_killed_mid_delivery_then_restarted(receivers, tmp_path):
    """Mixpanel's retries complete the session on the restarted receiver; nothing is doubled."""
    spool = tmp_path / "spool"
    receiver = receivers(spool)
    members = GeneratedMembers(600, prefix="k-")
    query = MixpanelQueryEmulator([Cohort(504, "Killed", members=members)])
    pusher = CohortSyncPusher(query, receiver.url, auth=AUTH, page_size=10, concurrency=4)
    pusher.backoff.initial = 0.2  # the receiver is back within a second
    reports = []
    thread = threading.Thread(target=lambda: reports.extend(pusher.sync()))
    thread.start()
    deadline = time.monotonic() + 60
    while len(stored_files(spool)) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    receiver.kill()
    stored_at_kill = len([f for f in stored_files(spool) if f.endswith(".json")])
    time.sleep(0.5)
    restarted = receivers(spool, port=receiver.port)
    thread.join(timeout=120)
    (report,) = reports
    assert not report.failed and report.attempts > report.pages  # some pages were retried
    assert stored_at_kill < 60
    pages = [f for f in stored_pages(spool) if not f.split("/")[-1].startswith(".tmp-")]
    assert len(pages) == 60
    (ids,) = spooled_ids(str(spool)).values()
    assert ids == [f"k-{n}" for n in range(600)]  # every member once, in order
    assert "Stored page" in restarted.log()
