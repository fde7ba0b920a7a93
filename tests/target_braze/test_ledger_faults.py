"""The ledger under storage faults, through a fault proxy in front of the storage emulators.

target-braze talks to moto's S3 (Azurite and gcp-storage-emulator where their semantics apply)
through :class:`~tests.support.fault_proxy.FaultProxy`, which loses replies, refuses
permissions, fails renewals or kills the run at a chosen request. Runs are in-process where the
fault needs no real process, and real processes killed with SIGKILL where it does. Every case
ends with Braze holding exactly what the last input says.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from braze_mixpanel_common import conditional
from braze_mixpanel_common.clock import SystemClock
from braze_mixpanel_common.conditional import StorageError, conditional_store
from braze_mixpanel_common.settings import ConfigView
from braze_mixpanel_common.storage import open_url
from target_braze.ledger import read_mark
from target_braze.ledger.lease import Lease, LeaseHeldError, LeaseInfo, LeaseLostError, Process
from target_braze.ledger.mark import LedgerMark
from target_braze.ledger.store import LedgerConflictError
from target_braze.settings import CONFIG_SCHEMA, Settings
from target_braze.sync import BrazeSync
from tests.support.braze import API_KEY, changes, one_cohort_snapshots, run_target, snapshot
from tests.support.buckets import azure_container, gcs_bucket
from tests.support.clock import FakeClock
from tests.support.fault_proxy import FaultProxy
from tests.support.harness import run_cli, singer_lines
from tests.support.storage import new_s3_bucket
from tools.about import PACKAGES

ATTR = "mixpanel_cohorts"
LEDGER = r"ledger\.sqlite3(\?|$)"
LEASE = r"ledger\.sqlite3\.lease(\?|$)"


class Remote:
    """A ledger in a bucket reached through a fault proxy, and runs of target-braze against it."""

    def __init__(self, proxy: FaultProxy, bucket: str, options: dict, braze: Any, tmp: Path):
        self.proxy = proxy
        self.url = f"s3://{bucket}/pipeline/ledger.sqlite3"
        self.options = {**options, "endpoint_url": proxy.url}
        self.braze = braze
        self.tmp = tmp
        fs, self.path = open_url(self.url, options)  # straight to the emulator, no faults
        self.store = conditional_store(fs)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "rest_endpoint": self.braze.url,
            "api_key": API_KEY,
            "ledger_path": self.url,
            "ledger_options": self.options,
            "dead_letter_path": str(self.tmp / "dead.jsonl"),
            "removal_guard_min_members": 1000,
            "max_concurrency": 1,
            **overrides,
        }

    def run(self, messages: list[dict], clock: FakeClock | None = None, **overrides: Any) -> Any:
        return run_target(self.config(**overrides), messages, clock)

    def start(self, **overrides: Any) -> subprocess.Popen[str]:
        """A real target process, waiting for its input on ``stdin``."""
        workdir = self.tmp / f"run-{time.monotonic_ns()}"
        workdir.mkdir()
        (workdir / "config.json").write_text(json.dumps(self.config(**overrides)))
        return subprocess.Popen(
            [sys.executable, "-m", PACKAGES["target-braze"], "--config", "config.json"],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "stderr.log").open("w"),
            text=True,
        )

    def mark(self) -> LedgerMark | None:
        local = self.tmp / "inspect.sqlite3"
        local.unlink(missing_ok=True)
        return None if self.store.download(self.path, local) is None else read_mark(local)

    def lease(self) -> dict | None:
        found = self.store.read(f"{self.path}.lease")
        return None if found is None else json.loads(found.data)


@pytest.fixture
def remote(s3_endpoint, braze, tmp_path) -> Iterator[Remote]:
    with FaultProxy(s3_endpoint) as proxy:
        bucket, options = new_s3_bucket(s3_endpoint, "faults")
        yield Remote(proxy, bucket, options, braze, tmp_path)


def arrays(braze: Any, users: list[str]) -> dict[str, list[str]]:
    return {u: sorted(braze.attribute(u, ATTR) or []) for u in users}


def holding(cohorts: dict[int, tuple[str, list[str]]], users: list[str]) -> dict:
    return {u: sorted(n for n, members in cohorts.values() if u in members) for u in users}


# -- lost replies ------------------------------------------------------------------------------


def test_lost_replies_on_every_conditional_write_are_recognised(remote, users):
    """The store applies the write, the reply is lost, the client retries into a 412: the run
    reads its own bytes back and carries on (no self-lockout, no false conflict)."""
    proxy = remote.proxy
    lease_create = proxy.add("drop_reply", method="PUT", path=LEASE, header="If-None-Match")
    ledger_create = proxy.add("drop_reply", method="PUT", path=LEDGER, header="If-None-Match")
    ledger_replace = proxy.add("drop_reply", method="PUT", path=LEDGER, header="If-Match")
    release = proxy.add("drop_reply", method="DELETE", path=LEASE)
    first = {1: ("Power users", users[:30]), 2: ("Trial", users[30:40])}
    remote.run(snapshot(first))
    assert (lease_create.hits, ledger_create.hits, ledger_replace.hits, release.hits) == (
        1,
        1,
        1,
        1,
    )
    assert remote.lease() is None
    assert remote.mark().generation == 1

    # a second run: both its ledger writes (the additions in flight, then the publish) lose
    # their replies
    ledger_replace = proxy.add("drop_reply", method="PUT", path=LEDGER, header="If-Match", times=2)
    second = {1: ("Power users", users[5:32]), 2: ("Trial", users[30:40])}
    remote.run(snapshot(second))
    assert ledger_replace.hits == 2
    assert arrays(remote.braze, users[:45]) == holding(second, users[:45])
    assert remote.mark().generation == 2
    assert remote.lease() is None


def test_a_lost_renewal_reply_keeps_the_lease(remote):
    fs, path = open_url(f"{remote.url}.lease", remote.options)
    lease = Lease(
        conditional_store(fs), path, ttl=60, wait=0, clock=SystemClock(), logger=logging.getLogger()
    )
    lease.acquire()
    renewal = remote.proxy.add("drop_reply", method="PUT", path=LEASE, header="If-Match")
    lease.renew()
    assert renewal.hits == 1
    lease.check()  # still provably ours
    lease.release()
    assert remote.lease() is None


# -- missing buckets, permissions, large objects ------------------------------------------------


def _missing(kind: str, request: pytest.FixtureRequest) -> tuple[str, dict]:
    if kind == "s3":
        _, options = new_s3_bucket(request.getfixturevalue("s3_endpoint"), "other")
        return "s3://no-such-bucket-3f1a", options
    if kind == "gcs":
        _, options = gcs_bucket(request.getfixturevalue("gcs_endpoint"))
        return "gs://no-such-bucket-3f1a", options
    _, options = azure_container(request.getfixturevalue("azurite_connection_string"))
    return "az://no-such-container-3f1a", options


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure"])
def test_a_missing_bucket_fails_within_seconds_naming_it(kind, request, config, users):
    root, options = _missing(kind, request)
    url = f"{root}/pipeline/ledger.sqlite3"
    started = time.monotonic()
    with pytest.raises(StorageError) as failure:
        run_target(
            {**config, "ledger_path": url, "ledger_options": options},
            snapshot({1: ("A", users[:3])}),
        )
    assert time.monotonic() - started < 10
    message = str(failure.value)  # (adlfs spells az:// as abfs://)
    assert root.partition("://")[2] in message and "does not exist" in message
    assert "\n" not in message


def test_a_missing_bucket_ends_the_cli_with_one_line(s3_endpoint, braze, tmp_path, users):
    _, options = new_s3_bucket(s3_endpoint, "other")
    config = {
        "rest_endpoint": braze.url,
        "api_key": API_KEY,
        "ledger_path": "s3://no-such-bucket-77c2/ledger.sqlite3",
        "ledger_options": options,
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
    }
    started = time.monotonic()
    result = run_cli(
        "target-braze", config, tmp_path, stdin=singer_lines(snapshot({1: ("A", users[:3])}))
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.last_error_line
    assert "s3://no-such-bucket-77c2/ledger.sqlite3.lease: the bucket does not exist" in line
    assert braze.track_requests == []


def test_403_for_a_missing_key_names_s3_list_bucket(remote, users):
    """AWS without s3:ListBucket answers 403, not 404, for the lease that does not exist yet."""
    remote.proxy.add("not_found_as_403", method="GET", times=None)
    with pytest.raises(StorageError) as failure:
        remote.run(snapshot({1: ("A", users[:3])}))
    message = str(failure.value)
    assert f"{remote.url}.lease" in message and "s3:ListBucket" in message
    assert remote.braze.track_requests == []


def test_an_object_over_the_single_put_limit_is_refused(remote, monkeypatch):
    monkeypatch.setattr(conditional, "S3_MAX_SINGLE_PUT", 10)
    with pytest.raises(StorageError, match="over S3's 5 GiB limit for one conditional write"):
        remote.store.write(remote.path, b"x" * 11, None)
    assert remote.store.read(remote.path) is None


def test_a_contested_lease_gives_up_at_its_deadline(remote):
    """Every create of the lease fails (412) yet the lease never shows up: bounded, sleeping."""
    contested = remote.proxy.add(
        "status", method="PUT", path=LEASE, header="If-None-Match", times=None, status=412
    )
    fs, path = open_url(f"{remote.url}.lease", remote.options)
    lease = Lease(
        conditional_store(fs), path, ttl=60, wait=1, clock=SystemClock(), logger=logging.getLogger()
    )
    started = time.monotonic()
    with pytest.raises(LeaseHeldError, match="contested"):
        lease.acquire()
    assert time.monotonic() - started < 5 and contested.hits <= 3


# -- the lease: expiry while busy, takeover, dead holders ---------------------------------------


@pytest.fixture
def leases(monkeypatch) -> list[Lease]:
    """Every lease a run acquires in this test."""
    taken: list[Lease] = []
    acquire = Lease.acquire

    def recording(self: Lease) -> None:
        acquire(self)
        taken.append(self)

    monkeypatch.setattr(Lease, "acquire", recording)
    return taken


def test_a_renewal_failing_until_expiry_stops_the_run_before_it_sends_more(
    remote, users, leases, monkeypatch
):
    braze = remote.braze
    first = {1: ("A", users[:10])}
    remote.run(snapshot(first))
    track = braze._track
    calls: list[int] = []

    def slow_track(request: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the storage goes away while the run is busy with its first request
            remote.proxy.add("refuse", method="PUT", path=LEASE, times=None)
            deadline = time.monotonic() + 20
            while leases[-1].held:
                assert time.monotonic() < deadline, "the lease was never given up"
                time.sleep(0.05)
        return track(request)

    monkeypatch.setattr(braze, "_track", slow_track)
    second = {1: ("A", users[5:40])}
    with pytest.raises(LeaseLostError, match="no renewal succeeded"):
        remote.run(snapshot(second), ledger_lease_s=2, objects_per_request=10)
    assert len(calls) == 1  # nothing was sent after the lease could no longer be proven
    assert remote.mark().generation == 1  # and nothing published
    remote.proxy.clear()
    monkeypatch.setattr(braze, "_track", track)
    # the lease was left to expire (a renewal was still retrying): the next run takes it over
    later = FakeClock(start=1_700_000_000.0 + 60)
    remote.run(snapshot(second), later)
    assert arrays(braze, users[:45]) == holding(second, users[:45])


def test_a_takeover_makes_the_stale_holders_publish_fail(remote, users, tmp_path):
    """Run A stalls past its lease; run B takes over, sends and publishes. A's lease write and
    its ledger publish both fail, so B's confirmed changes stay recorded."""
    clock = FakeClock()
    first = {1: ("A", users[:10])}
    remote.run(snapshot(first), clock)
    config = remote.config(ledger_lease_s=30)
    stale = BrazeSync(
        Settings.from_config(ConfigView(config, CONFIG_SCHEMA)), logging.getLogger("stale"), clock
    )
    try:
        clock.sleep(31)  # the stale run's lease expires (it stopped renewing)
        second = {1: ("A", users[5:12])}
        remote.run(snapshot(second), clock, ledger_lease_s=30)
        assert remote.mark().generation == 2
        with pytest.raises(LedgerConflictError, match="replaced by another run"):
            stale.store.publish()  # (its own clock still trusts the lease)
        stale.store.lease.renew()
        with pytest.raises(LeaseLostError, match="another run took it over"):
            stale.store.check_lease()
    finally:
        stale.close()
    assert remote.mark().generation == 2
    assert arrays(remote.braze, users[:15]) == holding(second, users[:15])


def test_a_holder_is_dead_only_with_proof_from_the_same_boot_and_pid_namespace():
    here = Process.current()
    if not (here.boot_id and here.pid_ns):
        pytest.skip("no /proc boot id or PID namespace on this system")
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = Process(here.host, gone.pid, here.boot_id, here.pid_ns)
    assert dead.ended()
    # the same host name in another container (host networking): the PID proves nothing
    assert not Process(here.host, gone.pid, here.boot_id, "4026531999:1").ended()
    assert not Process(here.host, gone.pid, "another-boot", here.pid_ns).ended()
    assert not Process(here.host, os.getpid(), here.boot_id, here.pid_ns).ended()
    # a lease that records no process is judged by its expiry alone
    old = LeaseInfo.parse(b'{"holder": "h/pid 1/x", "since": 1, "expires": 2}')
    assert old is not None and old.process is None


# -- kill -9 at each step of a run, then a rerun -----------------------------------------------


def _kinds(users: list[str]) -> dict[str, tuple[list, list, list, dict]]:
    """Per input kind: the run before, the killed run, the rerun, and what Braze must hold.

    In each, the killed run adds u030 and u031, and the rerun's input says they are not members:
    only the record of the additions in flight can remove them.
    """
    keep = {1: ("A", users[5:30])}
    members = {1: ("A", users[:30])}
    return {
        "full snapshot": (
            snapshot({1: ("A", users[:30])}),
            snapshot({1: ("A", users[5:32])}),
            snapshot(keep),
            keep,
        ),
        "one-cohort snapshot": (
            one_cohort_snapshots({1: ("A", users[:30])}),
            one_cohort_snapshots({1: ("A", users[5:32])}),
            one_cohort_snapshots(keep),
            keep,
        ),
        "change session": (
            changes([(1, "A", "s1", "add", users[:30])]),
            changes([(1, "A", "s2", "add", users[30:32])]),
            changes([(1, "A", "s3", "remove", users[30:32])]),
            members,
        ),
        "superseded session": (
            changes([(1, "A", "s1", "add", users[:30])]),
            changes([(1, "A", "s2", "add", users[30:32])]),
            one_cohort_snapshots(members),  # a newer members session replaces s2
            members,
        ),
    }


def _kill_at(remote: Remote, step: str, process: subprocess.Popen[str], monkeypatch) -> None:
    """Arrange for ``process`` to be killed at ``step``."""
    if step == "braze":  # after Braze applied the run's first request, before the reply
        track = remote.braze._track

        def killing(request: Any) -> Any:
            answer = track(request)
            process.kill()
            return answer

        monkeypatch.setattr(remote.braze, "_track", killing)
        return
    skip = {"intent": 0, "publish": 1}[step]  # the additions in flight, then the publish
    remote.proxy.add(
        "kill_after", method="PUT", path=LEDGER, header="If-Match", skip=skip, pid=process.pid
    )


STEPS = [
    pytest.param("full snapshot", "intent"),
    pytest.param("full snapshot", "braze"),
    pytest.param("full snapshot", "publish"),
    pytest.param("one-cohort snapshot", "braze"),
    pytest.param("change session", "braze"),
    pytest.param("superseded session", "braze"),
    pytest.param("one-cohort snapshot", "intent", marks=pytest.mark.long),
    pytest.param("one-cohort snapshot", "publish", marks=pytest.mark.long),
    pytest.param("change session", "intent", marks=pytest.mark.long),
    pytest.param("change session", "publish", marks=pytest.mark.long),
    pytest.param("superseded session", "intent", marks=pytest.mark.long),
    pytest.param("superseded session", "publish", marks=pytest.mark.long),
]


@pytest.mark.parametrize(("kind", "step"), STEPS)
def test_kill_at_each_step_then_rerun_is_exact(remote, users, kind, step, monkeypatch):
    before, killed, rerun, expected = _kinds(users)[kind]
    remote.run(before)
    process = remote.start()  # its input is held back until the kill is armed
    _kill_at(remote, step, process, monkeypatch)
    assert process.stdin is not None
    process.stdin.write(singer_lines(killed))
    process.stdin.close()
    assert process.wait(timeout=60) == -9, "the run finished before the step it should die at"
    remote.proxy.clear()
    monkeypatch.undo()
    # the rerun takes the dead run's lease over at once (same boot, same PID namespace)
    remote.run(rerun)
    assert arrays(remote.braze, users[:40]) == holding(expected, users[:40])
    remote.braze.track_requests.clear()
    remote.run(rerun)
    assert remote.braze.track_requests == []  # the ledger is exact again
    assert remote.lease() is None


def test_a_failed_renewal_is_retried_at_the_next_tick(remote):
    """A renewal the storage refuses once is retried; the lease stays provable meanwhile."""
    fs, path = open_url(f"{remote.url}.lease", remote.options)
    lease = Lease(
        conditional_store(fs),
        path,
        ttl=1.5,
        wait=0,
        clock=SystemClock(),
        logger=logging.getLogger(),
    )
    lease.acquire()
    failing = remote.proxy.add("status", method="PUT", path=LEASE, status=403)
    first = remote.lease()
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "the lease was not renewed after the failure"
        now = remote.lease()
        if failing.hits and now is not None and now["expires"] > first["expires"]:
            break
        time.sleep(0.05)
    lease.check()
    lease.release()
