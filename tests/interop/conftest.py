"""Third-party Singer plugins from PyPI, each in its own venv, installed once per machine.

Their pins fight ours (and each other's), so each gets a venv under ``.venv-interop/<name>``
(gitignored; ``INTEROP_VENVS`` moves it). A clean clone installs them on the first run: about a
minute per plugin. The plugins run as processes, exactly as Meltano would run them.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("INTEROP_VENVS", ROOT / ".venv-interop"))

# name -> (pip requirements, executable). Pinned: a new release must not change a test's result.
PLUGINS = {
    # An SDK tap (singer-sdk 0.53) that emits BATCH messages when given batch_config.
    "tap-jsonl": (["tap-jsonl==0.3.1", "pyarrow>=15"], "tap-jsonl"),
    # MeltanoLabs' SDK target: one CSV file per stream it receives a SCHEMA for.
    "target-csv": (["meltanolabs-target-csv==0.5.0"], "target-csv"),
}


def _install(name: str) -> Path:
    requirements, executable = PLUGINS[name]
    venv = VENVS / name
    binary = venv / "bin" / executable
    marker = venv / ".installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted and binary.exists():
        return binary
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers install once
        if marker.exists() and marker.read_text() == wanted and binary.exists():
            return binary
        for command in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *requirements,
            ],
        ):
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                pytest.fail(
                    f"installing {name} failed ({' '.join(command[-len(requirements) :])}):\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
                )
        marker.write_text(wanted)
    return binary


@pytest.fixture(scope="session")
def third_party() -> Callable[[str], Path]:
    """``third_party("tap-jsonl")`` is the path of that plugin's executable (installed once)."""
    return _install
