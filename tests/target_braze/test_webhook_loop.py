"""The webhook loop in process: spooled pages -> tap (source webhook) -> target-braze."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from target_braze.sync import RemovalGuardError
from tests.support.braze import run_target
from tests.support.clock import FakeClock
from tests.support.cohorts import RecordingTap
from tests.support.spool import SpoolWriter, member

ATTR = "mixpanel_cohorts"


def names(braze, user: str) -> list[str]:
    return sorted(braze.attribute(user, ATTR) or [])


class Loop:
    """Runs the tap over the spool and pipes its messages into the target, keeping the state."""

    def __init__(self, spool: Path, target_config: dict[str, Any]) -> None:
        self.writer = SpoolWriter(spool)
        self.target_config = target_config
        self.state: dict[str, Any] | None = None

    def run(self, **target_overrides: Any) -> None:
        tap = RecordingTap(
            config={"source": "webhook", "spool_url": str(self.writer.root)},
            state=self.state,
            parse_env_config=False,
            clock=FakeClock(),
        )
        tap.sync_all()
        messages = [json.loads(json.dumps(m, default=str)) for m in tap.messages]
        run_target({**self.target_config, **target_overrides}, messages)
        self.state = json.loads(json.dumps(tap.state))  # the target confirmed: keep it


def people(users: list[str]) -> list[dict[str, Any]]:
    return [member(f"d-{u}", u) for u in users]


@pytest.fixture
def loop(tmp_path, config) -> Loop:
    return Loop(tmp_path / "spool", config)


def test_full_sync_diffs_and_a_refresh_that_drops_users(loop, braze, users):
    write = loop.writer.session
    write(1, "m1", "members", people(users[:100]), per_page=30, order=[4, 2, 1, 3])
    write(2, "m1", "members", people(users[:10]), name="Other")
    loop.run()
    assert names(braze, "u000") == ["Other", "Power users"]
    assert names(braze, "u099") == ["Power users"]

    write(1, "a1", "add_members", people(users[100:103]))
    write(1, "r1", "remove_members", people(users[:5]))
    loop.run()
    assert names(braze, "u000") == ["Other"]
    assert names(braze, "u101") == ["Power users"]

    # A members refresh (Mixpanel's recovery): users missing from it leave that cohort only.
    write(1, "m2", "members", people(users[5:60] + users[100:103]), per_page=20)
    loop.run()
    assert names(braze, "u070") == []
    assert names(braze, "u005") == ["Other", "Power users"]
    assert names(braze, "u001") == ["Other"]  # cohort 2 untouched
    braze.track_requests.clear()
    loop.run()  # nothing new in the spool: nothing sent
    assert braze.track_requests == []


def test_the_guard_on_a_diff_keeps_the_session_for_the_next_run(loop, braze, users):
    write = loop.writer.session
    write(1, "m1", "members", people(users[:100]))
    loop.run()
    write(1, "r1", "remove_members", people(users[:80]))
    with pytest.raises(RemovalGuardError, match="would lose 80 of 100 members"):
        loop.run()
    assert names(braze, "u000") == ["Power users"]
    # The state was not confirmed: the same session applies once the threshold allows it.
    loop.run(max_removal_fraction=0.9)
    assert names(braze, "u000") == []
    assert names(braze, "u090") == ["Power users"]


def test_a_renamed_cohort_moves_its_members(loop, braze, users):
    write = loop.writer.session
    write(1, "m1", "members", people(users[:10]), name="Trial")
    loop.run()
    write(1, "a1", "add_members", people(users[10:11]), name="Trial (EU)")
    write(1, "a1", "remove_members", [], name="Trial (EU)")  # the cycle's second call
    loop.run()
    assert names(braze, "u000") == ["Trial (EU)"]
    assert names(braze, "u010") == ["Trial (EU)"]
