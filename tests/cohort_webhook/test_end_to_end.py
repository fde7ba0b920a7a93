"""Mixpanel's cohort sync through the real receiver, tap and target, into the Braze emulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from braze_mixpanel_common.cohort_spool import open_spool
from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator
from sandbox.loop.stack import cohort_changes
from tests.cohort_webhook.conftest import PASSWORD, USER
from tests.cohort_webhook.pages import post
from tests.cohort_webhook.pipeline import BRAZE_KEY, WebhookLoop
from tests.support.harness import leaks, secret_forms

AUTH = (USER, PASSWORD)
COHORT, NAME = 701, "Webhook buyers"


def users(*numbers: int) -> list[str]:
    return [f"u{n}" for n in numbers]


def ext(*numbers: int) -> set[str]:
    return {f"ext-u{n}" for n in numbers}


@pytest.fixture
def loop(receivers, tmp_path: Path) -> Iterator[WebhookLoop]:
    profiles = {
        f"u{n}": {"$braze_external_id": f"ext-u{n}", "$email": f"u{n}@mail.example", "$name": "A B"}
        for n in range(1, 80)
    }
    query = MixpanelQueryEmulator([Cohort(COHORT, NAME, members=users(*range(1, 31)))], profiles)
    receiver = receivers(tmp_path / "spool")
    pusher = CohortSyncPusher(query, receiver.url, auth=AUTH, page_size=10, concurrency=4)
    pusher.backoff.initial = 0.2  # a restarted receiver is back within a second
    with BrazeEmulator(api_key=BRAZE_KEY) as braze:
        yield WebhookLoop(tmp_path, braze, receiver, pusher)


def set_members(loop: WebhookLoop, *numbers: int) -> None:
    loop.pusher.query.cohorts[COHORT].members = users(*numbers)


def test_full_sync_diffs_duplicates_rename_and_a_refresh(loop: WebhookLoop):
    # 1. The first sync: a members session of 3 pages, arriving out of order, one page twice.
    (members,) = loop.push()
    assert members.action == "members" and members.pages == 3
    spool = open_spool(loop.receiver_spool)
    (session,) = spool.scan(COHORT)[str(COHORT)]
    page = spool.read_page(session, 2)
    retry = {"action": page.action, "parameters": page.parameters}
    assert post(loop.receiver.url, retry, AUTH).status_code == 200  # Mixpanel's retry
    first = loop.run()
    assert first.ok, first.target_log
    assert loop.holders(NAME) == ext(*range(1, 31))

    # 2. A diff: u28-u30 left, u31 and u32 entered.
    set_members(loop, *range(1, 28), 31, 32)
    loop.push()
    second = loop.run()
    assert second.ok, second.target_log
    assert loop.holders(NAME) == ext(*range(1, 28), 31, 32)

    # 3. Nothing new in the spool: nothing is applied twice.
    third = loop.run()
    assert third.ok and loop.holders(NAME) == ext(*range(1, 28), 31, 32)
    assert all(
        added == removed == 0 for added, removed in cohort_changes(third.target_log).values()
    )

    # 4. Renamed in Mixpanel: the next diff (u33 entered) carries the new name, and every
    #    member moves to it, not only the one who changed.
    loop.pusher.query.cohorts[COHORT].name = "Webhook buyers (EU)"
    set_members(loop, *range(1, 28), 31, 32, 33)
    loop.push()
    fourth = loop.run()
    assert fourth.ok, fourth.target_log
    assert loop.holders("Webhook buyers (EU)") == ext(*range(1, 28), 31, 32, 33)
    assert loop.holders(NAME) == set()

    # 5. A members refresh (Mixpanel re-sends the whole cohort) that drops users.
    loop.pusher.forget(COHORT)
    set_members(loop, *range(1, 21), 31, 32)
    (refresh,) = loop.push()
    assert refresh.action == "members"
    fifth = loop.run()
    assert fifth.ok, fifth.target_log
    assert loop.holders("Webhook buyers (EU)") == ext(*range(1, 21), 31, 32)


def test_the_removal_guard_holds_back_a_diff_that_empties_a_cohort(loop: WebhookLoop):
    loop.push()
    assert loop.run().ok
    set_members(loop, 1, 2, 3, 4, 5)  # 25 of 30 leave at once
    loop.push()
    guarded = loop.run()
    assert not guarded.ok
    assert "removal guard" in guarded.target_log
    assert loop.holders(NAME) == ext(*range(1, 31))  # nothing removed
    # Confirmed as intended: the guard is lifted and the same diff is applied, once.
    loop.target_extra["max_removal_fraction"] = 1
    applied = loop.run()
    assert applied.ok, applied.target_log
    assert loop.holders(NAME) == ext(1, 2, 3, 4, 5)


def test_a_receiver_killed_mid_session_then_restarted_doubles_nothing(loop: WebhookLoop, receivers):
    cohort = loop.pusher.query.cohorts[COHORT]
    cohort.members = GeneratedMembers(600, prefix="k")
    loop.pusher.page_size = 10
    reports: list = []
    thread = threading.Thread(target=lambda: reports.extend(loop.pusher.sync()))
    thread.start()
    spool = Path(loop.receiver_spool)
    deadline = time.monotonic() + 60
    while len(list(spool.rglob("page-*.json"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.receiver.kill()
    time.sleep(0.3)
    loop.receiver = receivers(spool, port=loop.receiver.port)
    thread.join(timeout=120)
    (report,) = reports
    assert not report.failed and report.attempts > report.pages
    result = loop.run()
    assert result.ok, result.target_log
    expected = {f"ext-k{n}" for n in range(600)}
    assert loop.holders(NAME) == expected
    assert cohort_changes(result.target_log)[NAME] == (600, 0)


def test_secrets_and_member_data_stay_out_of_the_logs(loop: WebhookLoop):
    loop.push()
    set_members(loop, *range(5, 35))
    loop.push()
    post(loop.receiver.url, {"action": "members"}, (USER, "a-guessed-password"))
    result = loop.run()
    assert result.ok, result.target_log
    logs = {
        "receiver": loop.receiver.log(),
        "tap": result.tap_log,
        "target": result.target_log,
    }
    forms = secret_forms([PASSWORD, BRAZE_KEY, "a-guessed-password"], [(USER, PASSWORD)])
    assert leaks(forms, logs) == []
    for n in range(1, 35):
        assert f"u{n}@mail.example" not in logs["receiver"]
        assert f"ext-u{n}" not in logs["receiver"]
        assert f'"u{n}"' not in logs["receiver"]
