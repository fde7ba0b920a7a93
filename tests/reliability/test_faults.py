"""Faults against the emulators: storms, crash and resume, destination down.

Quick variants run in the default suite; the ``long`` ones (``make test-long``) repeat them with
more data and more crash points.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator
from sandbox.emulators.server import Faults
from sandbox.loop.currents_gen import generate_export
from target_braze.target import TargetBraze
from target_mixpanel.target import TargetMixpanel
from tests.support.clock import FakeClock
from tests.support.cohorts import SA_SECRET, SA_USER, make_tap
from tests.support.harness import ROOT
from tests.support.mixpanel import (
    currents_record,
    expected_keys,
    record_msg,
    run_pipeline,
    sa_config,
    schema_msg,
)

STORM = {"rate_429": 0.10, "rate_5xx": 0.05, "rate_reset": 0.03, "rate_slow": 0.02}


# -- storms ------------------------------------------------------------------------------------


def currents_storm(tmp_path: Path, *, events_per_file: int, hours: int, seed: int) -> None:
    export = generate_export(
        tmp_path / "bucket", seed=seed, events_per_file=events_per_file, hours=hours
    )
    emulator = MixpanelImportEmulator(faults=Faults(**STORM, slow_seconds=0.01, seed=seed))
    emulator.start()
    try:
        target, tap_states, emitted = run_pipeline(tmp_path, tmp_path / "bucket", emulator)
        assert emulator.event_keys() == expected_keys(export.events)
        assert {"429", "5xx", "reset"} <= set(emulator.faults_injected)
        assert target.stats.sending["dead_lettered"] == 0
        assert emitted[-1] == tap_states[-1]
    finally:
        emulator.stop()


def test_storm_currents_to_mixpanel(tmp_path):
    currents_storm(tmp_path, events_per_file=40, hours=2, seed=3)


@pytest.mark.long
def test_storm_currents_to_mixpanel_long(tmp_path):
    currents_storm(tmp_path, events_per_file=400, hours=6, seed=4)


def cohorts_storm(members: int, seed: int) -> None:
    """tap-mixpanel-cohorts | target-braze, both APIs storming; Braze ends exactly right."""
    clock = FakeClock()
    cohorts = [
        Cohort(1, "Buyers", "", "2024-01-01 00:00:00", 1, GeneratedMembers(members, prefix="a-")),
        Cohort(2, "VIP", "", "2024-01-01 00:00:00", 1, GeneratedMembers(members // 3, prefix="a-")),
    ]
    query = MixpanelQueryEmulator(
        cohorts,
        {},
        service_accounts={SA_USER: SA_SECRET},
        page_size=100,
        clock=clock,
        faults=Faults(**STORM, slow_seconds=0.01, seed=seed),
    ).start()
    users = [f"ext-a-{i}" for i in range(members)]
    braze = BrazeEmulator(
        api_key="k",
        existing_users=users,
        clock=clock,
        faults=Faults(**STORM, slow_seconds=0.01, seed=seed + 1),
    ).start()
    try:
        config = {
            "api_url": query.url,
            "project_id": str(query.project_id),
            "service_account_username": SA_USER,
            "service_account_secret": SA_SECRET,
            "max_queries_per_hour": 1000,
        }
        tap = make_tap(config, clock)
        tap.sync_all()
        with contextlib.chdir(Path(os.environ.get("TMPDIR", "/tmp"))):
            ledger = Path(f"ledger-{os.getpid()}-{seed}.sqlite3").resolve()
            braze_config = {
                "rest_endpoint": braze.url,
                "api_key": "k",
                "ledger_path": str(ledger),
                "dead_letter_path": str(ledger.with_suffix(".dead")),
                "objects_per_request": 10,
            }
            try:
                text = "".join(json.dumps(m, default=str) + "\n" for m in tap.messages)
                TargetBraze(config=braze_config, clock=clock).listen(io.StringIO(text))
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{ledger}{suffix}").unlink(missing_ok=True)
        vips = {f"ext-a-{i}" for i in range(members // 3)}
        for user in users:
            expected = {"Buyers", "VIP"} if user in vips else {"Buyers"}
            assert set(braze.attribute(user, "mixpanel_cohorts") or []) == expected, user
        assert sum(query.faults_injected.values()) > 0
        assert sum(braze.faults_injected.values()) > 0
    finally:
        query.stop()
        braze.stop()


def test_storm_cohorts_to_braze():
    cohorts_storm(600, seed=5)


@pytest.mark.long
def test_storm_cohorts_to_braze_long():
    cohorts_storm(6000, seed=6)


# -- crash and resume ----------------------------------------------------------------------------


def pipeline(
    tmp_path: Path, emulator: MixpanelImportEmulator, state: dict[str, Any] | None
) -> tuple[subprocess.Popen, subprocess.Popen, list[dict[str, Any]]]:
    """Start tap | target as two processes; return them and the target's state lines."""
    tap_cmd = [sys.executable, "-m", "tap_braze_currents", "--config", str(tmp_path / "tap.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        tap_cmd += ["--state", str(tmp_path / "state.json")]
    target_cmd = [
        sys.executable,
        "-m",
        "target_mixpanel",
        "--config",
        str(tmp_path / "target.json"),
    ]
    tap = subprocess.Popen(tap_cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    target = subprocess.Popen(
        target_cmd, cwd=ROOT, stdin=tap.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    tap.stdout.close()  # the target owns the pipe now
    states: list[dict[str, Any]] = []

    def read() -> None:
        states.extend(json.loads(x) for x in target.stdout if x.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    target.reader = reader  # type: ignore[attr-defined]
    return tap, target, states


class HoldAfter:
    """Answers the first ``count`` /import requests, then holds every later one until opened.

    The crash then lands at a known point, whatever the machine's load: the pipeline cannot get
    further than ``count`` confirmed requests (plus the ones held) before the kill.
    """

    def __init__(self, emulator: MixpanelImportEmulator, count: int) -> None:
        self.count = count
        self.seen = 0
        self.lock = threading.Lock()
        self.holding = threading.Event()  # a request past ``count`` arrived
        self.opened = threading.Event()
        self.answer = emulator._import
        emulator._import = self  # type: ignore[method-assign]

    def __call__(self, request: Any) -> Any:
        with self.lock:
            self.seen += 1
            held = self.seen > self.count
        if held:
            self.holding.set()
            self.opened.wait(120)
        return self.answer(request)


def crash_and_resume(tmp_path: Path, victim: str, after_requests: int, events: int) -> None:
    export = generate_export(
        tmp_path / "bucket", seed=after_requests, events_per_file=events, hours=2, corrupt=False
    )
    expected = expected_keys(export.events)
    emulator = MixpanelImportEmulator().start()
    gate = HoldAfter(emulator, after_requests)
    (tmp_path / "tap.json").write_text(
        json.dumps({"storage_url": str(tmp_path / "bucket" / "currents")})
    )
    (tmp_path / "target.json").write_text(
        json.dumps(sa_config(emulator.url, batch_size=10, max_concurrency=2))
    )
    try:
        tap, target, states = pipeline(tmp_path, emulator, None)
        assert gate.holding.wait(120), f"the target never sent request {after_requests + 1}"
        killed = tap if victim == "tap" else target
        with contextlib.suppress(ProcessLookupError):
            os.kill(killed.pid, signal.SIGKILL)
        gate.opened.set()  # the held requests (and the next run's) are answered
        tap.wait(30)
        target.wait(30)
        target.reader.join(30)  # type: ignore[attr-defined]
        assert emulator.event_keys() < expected, "the crash came too late to test anything"
        # The next run, from the last state the target wrote, completes the set exactly.
        tap2, target2, _ = pipeline(tmp_path, emulator, states[-1] if states else None)
        assert tap2.wait(60) == 0
        assert target2.wait(60) == 0
        assert emulator.event_keys() == expected
    finally:
        emulator.stop()


@pytest.mark.parametrize("victim", ["target", "tap"])
def test_kill_9_then_resume_completes_exactly(tmp_path, victim):
    crash_and_resume(tmp_path, victim, after_requests=3, events=40)


@pytest.mark.long
@pytest.mark.parametrize("victim", ["target", "tap"])
@pytest.mark.parametrize("after_requests", [1, 6, 20, 45])
def test_kill_9_at_several_points_then_resume_long(tmp_path, victim, after_requests):
    crash_and_resume(tmp_path, victim, after_requests=after_requests, events=120)


# -- destination down ------------------------------------------------------------------------


class OutageClock(FakeClock):
    """A fake clock; the destination's port refuses connections until ``down_for`` seconds."""

    def __init__(self, port: int, down_for: float) -> None:
        super().__init__()
        self.port = port
        self.up_at = self.monotonic() + down_for
        self.emulator: MixpanelImportEmulator | None = None
        self._start_lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        with self._start_lock:
            if self.emulator is None and self.monotonic() >= self.up_at:
                self.emulator = MixpanelImportEmulator(port=self.port).start()


def run_down(down_for: float, tmp_path: Path) -> tuple[Any, list[dict], BaseException | None]:
    probe = MixpanelImportEmulator()
    url = probe.url
    probe.stop()  # the port is free again: connecting to it is refused
    clock = OutageClock(int(url.rsplit(":", 1)[1]), down_for)
    stream = "users_messages_email_send"
    lines = [schema_msg(stream)]
    for i in range(30):
        lines.append(record_msg(stream, currents_record(i)))
        lines.append({"type": "STATE", "value": {"n": i + 1}})
    target = TargetMixpanel(
        config=sa_config(
            url,
            batch_size=10,
            max_concurrency=1,  # one sender, so the recorded sleeps are one backoff sequence
            dead_letter_path=str(tmp_path / "dead.jsonl"),
        ),
        clock=clock,
        backoff=BackoffPolicy(),
        checkpoint_interval=0,
    )
    states: list[dict] = []
    target.dispatcher.emit_state = states.append
    error: BaseException | None = None
    try:
        target.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in lines)))
    except DestinationError as exc:
        error = exc
    stored: set = set()
    if clock.emulator is not None:
        stored = clock.emulator.event_keys()
        clock.emulator.stop()
    return (stored, clock), states, error


def assert_backoff(sleeps: list[float]) -> None:
    """2 s doubling to 60 s, plus 1-5 s of jitter (Mixpanel's advice)."""
    for attempt, wait in enumerate(sleeps, start=1):
        base = min(2.0 * 2 ** (attempt - 1), 60.0)
        assert base + 1 <= wait <= base + 5, (attempt, wait)


def test_destination_down_briefly_recovers_with_backoff(tmp_path):
    (stored, clock), states, error = run_down(30, tmp_path)
    assert error is None
    assert len(stored) == 30
    assert states[-1] == {"n": 30}
    assert sum(clock.sleeps) >= 30
    assert_backoff(clock.sleeps[:3])  # backing off, not hammering


def test_destination_down_too_long_fails_clearly_without_advancing_state(tmp_path):
    (stored, clock), states, error = run_down(10_000, tmp_path)
    assert error is not None
    assert "still failing after 8 attempts" in str(error)
    assert "ConnectionError" in str(error)
    assert stored == set()
    assert states == []  # nothing confirmed, nothing checkpointed
    assert len(clock.sleeps) >= 7
