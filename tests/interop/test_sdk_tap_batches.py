"""A real third-party SDK tap (tap-jsonl from PyPI) with ``batch_config`` feeding both targets.

The tap writes its records to gzipped JSON Lines files and sends BATCH messages naming them,
each followed by a STATE. The targets run as processes, as Meltano runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.server import Request, Response
from tests.support.braze import API_KEY
from tests.support.harness import ROOT
from tests.support.mixpanel import sa_config

STREAM = "signups"
USERS = [f"u{i:03d}" for i in range(27)]  # one record per user


def write_source(directory: Path, files: int = 3, per_file: int = 9) -> int:
    """JSON Lines files for tap-jsonl; returns the number of records."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in range(files):
        with (directory / f"part-{f}.jsonl").open("w") as out:
            for _ in range(per_file):
                record = {
                    "id": n,
                    "distinct_id": USERS[n % len(USERS)],
                    "external_id": USERS[n % len(USERS)],
                    "time": f"2026-11-01T10:{n % 60:02d}:00Z",
                    "plan": "pro" if n % 2 else "free",
                    "score": 1.5 + n,
                }
                out.write(json.dumps(record) + "\n")
                n += 1
    return n


def run_tap(
    tap: Path, workdir: Path, fmt: str = "jsonl", state: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run tap-jsonl with ``batch_config``; return the messages it wrote."""
    config = {
        "path": str(workdir / "source" / "*.jsonl"),
        "stream_name": STREAM,
        "batch_config": {
            "encoding": {"format": fmt, "compression": "gzip"},
            "storage": {"root": (workdir / "batches").as_uri(), "prefix": "b-"},
            "batch_size": 10,
        },
    }
    config_path = workdir / "tap.json"
    config_path.write_text(json.dumps(config))
    command = [str(tap), "--config", str(config_path)]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        command += ["--state", str(workdir / "state.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert {m["type"] for m in messages} >= {"SCHEMA", "BATCH", "STATE"}
    assert not [m for m in messages if m["type"] == "RECORD"]
    return messages


def start_target(plugin: str, config: dict[str, Any], workdir: Path) -> subprocess.Popen:
    (workdir / f"{plugin}.json").write_text(json.dumps(config))
    module = plugin.replace("-", "_")
    return subprocess.Popen(
        [sys.executable, "-m", module, "--config", str(workdir / f"{plugin}.json")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")},
    )


def feed(target: subprocess.Popen, messages: list[dict[str, Any]]) -> tuple[int, str, str]:
    stdout, stderr = target.communicate(
        "".join(json.dumps(m) + "\n" for m in messages), timeout=120
    )
    return target.returncode, stdout, stderr


def states(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


class Gate:
    """Holds the emulator's answers to ``path`` until opened; ``reached`` is set on arrival."""

    def __init__(self, emulator: Any, path: str) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()
        original = emulator.handle

        def handle(request: Request) -> Response:
            if request.path == path and not self.opened.is_set():
                self.reached.set()
                self.opened.wait(30)
            return original(request)

        emulator.handle = handle


@pytest.fixture
def tap(third_party) -> Path:
    return third_party("tap-jsonl")


@pytest.fixture
def mixpanel() -> Iterator[MixpanelImportEmulator]:
    with MixpanelImportEmulator() as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
def braze() -> Iterator[BrazeEmulator]:
    with BrazeEmulator(api_key=API_KEY, existing_users=USERS) as emulator:
        yield emulator  # type: ignore[misc]


def mixpanel_config(emulator: MixpanelImportEmulator, workdir: Path) -> dict[str, Any]:
    return sa_config(
        emulator.url,
        event_name="Signup",
        batch_size=7,
        dead_letter_path=str(workdir / "dead.jsonl"),
    )


def braze_config(emulator: BrazeEmulator, workdir: Path) -> dict[str, Any]:
    return {
        "rest_endpoint": emulator.url,
        "api_key": API_KEY,
        "ledger_path": str(workdir / "ledger.sqlite3"),
        "dead_letter_path": str(workdir / "dead.jsonl"),
    }


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_every_batched_record_reaches_mixpanel_and_state_follows(
    tap, mixpanel, tmp_path: Path, fmt
) -> None:
    total = write_source(tmp_path / "source")
    messages = run_tap(tap, tmp_path, fmt)
    code, stdout, stderr = feed(
        start_target("target-mixpanel", mixpanel_config(mixpanel, tmp_path), tmp_path), messages
    )
    assert code == 0, stderr[-2000:]
    assert len(mixpanel.events) == total
    assert {e["event"] for e in mixpanel.events} == {"Signup"}
    tap_states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert states(stdout)[-1] == tap_states[-1]
    assert "BATCH for stream 'signups': 10 record(s) read from 1 file(s)" in stderr


def test_every_batched_record_reaches_braze_and_state_follows(tap, braze, tmp_path) -> None:
    total = write_source(tmp_path / "source")
    messages = run_tap(tap, tmp_path)
    code, stdout, stderr = feed(
        start_target("target-braze", braze_config(braze, tmp_path), tmp_path), messages
    )
    assert code == 0, stderr[-2000:]
    assert total == len(USERS)
    assert {u: braze.users[u]["plan"] for u in USERS} == {
        u: ("pro" if i % 2 else "free") for i, u in enumerate(USERS)
    }
    tap_states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert states(stdout)[-1] == tap_states[-1]


@pytest.mark.parametrize("plugin", ["target-mixpanel", "target-braze"])
def test_a_kill_before_confirmation_resends_on_the_next_run(
    plugin, tap, mixpanel, braze, tmp_path
) -> None:
    emulator: Any = mixpanel if plugin == "target-mixpanel" else braze
    config = (
        mixpanel_config(mixpanel, tmp_path)
        if plugin == "target-mixpanel"
        else braze_config(braze, tmp_path)
    )
    gate = Gate(emulator, "/import" if plugin == "target-mixpanel" else "/users/track")
    total = write_source(tmp_path / "source")
    messages = run_tap(tap, tmp_path)
    target = start_target(plugin, config, tmp_path)
    assert target.stdin is not None
    target.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    target.stdin.close()  # target-braze sends at the end of its input
    assert gate.reached.wait(60), "the target never sent the batched records"
    time.sleep(0.3)  # anything the target would (wrongly) write now is in the pipe
    target.send_signal(signal.SIGKILL)
    stdout = target.stdout.read() if target.stdout else ""
    target.wait(30)
    gate.opened.set()
    assert states(stdout) == []  # nothing confirmed, so no bookmark went downstream

    # Next run: the tap starts from the last state the target emitted (none), so it resends.
    again = run_tap(tap, tmp_path, state=None)
    code, stdout, stderr = feed(start_target(plugin, config, tmp_path), again)
    assert code == 0, stderr[-2000:]
    assert states(stdout)[-1] == [m["value"] for m in again if m["type"] == "STATE"][-1]
    if plugin == "target-mixpanel":
        assert len(mixpanel.events) == total
    else:
        assert all(braze.users[u].get("plan") for u in USERS)


@pytest.mark.parametrize("plugin", ["target-mixpanel", "target-braze"])
def test_an_unreadable_batch_file_fails_clearly_with_no_state(
    plugin, tap, mixpanel, braze, tmp_path
) -> None:
    write_source(tmp_path / "source")
    messages = run_tap(tap, tmp_path)
    batches = [m for m in messages if m["type"] == "BATCH"]
    gone = batches[1]["manifest"][0]
    Path(gone.removeprefix("file://")).unlink()
    config = (
        mixpanel_config(mixpanel, tmp_path)
        if plugin == "target-mixpanel"
        else braze_config(braze, tmp_path)
    )
    code, stdout, stderr = feed(start_target(plugin, config, tmp_path), messages)
    assert code == 1
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert gone in last
    assert "jsonl (gzip)" in last
    assert "Traceback" not in stderr
    # STATE after the broken BATCH never goes out; before it, only what was confirmed.
    after = [m["value"] for m in messages[messages.index(batches[1]) :] if m["type"] == "STATE"]
    assert not [s for s in states(stdout) if s in after]
