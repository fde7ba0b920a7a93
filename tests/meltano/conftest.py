"""Meltano for the smoke and scale-out tests: its own venv and the four plugins, once a session.

The venv is the one ``make demo`` uses (``.venv-meltano``); it is created here when missing, so
``make test`` on a fresh machine needs nothing but PyPI. Every command runs against a throw-away
system database, so the tests never touch a developer's own state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.meltano import install_plugins
from tests.support.meltano import meltano_executable as meltano_venv_executable


@pytest.fixture(scope="session")
def meltano_executable() -> str:
    """Path of a ``meltano`` executable (its venv created when missing)."""
    return meltano_venv_executable()


@pytest.fixture(scope="session")
def meltano(meltano_executable: str) -> str:
    """Path of a ``meltano`` executable with this project's plugins installed."""
    return install_plugins(meltano_executable)


@pytest.fixture
def meltano_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for ``meltano`` commands: a fresh system database, no telemetry."""
    yield {
        **os.environ,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
