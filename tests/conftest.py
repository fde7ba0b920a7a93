"""Fixtures shared by every plugin's tests."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.meltano import project_turn


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


@pytest.fixture(autouse=True)
def _one_meltano_project_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under ``pytest -n N`` (``make test``), tests that run ``meltano`` in this project take turns.

    Every test that runs ``meltano`` in this repository's project (the ``meltano`` fixture) shares
    its ``.meltano/`` folder, where Meltano keeps one catalog file per plugin: a file lock
    (``tests.support.meltano.project_turn``) keeps two of them from running at once on different
    workers. A lock rather than xdist groups: ``--dist loadgroup`` does nothing under pytest 9
    (pytest-xdist 3.8 marks a group by rewriting ``Item._nodeid``, which pytest 9 no longer reads).
    """
    if "meltano" not in request.fixturenames:
        yield
        return
    with project_turn():
        yield
