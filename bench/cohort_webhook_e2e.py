"""The 1,000,000-member cohort through the webhook path, end to end, then a 1% churn cycle.

Pusher (the sandbox's Mixpanel cohort sync, pages of 1,000) -> ``mixpanel-cohort-webhook``
(process) -> local spool -> ``tap-mixpanel-cohorts`` (``source: webhook``) | ``target-braze``
(processes, a shell pipeline) -> the Braze emulator (process). Each stage is timed; the peak RSS
of the receiver, the tap and the target is sampled from /proc every 50 ms. The Braze workspace
is then read back and checked member by member (counts), so a fast wrong run cannot pass.

Run through ``python -m bench.cohort_webhook_bench e2e [--members 1000000] [--churn 0.01]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import Row, measure
from bench.procfs import TreeSampler, cpu_seconds
from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator
from sandbox.emulators.server import free_port
from sandbox.loop.webhook_receiver import start_receiver

AUTH = ("bench-user", "bench-password-not-secret")
BRAZE_KEY = "bench-braze-key"
COHORT_ID, COHORT_NAME, PREFIX = 9001, "Bench million", "bench-"
ATTRIBUTE = "mixpanel_cohorts"


class BrazeProcess:
    """``python -m sandbox.emulators.braze`` as a process (users are created on first update)."""

    def __init__(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.emulators.braze",
                "--port",
                str(port),
                "--api-key",
                BRAZE_KEY,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "Braze emulator listening on ..."

    def members(self) -> tuple[int, set[str]]:
        """(users holding the cohort in their attribute, a sample of those ids)."""
        users = requests.get(f"{self.url}/_emulator/users", timeout=600).json()["users"]
        holding = {
            uid for uid, attrs in users.items() if COHORT_NAME in (attrs.get(ATTRIBUTE) or [])
        }
        return len(holding), holding

    def stop(self) -> None:
        """Terminate the emulator process and wait for it."""
        self.process.terminate()
        self.process.wait()


def _sync(workdir: Path, name: str) -> tuple[float, dict[str, tuple[float, float]]]:
    """One ``tap | target`` run: wall seconds, and (peak RSS MB, CPU s) per process."""
    state = workdir / "state.json"
    tap_args = f"--config {workdir / 'tap.json'}"
    if state.exists():
        tap_args += f" --state {state}"
    out = workdir / f"{name}-target-state.jsonl"
    command = (
        f"{sys.executable} -m tap_mixpanel_cohorts {tap_args} 2> {workdir / (name + '-tap.log')} "
        f"| {sys.executable} -m target_braze --config {workdir / 'target.json'} "
        f"> {out} 2> {workdir / (name + '-target.log')}"
    )
    run = measure(["bash", "-o", "pipefail", "-c", command], sample_tree=True, env=dict(os.environ))
    lines = [line for line in out.read_text().splitlines() if line.strip()]
    if lines:
        state.write_text(lines[-1])
    usage = {
        label: (mb, run.per_command_cpu.get(label, 0.0))
        for label, mb in run.per_command_mb.items()
        if label in ("tap_mixpanel_cohorts", "target_braze")
    }
    return run.wall, usage


def _push(pusher: CohortSyncPusher, receiver_pid: int) -> tuple[float, float, int, float]:
    """One sync cycle: wall seconds, the receiver's peak RSS, pages, the receiver's CPU s."""
    sampler = TreeSampler(receiver_pid)
    sampler.start()
    cpu_before = cpu_seconds(receiver_pid)
    started = time.perf_counter()
    reports = pusher.sync()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if any(r.failed for r in reports):
        raise RuntimeError(f"a session was not delivered: {reports}")
    cpu = cpu_seconds(receiver_pid) - cpu_before
    return wall, max(sampler.peaks.values(), default=0.0), sum(r.pages for r in reports), cpu


def _process_rows(prefix: str, receiver: tuple[float, float], usage: dict) -> list[Row]:
    """Peak RSS (goal <= 300 MB) and CPU seconds of the receiver, the tap and the target."""
    rows = []
    for label, (mb, cpu) in {"receiver": receiver, **usage}.items():
        rows.append(Row(f"{prefix}{label} peak RSS", mb, "MB", "goal <= 300"))
        rows.append(Row(f"{prefix}{label} CPU", cpu, "s"))
    return rows


def end_to_end(members: int, churn: float, workdir: Path) -> list[Row]:
    """The full sync and the churn cycle; the result rows."""
    spool = workdir / "spool"
    config_tap: dict[str, Any] = {"source": "webhook", "spool_url": str(spool)}
    config_target = {
        "rest_endpoint": "",
        "api_key": BRAZE_KEY,
        "ledger_path": str(workdir / "ledger.sqlite3"),
        "update_existing_only": False,
    }
    (workdir / "tap.json").write_text(json.dumps(config_tap))
    braze = BrazeProcess()
    config_target["rest_endpoint"] = braze.url
    (workdir / "target.json").write_text(json.dumps(config_target))
    receiver = start_receiver(str(spool), workdir / "receiver.log", credentials=AUTH)
    cohort = Cohort(COHORT_ID, COHORT_NAME, members=GeneratedMembers(members, prefix=PREFIX))
    query = MixpanelQueryEmulator([cohort])
    pusher = CohortSyncPusher(query, receiver.url, auth=AUTH, page_size=1000, concurrency=4)
    rows: list[Row] = []
    try:
        push_wall, receiver_mb, pages, receiver_cpu = _push(pusher, receiver.process.pid)
        braze_cpu = cpu_seconds(braze.process.pid)
        sync_wall, usage = _sync(workdir, "full")
        braze_cpu = cpu_seconds(braze.process.pid) - braze_cpu
        held, _ = braze.members()
        if held != members:
            raise RuntimeError(f"Braze holds the cohort on {held} users, expected {members}")
        total = push_wall + sync_wall
        rows += [
            Row(
                f"{members:,} members: push -> receiver -> spool",
                push_wall,
                "s",
                "",
                f"({pages} pages)",
            ),
            Row(f"{members:,} members: tap | target-braze -> Braze", sync_wall, "s"),
            Row(f"{members:,} members: end to end", total, "s", "goal <= 300"),
            *_process_rows("", (receiver_mb, receiver_cpu), usage),
            Row("Braze emulator CPU (not ours)", braze_cpu, "s"),
        ]
        for row in rows:
            print(f"  {row.name}: {row.figure:,.1f} {row.unit} {row.note}", flush=True)
        moved = int(members * churn)
        cohort.members = GeneratedMembers(members, prefix=PREFIX, start=moved)
        push_wall, receiver_mb, pages, receiver_cpu = _push(pusher, receiver.process.pid)
        sync_wall, usage = _sync(workdir, "churn")
        held, holding = braze.members()
        gone = {f"ext-{PREFIX}{n}" for n in range(moved)}
        joined = {f"ext-{PREFIX}{n}" for n in range(members, members + moved)}
        if held != members or holding & gone or not joined <= holding:
            raise RuntimeError(f"after churn Braze holds {held}, expected {members} with the diff")
        rows += [
            Row(
                f"{churn:.0%} churn cycle ({moved:,} out, {moved:,} in): end to end",
                push_wall + sync_wall,
                "s",
                "goal <= 30",
                f"(push {push_wall:.1f} s, tap | target {sync_wall:.1f} s)",
            ),
            *_process_rows("churn: ", (receiver_mb, receiver_cpu), usage),
        ]
    finally:
        receiver.stop()
        braze.stop()
    return rows
