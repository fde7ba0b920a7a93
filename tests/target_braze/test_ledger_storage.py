"""The ledger in object storage, with its lease: runs as separate processes sharing only a bucket.

Each run is a real ``target-braze`` process in a fresh working directory (a container's new
disk); the state a run writes is handed to the next as the tap would re-emit it. The backends are
moto's S3 server, gcp-storage-emulator, Azurite and a local folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from braze_mixpanel_common.conditional import conditional_store
from braze_mixpanel_common.storage import open_url
from target_braze.ledger import read_mark
from target_braze.ledger.mark import STATE_KEY, LedgerMark
from tests.support.braze import API_KEY, snapshot
from tests.support.buckets import azure_container, gcs_bucket, s3_bucket
from tests.support.harness import CliResult, leaks, run_cli, secret_forms, singer_lines
from tools.about import PACKAGES

ATTR = "mixpanel_cohorts"
BACKENDS = ["local", "s3", "gcs", "azure"]
# gcp-storage-emulator ignores ifGenerationMatch, so races between two writers are only tested
# where the emulator enforces conditional writes (real GCS does).
RACE_BACKENDS = ["local", "s3", "azure"]


def _root(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict]:
    if kind == "local":
        return f"file://{tmp_path / 'bucket'}", {}
    if kind == "s3":
        return s3_bucket(request.getfixturevalue("s3_endpoint"))
    if kind == "gcs":
        return gcs_bucket(request.getfixturevalue("gcs_endpoint"))
    return azure_container(request.getfixturevalue("azurite_connection_string"))


class Pipeline:
    """Runs of target-braze against one Braze emulator and one ledger URL."""

    def __init__(self, braze: Any, root: str, options: dict, tmp_path: Path) -> None:
        self.braze = braze
        self.url = f"{root}/pipelines/cohorts/ledger.sqlite3"
        self.options = options
        self.tmp_path = tmp_path
        self.runs = 0
        fs, self.path = open_url(self.url, options)
        self.fs = fs
        self.store = conditional_store(fs)

    def config(self, workdir: Path, **overrides: Any) -> dict[str, Any]:
        return {
            "rest_endpoint": self.braze.url,
            "api_key": API_KEY,
            "ledger_path": self.url,
            "ledger_options": self.options,
            "dead_letter_path": str(workdir / "dead.jsonl"),
            "removal_guard_min_members": 1000,
            **overrides,
        }

    def workdir(self) -> Path:
        self.runs += 1
        folder = self.tmp_path / f"container-{self.runs}"
        folder.mkdir()
        return folder

    def stdin(self, messages: list[dict], state: dict | None) -> str:
        head = [{"type": "STATE", "value": state}] if state else []
        return singer_lines(head + messages)

    def run(
        self, messages: list[dict], state: dict | None = None, **overrides: Any
    ) -> tuple[CliResult, dict | None]:
        """One run in a fresh directory; returns its result and the last state it wrote."""
        workdir = self.workdir()
        result = run_cli(
            "target-braze",
            self.config(workdir, **overrides),
            workdir,
            stdin=self.stdin(messages, state),
            timeout=120,
        )
        return result, last_state(result.stdout)

    def start(self, messages: list[dict], state: dict | None = None, **overrides: Any) -> Held:
        """A run that reads ``messages`` and then waits for the end of its input."""
        workdir = self.workdir()
        (workdir / "config.json").write_text(json.dumps(self.config(workdir, **overrides)))
        process = subprocess.Popen(
            [sys.executable, "-m", PACKAGES["target-braze"], "--config", "config.json"],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(workdir / "stderr.log").open("w"),
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write(self.stdin(messages, state))
        process.stdin.flush()
        return Held(process, workdir / "stderr.log")

    def lease(self) -> dict | None:
        found = self.store.read(f"{self.path}.lease")
        return None if found is None else json.loads(found.data)

    def wait_for_lease(
        self, condition: Callable[[dict], bool] = lambda lease: True, timeout: float = 60
    ) -> dict:
        deadline = time.monotonic() + timeout
        lease = None
        while time.monotonic() < deadline:
            lease = self.lease()
            if lease is not None and condition(lease):
                return lease
            time.sleep(0.1)
        raise AssertionError("no run took the lease" if lease is None else f"lease stayed {lease}")

    def mark(self, tmp_path: Path) -> LedgerMark | None:
        local = tmp_path / "inspect.sqlite3"
        local.unlink(missing_ok=True)
        if self.store.download(self.path, local) is None:
            return None
        return read_mark(local)


class Held:
    """A target process still reading its input."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process = process
        self.log = log

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        """Block until the run has logged ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            assert time.monotonic() < deadline, f"the run never logged {text!r}"
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)

    def close_input(self) -> None:
        """End the run's input (as the tap ending does) without waiting for the run."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.stdin = None

    def finish(self, timeout: float = 120) -> tuple[CliResult, dict | None]:
        out, _ = self.process.communicate(timeout=timeout)
        return CliResult(self.process.returncode, out, self.log.read_text()), last_state(out)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)


def last_state(stdout: str) -> dict | None:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else None


def arrays(braze: Any, users: list[str]) -> dict[str, list[str]]:
    return {u: sorted(braze.attribute(u, ATTR) or []) for u in users}


def expected(cohorts: dict[int, tuple[str, list[str]]], users: list[str]) -> dict:
    """What Braze must hold after ``cohorts`` was synced (only users ever synced are in Braze)."""
    return {u: sorted(n for n, members in cohorts.values() if u in members) for u in users}


def first_snapshot(users: list[str]) -> dict[int, tuple[str, list[str]]]:
    return {1: ("Power users", users[:30]), 2: ("Trial", users[30:40])}


def second_snapshot(users: list[str]) -> dict[int, tuple[str, list[str]]]:
    # cohort 1: u000-u004 leave, u030-u031 join; cohort 2 renamed
    return {1: ("Power users", users[5:32]), 2: ("Trial (EU)", users[30:40])}


@pytest.fixture(params=BACKENDS)
def pipeline(request, braze, tmp_path) -> Pipeline:
    root, options = _root(request.param, request, tmp_path)
    return Pipeline(braze, root, options, tmp_path)


@pytest.fixture(params=RACE_BACKENDS)
def race_pipeline(request, braze, tmp_path) -> Pipeline:
    root, options = _root(request.param, request, tmp_path)
    return Pipeline(braze, root, options, tmp_path)


def test_fresh_directories_sharing_only_the_bucket_compute_exact_removals(pipeline, users):
    first, state = pipeline.run(snapshot(first_snapshot(users)))
    assert first.returncode == 0, first.stderr
    assert state is not None and state["bookmarks"][STATE_KEY]["generation"] == 1
    second, state2 = pipeline.run(snapshot(second_snapshot(users)), state)
    assert second.returncode == 0, second.stderr
    assert arrays(pipeline.braze, users[:45]) == expected(second_snapshot(users), users[:45])
    assert state2 is not None
    mark = state2["bookmarks"][STATE_KEY]
    assert (
        mark["generation"] == 2 and mark["ledger_id"] == state["bookmarks"][STATE_KEY]["ledger_id"]
    )
    assert mark["memberships"] == 27 + 10
    # a third identical run sends nothing: the ledger from the bucket is exact
    pipeline.braze.track_requests.clear()
    third, _ = pipeline.run(snapshot(second_snapshot(users)), state2)
    assert third.returncode == 0, third.stderr
    assert pipeline.braze.track_requests == []
    assert pipeline.lease() is None  # released


def test_overlapping_run_is_refused_at_once_naming_the_holder(race_pipeline, users):
    holder = race_pipeline.start(snapshot(first_snapshot(users)))
    try:
        lease = race_pipeline.wait_for_lease()
        started = time.monotonic()
        refused, state = race_pipeline.run(snapshot(second_snapshot(users)))
        assert time.monotonic() - started < 30
        assert refused.returncode == 1
        line = refused.last_error_line
        assert "is in use by run" in line and lease["holder"] in line, refused.stderr
        assert "ledger_lock_wait_s" in line and "Traceback" not in refused.stderr
        assert state is None
    finally:
        done, _ = holder.finish()
    assert done.returncode == 0, done.stderr
    # exactly the holder's snapshot was applied
    assert arrays(race_pipeline.braze, users[:45]) == expected(first_snapshot(users), users[:45])


def test_second_run_waits_for_the_lease_then_applies_its_diff(race_pipeline, users, tmp_path):
    holder = race_pipeline.start(snapshot(first_snapshot(users)))
    race_pipeline.wait_for_lease()
    waiter = race_pipeline.start(snapshot(second_snapshot(users)), ledger_lock_wait_s=90)
    waiter.wait_for_log("waiting up to 90 s")
    first, _ = holder.finish()
    assert first.returncode == 0, first.stderr
    # the waiter saw no state (it started before the holder finished), but the ledger the
    # holder published is the one it works on: its removals are exact
    second, _ = waiter.finish()
    assert second.returncode == 0, second.stderr
    assert arrays(race_pipeline.braze, users[:45]) == expected(second_snapshot(users), users[:45])
    mark = race_pipeline.mark(tmp_path)
    assert mark is not None and mark.generation == 2


def test_expired_lease_of_a_killed_run_is_taken_over(race_pipeline, users):
    crashed = race_pipeline.start(snapshot(first_snapshot(users)), ledger_lease_s=2)
    lease = race_pipeline.wait_for_lease()
    crashed.kill()
    assert race_pipeline.lease() == lease  # a killed run leaves its lease behind
    result, state = race_pipeline.run(snapshot(second_snapshot(users)), ledger_lock_wait_s=30)
    assert result.returncode == 0, result.stderr
    assert "Took over the lease" in result.stderr and lease["holder"] in result.stderr
    assert arrays(race_pipeline.braze, users[:45]) == expected(second_snapshot(users), users[:45])
    assert state is not None and state["bookmarks"][STATE_KEY]["generation"] == 1


def test_deleted_ledger_stops_before_sending_anything(pipeline, users):
    _, state = pipeline.run(snapshot(first_snapshot(users)))
    pipeline.fs.rm(pipeline.path)
    pipeline.braze.track_requests.clear()
    result, out_state = pipeline.run(snapshot(second_snapshot(users)), state)
    assert result.returncode == 1
    line = result.last_error_line
    assert "Removals cannot be computed" in line and "does not exist" in line, result.stderr
    assert "rebuild_ledger" in line and "Traceback" not in result.stderr
    assert pipeline.braze.track_requests == []
    assert out_state is None  # nothing recorded
    assert pipeline.mark(pipeline.tmp_path) is None  # and no empty ledger left behind
    assert arrays(pipeline.braze, users[:5]) == {u: ["Power users"] for u in users[:5]}


def test_rebuild_ledger_syncs_adds_and_records_the_new_ledger(pipeline, users):
    _, state = pipeline.run(snapshot(first_snapshot(users)))
    assert state is not None
    pipeline.fs.rm(pipeline.path)
    result, new_state = pipeline.run(snapshot(second_snapshot(users)), state, rebuild_ledger=True)
    assert result.returncode == 0, result.stderr
    assert "Ledger rebuilt" in result.stderr
    assert "at least 3 and at most 40" in result.stderr  # 40 memberships lost, 37 rebuilt
    # adds synced (the renamed cohort's new name, the joiners); the leavers could not be known
    assert arrays(pipeline.braze, ["u031", "u035"]) == {
        "u031": ["Power users", "Trial", "Trial (EU)"],
        "u035": ["Trial", "Trial (EU)"],
    }
    assert pipeline.braze.attribute("u000", ATTR) == ["Power users"]
    assert new_state is not None
    old, new = state["bookmarks"][STATE_KEY], new_state["bookmarks"][STATE_KEY]
    assert new["ledger_id"] != old["ledger_id"] and new["generation"] == 1
    # from now on the new ledger is exact again
    after, _ = pipeline.run(snapshot({1: ("Power users", users[6:32])}), new_state)
    assert after.returncode == 0, after.stderr
    assert pipeline.braze.attribute("u005", ATTR) == []
    assert sorted(pipeline.braze.attribute("u031", ATTR)) == ["Power users", "Trial"]


def test_older_ledger_than_recorded_stops(pipeline, users, tmp_path):
    _, state1 = pipeline.run(snapshot(first_snapshot(users)))
    saved = tmp_path / "gen1.sqlite3"
    assert pipeline.store.download(pipeline.path, saved) is not None
    _, state2 = pipeline.run(snapshot(second_snapshot(users)), state1)
    pipeline.fs.put_file(str(saved), pipeline.path)  # a restore of an old backup
    result, _ = pipeline.run(snapshot(second_snapshot(users)), state2)
    assert result.returncode == 1
    assert "is older than this pipeline's state records" in result.last_error_line


@pytest.fixture
def blocked_publish(monkeypatch) -> Iterator[dict[str, Any]]:
    """Makes moto hold a PUT of a ledger object until ``release`` is set, then fail it.

    While ``armed`` is clear every PUT passes; once set, ``skip`` more ledger PUTs pass and the
    next one is held (``arrived`` is set when it comes).
    """
    from moto.s3.models import S3Backend

    events: dict[str, Any] = {
        "armed": threading.Event(),
        "arrived": threading.Event(),
        "release": threading.Event(),
        "skip": 0,
    }
    original = S3Backend.put_object

    def put_object(self, bucket_name, key_name, *args, **kwargs):
        if key_name.endswith("ledger.sqlite3") and events["armed"].is_set():
            if events["skip"] > 0:
                events["skip"] -= 1
            elif not events["arrived"].is_set():
                events["arrived"].set()
                events["release"].wait(60)
                raise ConnectionError("the uploading process was killed")
        return original(self, bucket_name, key_name, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", put_object)
    yield events
    events["release"].set()


@pytest.mark.parametrize("moment", ["intent", "final"])
def test_kill_during_publish_keeps_the_previous_ledger_and_the_next_run_is_exact(
    braze, users, tmp_path, s3_endpoint, blocked_publish, moment
):
    """kill -9 while the ledger upload is in flight: before sending (the planned additions) or
    after Braze confirmed everything (the new generation)."""
    pipeline = Pipeline(braze, *s3_bucket(s3_endpoint), tmp_path)
    _, state1 = pipeline.run(snapshot(first_snapshot(users)))
    assert state1 is not None
    blocked_publish["skip"] = 1 if moment == "final" else 0
    blocked_publish["armed"].set()
    run = pipeline.start(snapshot(second_snapshot(users)), ledger_lease_s=3)
    run.close_input()
    assert blocked_publish["arrived"].wait(60), "the run never published"
    run.kill()  # kill -9 while its upload is in flight
    blocked_publish["release"].set()
    mark = pipeline.mark(tmp_path)
    assert mark is not None and mark.generation == 1  # the previous generation, intact
    if moment == "final":  # Braze has the killed run's changes, the ledger does not
        assert sorted(braze.attribute("u031", ATTR)) == ["Power users", "Trial (EU)"]
    # u030 and u031 (added by the killed run, if it got that far) leave cohort 1 again: the next
    # run waits for the killed run's lease to expire, then must still be exact
    third = {1: ("Power users", users[5:30]), 2: ("Trial (EU)", users[30:40])}
    result, state = pipeline.run(snapshot(third), state1, ledger_lock_wait_s=30)
    assert result.returncode == 0, result.stderr
    assert arrays(braze, users[:45]) == expected(third, users[:45])
    assert state is not None and state["bookmarks"][STATE_KEY]["generation"] == 2
    # and the run after it sends nothing: the ledger is exact again
    braze.track_requests.clear()
    again, _ = pipeline.run(snapshot(third), state)
    assert again.returncode == 0, again.stderr
    assert braze.track_requests == []


def test_ledger_credentials_are_never_logged(braze, users, tmp_path, s3_endpoint):
    root, options = s3_bucket(s3_endpoint)
    secret_options = {
        **options,
        "key": "LEDGERKEY7F3A9C1E",
        "secret": "ledger-secret-5b8d2e4f1a",
    }
    pipeline = Pipeline(braze, root, secret_options, tmp_path)
    env = {"TARGET_BRAZE_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}
    texts: dict[str, str] = {}
    for case, overrides in {
        "ok": {},
        "unreachable": {"ledger_options": {**secret_options, "endpoint_url": "http://127.0.0.1:9"}},
    }.items():
        workdir = pipeline.workdir()
        result = run_cli(
            "target-braze",
            pipeline.config(workdir, **overrides),
            workdir,
            stdin=singer_lines(snapshot(first_snapshot(users))),
            env=env,
            timeout=180,
        )
        texts[f"{case}:stdout"] = result.stdout
        texts[f"{case}:stderr"] = result.stderr
        if case == "unreachable":
            assert result.returncode == 1
            assert "Could not take the lease on the ledger s3://" in result.last_error_line
    forms = secret_forms([secret_options["key"], secret_options["secret"]])
    assert leaks(forms, texts) == []


def test_the_sdk_tap_re_emits_the_ledger_mark(run_tap):
    """The round trip through ``meltano run``: the tap gets the saved state and passes it on."""
    from sandbox.emulators.mixpanel_query import MixpanelQueryEmulator
    from tap_mixpanel_cohorts.tap import TapMixpanelCohorts
    from tests.support.clock import FakeClock
    from tests.support.cohorts import PROFILES, SA_SECRET, SA_USER, config_for, standard_cohorts

    clock = FakeClock()
    emulator = MixpanelQueryEmulator(
        standard_cohorts(), PROFILES, clock=clock, service_accounts={SA_USER: SA_SECRET}
    ).start()
    mark = {"ledger_id": "abc", "generation": 7, "memberships": 3, "published_at": "x"}
    try:
        output = run_tap(
            TapMixpanelCohorts,
            config_for(emulator, cohort_ids=[1]),
            state={"bookmarks": {STATE_KEY: mark}},
            clock=clock,
        )
    finally:
        emulator.stop()
    assert output.states, "the tap wrote no state"
    assert all(s["bookmarks"][STATE_KEY] == mark for s in output.states)
    assert LedgerMark.from_state(output.state) == LedgerMark("abc", 7, 3, "x")


def test_dry_run_reads_the_bucket_and_writes_nothing(pipeline, users, tmp_path):
    _, state = pipeline.run(snapshot(first_snapshot(users)))
    pipeline.braze.track_requests.clear()
    dry = tmp_path / "dry.jsonl"
    result, out_state = pipeline.run(
        snapshot(second_snapshot(users)), state, dry_run=True, dry_run_path=str(dry)
    )
    assert result.returncode == 0, result.stderr
    assert pipeline.braze.track_requests == []
    assert out_state == state  # nothing published, state passed on unchanged
    assert len(dry.read_text().splitlines()) == 1  # the 15 changed users in one request
    assert pipeline.mark(tmp_path).generation == 1


def test_a_long_run_renews_its_lease(braze, users, tmp_path):
    pipeline = Pipeline(braze, f"file://{tmp_path / 'bucket'}", {}, tmp_path)
    lifetime = 2  # renewed every 2/3 s: a run starved for up to 4/3 s still holds it
    holder = pipeline.start(snapshot(first_snapshot(users)), ledger_lease_s=lifetime)
    try:
        first = pipeline.wait_for_lease()
        # Wait (no fixed sleep) until the lease outlives its first lifetime: only renewal does that.
        renewed = pipeline.wait_for_lease(
            lambda lease: lease["expires"] > first["expires"] + lifetime
        )
        assert renewed["holder"] == first["holder"] and renewed["since"] == first["since"]
        refused, _ = pipeline.run(snapshot(second_snapshot(users)))
        assert refused.returncode == 1 and "is in use by run" in refused.last_error_line
    finally:
        done, _ = holder.finish()
    assert done.returncode == 0, done.stderr
    assert arrays(braze, users[:45]) == expected(first_snapshot(users), users[:45])


def test_ledger_settings(tmp_path, monkeypatch):
    from braze_mixpanel_common.settings import ConfigView
    from target_braze.settings import CONFIG_SCHEMA, Settings, ledger_location

    assert ledger_location("s3://b/k/ledger.sqlite3") == "s3://b/k/ledger.sqlite3"
    assert ledger_location(f"file://{tmp_path}/l.sqlite3") == f"{tmp_path}/l.sqlite3"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ledger_location("~/l.sqlite3") == f"{tmp_path}/l.sqlite3"
    config = {
        "rest_endpoint": "https://rest.iad-01.braze.com",
        "api_key": "k" * 8,
        "ledger_path": "gs://bucket/ledger.sqlite3",
        "ledger_options": {"token": "/secrets/sa.json", "project": "p"},
    }
    settings = Settings.from_config(ConfigView(config, CONFIG_SCHEMA))
    assert (settings.ledger_lock_wait_s, settings.ledger_lease_s) == (0, 300)
    assert settings.rebuild_ledger is False
    assert "/secrets/sa.json" in settings.secrets and "sa.json" not in repr(settings)
    # a remote ledger's dead letters stay local
    assert "://" not in str(settings.dead_letter_path)
