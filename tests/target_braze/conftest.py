"""Fixtures: the Braze emulator on a fake clock, its users, and a target config for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulators.braze import BrazeEmulator
from tests.support.braze import API_KEY
from tests.support.clock import FakeClock
from tests.support.storage_emulators import (  # noqa: F401 (fixtures)
    azurite_connection_string,
    gcs_endpoint,
    s3_endpoint,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def users() -> list[str]:
    return [f"u{i:03d}" for i in range(300)]


@pytest.fixture
def braze(clock: FakeClock, users: list[str]) -> Iterator[BrazeEmulator]:
    emulator = BrazeEmulator(
        api_key=API_KEY,
        existing_users=users,
        clock=clock,
        partners={"mixpanel": "partner-key-123"},
        data_import_keys=["import-key-456"],
    )
    with emulator:
        yield emulator


@pytest.fixture
def config(braze: BrazeEmulator, tmp_path: Path) -> dict[str, Any]:
    return {
        "rest_endpoint": braze.url,
        "api_key": API_KEY,
        "ledger_path": str(tmp_path / "ledger.sqlite3"),
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
        "removal_guard_min_members": 20,
        "max_concurrency": 4,
    }
