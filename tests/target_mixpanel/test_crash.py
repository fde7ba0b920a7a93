"""A target killed with SIGKILL mid-run: its last state line covers only records Mixpanel stored."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from tests.support.mixpanel import currents_record, record_msg, sa_config, schema_msg

ROOT = Path(__file__).resolve().parents[2]
STREAM = "users_messages_email_send"


def test_sigkill_mid_run_never_checkpoints_unconfirmed_records(tmp_path: Path) -> None:
    emulator = MixpanelImportEmulator(handle_delay=0.02).start()
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            sa_config(
                emulator.url,
                batch_size=20,
                max_concurrency=3,
                dead_letter_path=str(tmp_path / "dead.jsonl"),
            )
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "target_mixpanel", "--config", str(config)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    states: list[dict] = []
    reader = threading.Thread(
        target=lambda: states.extend(json.loads(x) for x in proc.stdout if x.strip())
    )
    reader.start()
    try:
        proc.stdin.write(json.dumps(schema_msg(STREAM)) + "\n")
        for i in range(100_000):
            proc.stdin.write(json.dumps(record_msg(STREAM, currents_record(i))) + "\n")
            if (i + 1) % 10 == 0:
                proc.stdin.write(json.dumps({"type": "STATE", "value": {"n": i + 1}}) + "\n")
            if i % 500 == 0:
                proc.stdin.flush()
                if emulator.stats["requests"] >= 15:
                    break
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait(10)
        reader.join(10)
        stored = {e["properties"]["$insert_id"] for e in emulator.events}
        emulator.stop()
    assert states, "the target checkpointed before it was killed"
    covered = states[-1]["n"]
    assert covered > 0
    assert {f"evt-{i:06d}" for i in range(covered)} <= stored
    assert [s["n"] for s in states] == sorted(s["n"] for s in states)
