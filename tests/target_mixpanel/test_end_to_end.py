"""tap-braze-currents | target-mixpanel over a generated Currents export, faults on.

The emulator's stored set must equal, exactly, the set derived from the generator's records
with the design's rules (event names written out here, independently of the target's table).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from braze_mixpanel_common.retry import BackoffPolicy, FakeClock
from sandbox.currents_gen import generate_export
from sandbox.mixpanel_import import MixpanelImportEmulator
from sandbox.server import Faults
from target_mixpanel.target import TargetMixpanel
from tests.target_mixpanel.conftest import sa_config

ROOT = Path(__file__).resolve().parents[2]
NAMES = {
    "users.behaviors.Purchase": "Purchase",
    "users.behaviors.app.SessionStart": "Session Start",
    "users.messages.email.Send": "Email Send",
    "users.messages.email.Open": "Email Open",
    "users.messages.pushnotification.Send": "Push Notification Send",
    "users.canvas.Entry": "Canvas Entry",
    "users.campaigns.Conversion": "Campaign Conversion",
}


def expected_keys(events: list[tuple[str, dict[str, Any]]]) -> set[tuple]:
    keys = set()
    for event_type, record in events:
        if not record.get("external_user_id"):
            continue  # Braze's connector sends nothing for users without an external id
        if event_type == "users.behaviors.CustomEvent":
            name = f"[Braze Custom Event] {record['name']}"
        else:
            name = NAMES[event_type]
        keys.add((name, record["external_user_id"], record["time"] * 1000, record["id"]))
    return keys


class Tee:
    """Iterates the tap's stdout for the target, keeping the STATE messages it saw."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.states: list[dict[str, Any]] = []

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            if '"type":"STATE"' in line.replace(" ", ""):
                self.states.append(json.loads(line)["value"])
            yield line


def run_pipeline(tmp_path: Path, export_root: Path, emulator, state: dict | None = None):
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps({"storage_url": str(export_root / "currents")}))
    command = [sys.executable, "-m", "tap_braze_currents", "--config", str(tap_config)]
    if state is not None:
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(state))
        command += ["--state", str(state_file)]
    tap = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    emitted: list[dict] = []
    target = TargetMixpanel(
        config=sa_config(
            emulator.url,
            batch_size=25,
            max_concurrency=5,
            dead_letter_path=str(tmp_path / "dead.jsonl"),
        ),
        clock=FakeClock(),
        backoff=BackoffPolicy(max_attempts=40),
        checkpoint_interval=0,
    )
    target.dispatcher.emit_state = emitted.append
    tee = Tee(tap.stdout)
    try:
        target.listen(tee)  # type: ignore[arg-type]
    finally:
        tap.stdout.close()
        assert tap.wait(60) == 0
    return target, tee.states, emitted


def test_currents_export_lands_in_mixpanel_exactly(tmp_path: Path) -> None:
    export = generate_export(tmp_path / "bucket", seed=21, events_per_file=40, hours=2)
    faults = Faults(rate_429=0.1, rate_5xx=0.1, rate_reset=0.05, rate_slow=0.05, slow_seconds=0.01)
    emulator = MixpanelImportEmulator(faults=faults).start()
    try:
        target, tap_states, emitted = run_pipeline(tmp_path, tmp_path / "bucket", emulator)
        expected = expected_keys(export.events)
        assert len(expected) > 500
        assert emulator.event_keys() == expected
        assert sum(emulator.faults_injected.values()) > 0
        assert target.stats.retries > 0
        assert target.stats.skipped["no_external_user_id"] > 0
        assert target.stats.dead_lettered == 0
        assert emitted and emitted[-1] == tap_states[-1]

        stored = {e["properties"]["$insert_id"]: e for e in emulator.events}
        custom = next(
            (t, r)
            for t, r in export.events
            if t == "users.behaviors.CustomEvent" and r["external_user_id"]
        )[1]
        props = stored[custom["id"]]["properties"]
        for key, value in json.loads(custom["properties"]).items():
            assert props[f"[Custom event property] {key}"] == value
        assert props["$partner_id"] == "braze"
        assert props["ip"] == "0"
        assert not any(k.startswith("_sdc_") for k in props)

        # A replay from scratch re-sends everything; $insert_id dedupes it to the same set.
        received = emulator.stats["received"]
        run_pipeline(tmp_path, tmp_path / "bucket", emulator)
        assert emulator.stats["received"] > received
        assert emulator.event_keys() == expected
        # Resuming from the emitted state sends nothing new.
        requests = emulator.stats["received"]
        run_pipeline(tmp_path, tmp_path / "bucket", emulator, state=emitted[-1])
        assert emulator.stats["received"] == requests
    finally:
        emulator.stop()
