"""The closed loop's moving parts: sample data, emulators on 127.0.0.1, and ``meltano run``.

Shared by ``demo/run_demo.py``, the Meltano smoke and scale-out tests and the benchmarks, so what
CI checks is what ``make demo`` shows. The demo's data files (``demo/cohorts.json``,
``demo/sandbox.env``) are read from the repository; nothing here imports ``demo`` or ``tests``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from braze_mixpanel_common.process import stop_process_group
from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.loop.currents_gen import Export, generate_export
from sandbox.loop.mixpanel_loop import IMPORT_PORT, QUERY_PORT, MixpanelLoop, load_definitions
from sandbox.loop.webhook_receiver import ReceiverProcess, running_receiver

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".demo"  # the sandbox environment's storage_url, ledger and dead letters live here
BRAZE_PORT = 8790
SPOOL_VAR = "TAP_MIXPANEL_COHORTS__WEBHOOK_SPOOL_URL"
SAMPLE_START = datetime(2026, 11, 1, 10, tzinfo=UTC)
ROUND1_HOURS = 3


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (comments and blank lines ignored)."""
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def generate_round(work: Path, round_no: int, events: int) -> Export:
    """Write one Currents delivery: round 1 is three hours, later rounds one hour each.

    Args:
        work: The demo work directory (the export goes to ``work/currents``).
        round_no: 1, 2, ...; sets the seed and the hour partitions written.
        events: Approximate number of events in this round.

    Returns:
        What was written (events include at-least-once duplicates).
    """
    hours = ROUND1_HOURS if round_no == 1 else 1
    offset = 0 if round_no == 1 else ROUND1_HOURS + round_no - 2
    files_per_hour = 2
    per_file = max(1, events // (8 * hours * files_per_hour))
    return generate_export(
        work / "currents",
        seed=round_no - 1,
        hours=hours,
        files_per_hour=files_per_hour,
        events_per_file=per_file,
        start=SAMPLE_START + timedelta(hours=offset),
        drift=round_no == 1,
        corrupt=round_no == 1,
    )


def external_ids(export: Export) -> set[str]:
    """Braze external ids of the users behind an export (they exist in Braze by definition)."""
    return {r["external_user_id"] for _, r in export.events if r.get("external_user_id")}


@dataclass
class Sandbox:
    """Running emulators and the environment that points ``meltano`` at them."""

    loop: MixpanelLoop
    braze: BrazeEmulator
    env: dict[str, str]
    meltano: str
    work: Path
    logs: list[Path] = field(default_factory=list)
    project: Path = ROOT  # the Meltano project ``meltano`` runs in (a fresh one in the hub test)

    def seed_braze_users(self, ids: set[str]) -> None:
        """Create users in the Braze emulator (target-braze only updates existing users)."""
        with self.braze._state_lock:
            for uid in ids:
                self.braze.users.setdefault(uid, {})

    def braze_cohorts(self) -> dict[str, list[str]]:
        """Each Braze user's ``mixpanel_cohorts`` (users without the attribute included)."""
        with self.braze._state_lock:
            return {
                uid: list(attrs.get("mixpanel_cohorts") or [])
                for uid, attrs in sorted(self.braze.users.items())
            }

    def run(self, *args: str, log_name: str, extra_env: dict[str, str] | None = None) -> str:
        """Run ``meltano --environment=sandbox <args>``; return its log, raise on failure."""
        log = self.work / "logs" / f"{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [self.meltano, "--environment=sandbox", *args]
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(
                command,
                cwd=self.project,
                env={**self.env, **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so we can stop tap and target
            )
            returncode = wait_or_kill(process, timeout=600)
        self.logs.append(log)
        text = log.read_text(encoding="utf-8")
        if returncode != 0:
            tail = "\n".join(text.splitlines()[-25:])
            raise RuntimeError(
                f"`meltano {' '.join(args)}` exited {returncode}; log {log}:\n{tail}"
            )
        return text

    def start_run(self, *args: str, log_name: str, extra_env: dict[str, str]) -> Any:
        """Start ``meltano --environment=sandbox <args>`` in the background (for partitions)."""
        log = self.work / "logs" / f"{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("w", encoding="utf-8")
        process = subprocess.Popen(
            [self.meltano, "--environment=sandbox", *args],
            cwd=self.project,
            env={**self.env, **extra_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.logs.append(log)
        return process, log


def wait_or_kill(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for ``process``; on timeout or interruption stop its whole process group.

    Meltano starts the tap and the target as its children: killing only Meltano would leave
    them running, so the group goes (SIGTERM, then SIGKILL after 10 s).
    """
    try:
        return process.wait(timeout=timeout)
    except BaseException:
        stop_process_group(process)
        raise


def _start_loop(definitions: list[Any], fixed_ports: bool) -> MixpanelLoop:
    if fixed_ports:
        try:
            return MixpanelLoop(definitions, import_port=IMPORT_PORT, query_port=QUERY_PORT)
        except OSError:
            pass  # taken: any free port (the URLs reach meltano through env vars anyway)
    return MixpanelLoop(definitions)


def _start_braze(api_key: str, fixed_ports: bool) -> BrazeEmulator:
    if fixed_ports:
        try:
            return BrazeEmulator(api_key=api_key, port=BRAZE_PORT)
        except OSError:
            pass
    return BrazeEmulator(api_key=api_key)


@contextmanager
def open_sandbox(
    meltano: str,
    *,
    work: Path = WORK,
    cohorts_file: Path = ROOT / "demo" / "cohorts.json",
    fixed_ports: bool = True,
) -> Iterator[Sandbox]:
    """Start the Mixpanel loop and the Braze emulator; stop them on exit, whatever happens.

    Args:
        meltano: Path of the ``meltano`` executable.
        work: Work directory, emptied first (sample data, state database, ledger, logs).
        cohorts_file: Cohort definitions for the emulated Mixpanel.
        fixed_ports: Try the sandbox environment's ports first (else any free port).
    """
    _clean(work)
    secrets = read_env_file(ROOT / "demo" / "sandbox.env")
    definitions = load_definitions(cohorts_file)
    loop = _start_loop(definitions, fixed_ports)
    braze = _start_braze(secrets["TARGET_BRAZE_API_KEY"], fixed_ports)
    env = {
        **os.environ,
        **secrets,
        # The demo keeps its own system database (state) so each run starts from scratch and a
        # developer's own sandbox state in .meltano/meltano.db is left alone.
        "MELTANO_DATABASE_URI": f"sqlite:///{work / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_BRAZE_CURRENTS_STORAGE_URL": str(work / "currents"),
        "TARGET_MIXPANEL_API_URL": loop.import_url,
        "TARGET_MIXPANEL_DEAD_LETTER_PATH": str(work / "mixpanel-dead-letters.jsonl"),
        "TAP_MIXPANEL_COHORTS_API_URL": loop.query_url,
        "TARGET_BRAZE_REST_ENDPOINT": braze.url,
        "TARGET_BRAZE_LEDGER_PATH": str(work / "braze-ledger.sqlite3"),
        # The webhook path: the spool mixpanel-cohort-webhook fills and the inherited tap reads.
        SPOOL_VAR: str(work / "cohort-spool"),
    }
    loop.start()
    braze.start()
    try:
        yield Sandbox(loop=loop, braze=braze, env=env, meltano=meltano, work=work)
    finally:
        loop.stop()
        braze.stop()


@contextmanager
def webhook_path(box: Sandbox) -> Iterator[tuple[ReceiverProcess, CohortSyncPusher]]:
    """The receiver process on the sandbox's spool, and the project's cohort sync pushing to it.

    The pusher rebuilds the cohorts from the imported events before each cycle, as the query
    API does on ``cohorts/list``; the receiver is stopped on exit, whatever happens.
    """
    credentials = (box.env["MIXPANEL_WEBHOOK_USERNAME"], box.env["MIXPANEL_WEBHOOK_PASSWORD"])
    log = box.work / "logs" / "mixpanel-cohort-webhook.log"
    with running_receiver(box.env[SPOOL_VAR], log, credentials=credentials) as receiver:
        box.logs.append(log)
        pusher = CohortSyncPusher(
            box.loop.query, receiver.url, auth=credentials, before_cycle=box.loop.rebuild
        )
        yield receiver, pusher


def _clean(work: Path) -> None:
    if work.exists():
        for path in sorted(work.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    work.mkdir(parents=True, exist_ok=True)


# -- what the plugins logged -----------------------------------------------------------------

_SKIPPED = re.compile(r"target-mixpanel summary: .*?skipped=\d+ \(([^)]*)\)")
_TAP_SUMMARY = re.compile(r"Currents sync summary: (.*)$", re.M)
_COHORT_SYNC = re.compile(
    r"Cohort '(?P<name>.*)' \(id (?P<id>[^,]+), stream [^)]*\): (?P<added>\d+) added, "
    r"(?P<removed>\d+) removed confirmed"
)


def skipped_reasons(log: str) -> Counter[str]:
    """Records target-mixpanel skipped, per reason, from its summary lines."""
    reasons: Counter[str] = Counter()
    for match in _SKIPPED.finditer(log):
        for part in match.group(1).split(", "):
            if "=" in part:
                name, _, count = part.partition("=")
                reasons[name] += int(count)
    return reasons


def tap_summary(log: str) -> str:
    """The tap's one-line Currents sync summary ('' when absent)."""
    found = _TAP_SUMMARY.findall(log)
    return found[-1].strip() if found else ""


def cohort_changes(log: str) -> dict[str, tuple[int, int]]:
    """target-braze's per-cohort (added, removed) counts, summed over its streams.

    A webhook run reports each cohort once for ``cohort_member_changes`` and once for
    ``cohort_members``.
    """
    found: dict[str, tuple[int, int]] = {}
    for m in _COHORT_SYNC.finditer(log):
        added, removed = found.get(m.group("name"), (0, 0))
        found[m.group("name")] = (added + int(m.group("added")), removed + int(m.group("removed")))
    return found


def wait_all(processes: list[Any], timeout: float = 600) -> list[int]:
    """Wait for background runs; return their exit codes (stop them all on failure)."""
    deadline = time.monotonic() + timeout
    try:
        return [wait_or_kill(p, max(deadline - time.monotonic(), 1)) for p, _ in processes]
    except BaseException:
        for process, _ in processes:
            with contextlib.suppress(BaseException):
                wait_or_kill(process, 0.01)
        raise
