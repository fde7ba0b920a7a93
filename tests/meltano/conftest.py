"""Meltano for the smoke and scale-out tests: its own venv and the four plugins, once a session.

The venv is the one ``make demo`` uses (``.venv-meltano``); it is created here when missing, so
``make test`` on a fresh machine needs nothing but PyPI. Every command runs against a throw-away
system database, so the tests never touch a developer's own state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.stack import ROOT

MELTANO_VENV = Path(os.environ.get("MELTANO_VENV", ROOT / ".venv-meltano"))
MELTANO_SPEC = "meltano>=4.4,<5"  # keep in step with MELTANO_SPEC in the Makefile


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


@pytest.fixture(scope="session")
def meltano_executable() -> str:
    """Path of a ``meltano`` executable (its venv created when missing)."""
    executable = MELTANO_VENV / "bin" / "meltano"
    if not executable.exists():
        _check(_run([sys.executable, "-m", "venv", str(MELTANO_VENV)]), "creating the Meltano venv")
        _check(
            _run(
                [
                    str(MELTANO_VENV / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    MELTANO_SPEC,
                ]
            ),
            f"pip install {MELTANO_SPEC}",
        )
    return str(executable)


@pytest.fixture(scope="session")
def meltano(meltano_executable: str) -> str:
    """Path of a ``meltano`` executable with this project's plugins installed."""
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    _check(_run([meltano_executable, "install"], cwd=ROOT, env=env, timeout=900), "meltano install")
    return meltano_executable


@pytest.fixture
def meltano_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for ``meltano`` commands: a fresh system database, no telemetry."""
    yield {
        **os.environ,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
