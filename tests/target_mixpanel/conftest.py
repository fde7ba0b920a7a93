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

from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from target_mixpanel.target import TargetMixpanel
from tests.support.clock import FakeClock


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
