"""The webhook path end to end, for tests: pusher -> receiver -> spool -> tap | target -> Braze.

The receiver, the tap and the target are real processes (their CLIs); the pusher (the sandbox's
Mixpanel cohort sync) and the Braze emulator run in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.loop.webhook_receiver import ReceiverProcess

BRAZE_KEY = "sk-webhook-e2e-braze-key-0123"
ATTRIBUTE = "mixpanel_cohorts"


@dataclass
class RunResult:
    """One ``tap | target`` run."""

    tap_code: int
    target_code: int
    tap_log: str
    target_log: str

    @property
    def ok(self) -> bool:
        """Both processes exited 0."""
        return self.tap_code == 0 and self.target_code == 0


@dataclass
class WebhookLoop:
    """Everything one end-to-end test drives."""

    workdir: Path
    braze: BrazeEmulator
    receiver: ReceiverProcess
    pusher: CohortSyncPusher
    target_extra: dict[str, Any] = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)

    def push(self) -> list[Any]:
        """One Mixpanel sync cycle; every session must be delivered."""
        reports = self.pusher.sync()
        assert not any(r.failed for r in reports), reports
        return reports

    def run(self) -> RunResult:
        """``tap-mixpanel-cohorts (source: webhook) | target-braze``, carrying state forward."""
        tap_config = self.workdir / "tap.json"
        tap_config.write_text(json.dumps({"source": "webhook", "spool_url": self.receiver_spool}))
        target_config = self.workdir / "target.json"
        target_config.write_text(
            json.dumps(
                {
                    "rest_endpoint": self.braze.url,
                    "api_key": BRAZE_KEY,
                    "ledger_path": str(self.workdir / "ledger.sqlite3"),
                    "update_existing_only": False,
                    **self.target_extra,
                }
            )
        )
        state = self.workdir / "state.json"
        tap_cmd = [sys.executable, "-m", "tap_mixpanel_cohorts", "--config", str(tap_config)]
        if state.exists():
            tap_cmd += ["--state", str(state)]
        number = len(self.runs)
        tap_err = self.workdir / f"tap-{number}.log"
        target_err = self.workdir / f"target-{number}.log"
        env = {k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")}
        with tap_err.open("wb") as tap_log, target_err.open("wb") as target_log:
            tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_log, env=env)
            target = subprocess.run(
                [sys.executable, "-m", "target_braze", "--config", str(target_config)],
                stdin=tap.stdout,
                capture_output=True,
                env=env,
                timeout=300,
                check=False,
            )
            assert tap.stdout is not None
            tap.stdout.close()
            tap_code = tap.wait(timeout=60)
            target_log.write(target.stderr)
        lines = [line for line in target.stdout.decode().splitlines() if line.strip()]
        if lines and target.returncode == 0:
            state.write_text(lines[-1])
        result = RunResult(
            tap_code,
            target.returncode,
            tap_err.read_text(errors="replace"),
            target_err.read_text(errors="replace"),
        )
        self.runs.append(result)
        return result

    @property
    def receiver_spool(self) -> str:
        """The spool the receiver writes and the tap reads."""
        return str(self.workdir / "spool")

    def holders(self, cohort_name: str) -> set[str]:
        """External ids of the Braze users whose attribute holds ``cohort_name``."""
        with self.braze._state_lock:
            return {
                uid
                for uid, attrs in self.braze.users.items()
                if cohort_name in (attrs.get(ATTRIBUTE) or [])
            }
