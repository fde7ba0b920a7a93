"""Fixtures shared by every plugin's tests."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class SingerOutput:
    """Messages a tap wrote, split by type."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def state(self) -> dict[str, Any] | None:
        """The last state written."""
        return self.states[-1] if self.states else None

    def all_records(self) -> list[dict[str, Any]]:
        """Every record, all streams."""
        return [r for records in self.records.values() for r in records]


def parse_singer(lines: list[str]) -> SingerOutput:
    """Parse Singer messages (JSON lines)."""
    out = SingerOutput()
    for line in lines:
        if not line.strip():
            continue
        message = json.loads(line)
        out.messages.append(message)
        kind = message["type"]
        if kind == "RECORD":
            out.records.setdefault(message["stream"], []).append(message["record"])
        elif kind == "SCHEMA":
            out.schemas[message["stream"]] = message["schema"]
        elif kind == "STATE":
            out.states.append(message["value"])
    return out


@pytest.fixture
def run_tap(monkeypatch: pytest.MonkeyPatch) -> Callable[..., SingerOutput]:
    """Run a tap's sync in-process and return what it wrote to stdout.

    With ``expect_error=True`` the exception is kept in ``output.error`` with the messages written
    before it; otherwise it propagates.
    """

    def run(
        tap_class: type, config: dict[str, Any], *, expect_error: bool = False, **kwargs: Any
    ) -> SingerOutput:
        buffer = io.BytesIO()
        stdout = io.TextIOWrapper(buffer, encoding="utf-8")
        monkeypatch.setattr(sys, "stdout", stdout)
        error: BaseException | None = None
        try:
            tap_class(config=config, parse_env_config=False, **kwargs).sync_all()
        except Exception as exc:
            if not expect_error:
                raise
            error = exc
        finally:
            stdout.flush()
            monkeypatch.undo()
        output = parse_singer(buffer.getvalue().decode("utf-8").splitlines())
        output.error = error
        if expect_error and error is None:
            pytest.fail("the sync was expected to fail")
        return output

    return run


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (``make test``), the Meltano tests stay in two lines.

    Every test that runs ``meltano`` in this repository's project (the ``meltano`` fixture) shares
    its ``.meltano/`` folder. Their runs keep apart by design (each has its own system database,
    work folder, run id and batch file names; ``meltano install`` runs once, under a lock), but
    they are also the heaviest tests: the Meltano ones run one after another on one worker and
    the Dagster ones on another, so they never pile up on the same cores at once.
    """
    for item in items:
        if "meltano" in getattr(item, "fixturenames", ()):
            folder = item.path.parent.name  # tests/meltano or tests/orchestration
            item.add_marker(pytest.mark.xdist_group(f"meltano-project-{folder}"))
