"""Meltano for the tests that run it: its own venv and this project's plugins, plus state ids.

The venv is the one ``make demo`` uses (``.venv-meltano``, or ``$MELTANO_VENV``); it is created
when missing, so ``make test`` on a fresh machine needs nothing but PyPI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.loop.stack import ROOT

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


def meltano_executable() -> str:
    """Path of the ``meltano`` executable of ``MELTANO_VENV`` (the venv created when missing)."""
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


def install_plugins(executable: str) -> str:
    """``meltano install`` in this repository (the four plugins); returns ``executable``."""
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    _check(_run([executable, "install"], cwd=ROOT, env=env, timeout=900), "meltano install")
    return executable


def state_list(meltano: str, env: dict[str, str]) -> str:
    """``meltano --environment=sandbox state list`` (creates the system database if missing)."""
    return subprocess.run(
        [meltano, "--environment=sandbox", "state", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
