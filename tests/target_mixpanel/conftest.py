"""Fixtures for target-mixpanel: the /import emulator and an in-process target runner."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from braze_mixpanel_common.retry import BackoffPolicy, FakeClock
from target_mixpanel.target import TargetMixpanel
from tests.sandbox.mixpanel_import import MixpanelImportEmulator

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


@dataclass
class TargetRun:
    """What one in-process run produced."""

    target: TargetMixpanel
    states: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stats(self):
        return self.target.stats


@pytest.fixture
def emulator() -> Iterator[MixpanelImportEmulator]:
    emu = MixpanelImportEmulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def run_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., TargetRun]:
    """Run the target in-process on Singer messages; fake clock, checkpoint after every batch."""

    def run(
        config: dict[str, Any],
        messages: list[dict[str, Any] | str],
        *,
        expect_error: bool = False,
        clock: FakeClock | None = None,
        backoff: BackoffPolicy | None = None,
    ) -> TargetRun:
        dead_path = tmp_path / "dead.jsonl"
        config = {"dead_letter_path": str(dead_path), **config}
        lines = "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)
        # A text stream with a binary buffer, as the real one: a dry run writes to the buffer.
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        monkeypatch.setattr(sys, "stdout", stdout)
        target = TargetMixpanel(
            config=config,
            clock=clock or FakeClock(),
            backoff=backoff or BackoffPolicy(max_attempts=4),
            checkpoint_interval=0,
        )
        result = TargetRun(target)
        try:
            target.listen(io.StringIO(lines))
        except Exception as exc:
            if not expect_error:
                raise
            result.error = exc
        finally:
            monkeypatch.undo()
        if expect_error and result.error is None:
            pytest.fail("the run was expected to fail")
        stdout.flush()
        written = stdout.buffer.getvalue().decode()  # type: ignore[attr-defined]
        result.states = [json.loads(x) for x in written.splitlines() if x.strip()]
        if dead_path.exists():
            result.dead_letters = [json.loads(x) for x in dead_path.read_text().splitlines()]
        return result

    return run
