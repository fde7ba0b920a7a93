"""Meltano for the tests that run it: its own venv and this project's plugins, plus state ids.

The venv is the one ``make demo`` uses (``.venv-meltano``, or ``$MELTANO_VENV``); it is created
when missing, so ``make test`` on a fresh machine needs nothing but PyPI.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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


@contextmanager
def _turn(lock_path: Path) -> Iterator[None]:
    """The file lock ``lock_path``, held for the block: parallel test workers take turns."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _exclusive() -> AbstractContextManager[None]:
    """Held while the venv is created or plugins installed."""
    return _turn(MELTANO_VENV.parent / f"{MELTANO_VENV.name}.lock")


def project_turn() -> AbstractContextManager[None]:
    """Held by a test while it runs ``meltano`` in this repository's project.

    Meltano keeps one catalog file per plugin name in the project's ``.meltano/run/<plugin>/``
    (docs/operations.md, "Scale-out"), so two runs of the same tap in one project at once break
    each other's catalog ("Invalid catalog"). Parallel test workers therefore take turns with
    these tests, whichever worker they land on.
    """
    return _turn(ROOT / ".meltano" / "tests-project.lock")


def meltano_executable() -> str:
    """Path of the ``meltano`` executable of ``MELTANO_VENV`` (the venv created when missing)."""
    executable = MELTANO_VENV / "bin" / "meltano"
    with _exclusive():
        if not executable.exists():
            _create_venv()
    return str(executable)


def _create_venv() -> None:
    _check(_run([sys.executable, "-m", "venv", str(MELTANO_VENV)]), "creating the Meltano venv")
    python = str(MELTANO_VENV / "bin" / "python")
    install = [python, "-m", "pip", "install", "--quiet", MELTANO_SPEC]
    _check(_run(install), f"pip install {MELTANO_SPEC}")


# Written after a `meltano install` of this project, as the Makefile's rule of the same name does:
# the plugins are installed editable (-e .), so only meltano.yml and pyproject.toml outdate them.
INSTALLED_STAMP = ROOT / ".meltano" / ".plugins-installed"


def _plugins_current() -> bool:
    if not INSTALLED_STAMP.exists():
        return False
    stamp = INSTALLED_STAMP.stat().st_mtime
    return all((ROOT / name).stat().st_mtime < stamp for name in ("meltano.yml", "pyproject.toml"))


def install_plugins(executable: str) -> str:
    """``meltano install`` in this repository, unless ``make`` or a test did it since the project
    last changed (``meltano install`` rebuilds every plugin's venv, under any run using them).

    Returns ``executable``.
    """
    env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
    with _exclusive():
        if not _plugins_current():
            _check(_run([executable, "install"], cwd=ROOT, env=env, timeout=900), "meltano install")
            INSTALLED_STAMP.touch()
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
