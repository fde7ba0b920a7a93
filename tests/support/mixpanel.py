"""target-mixpanel test helpers: Singer message builders, configs, and the Currents pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from braze_mixpanel_common.retry import BackoffPolicy
from target_mixpanel.target import TargetMixpanel
from tests.support.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]

SA_USER = "sa-user.mp-service-account"
SA_SECRET = "sa-secret"
PROJECT_ID = "12345"

CURRENTS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "user_id": {"type": ["null", "string"]},
        "external_user_id": {"type": ["null", "string"]},
        "time": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "properties": {"type": ["null", "string"]},
        "device_model": {"type": ["null", "string"]},
        "os_version": {"type": ["null", "string"]},
        "_sdc_source_file": {"type": ["null", "string"]},
    },
}


def schema_msg(stream: str, schema: dict[str, Any] | None = None, keys: list[str] | None = None):
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": schema or CURRENTS_SCHEMA,
        "key_properties": keys if keys is not None else [],
    }


def record_msg(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": record}


def state_msg(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


def currents_record(i: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "id": f"evt-{i:06d}",
        "user_id": f"{i:024x}",
        "external_user_id": f"user-{i % 50:03d}",
        "time": 1_760_000_000 + i,
        "name": "added_to_cart",
        "properties": json.dumps({"sku": f"sku-{i}", "qty": i % 5}),
        "device_model": "Pixel 9",
        "os_version": "Android 15",
        "_sdc_source_file": "s3://bucket/file.avro",
    }
    record.update(overrides)
    return record


def sa_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "api_url": url,
        "project_id": PROJECT_ID,
        "service_account_username": SA_USER,
        "service_account_secret": SA_SECRET,
        **extra,
    }


# -- tap-braze-currents | target-mixpanel ------------------------------------------------------

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
    """(name, distinct_id, time in ms, $insert_id) Mixpanel must hold for Currents ``events``.

    Derived with the design's rules, independently of the target's own mapping table.
    """
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
    """``python -m tap_braze_currents`` piped into an in-process target-mixpanel (fake clock).

    Returns the target, the STATE messages the tap wrote and those the target emitted.
    """
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
