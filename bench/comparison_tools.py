"""Installs the comparison tools from their registries at run time (never committed).

* ``mixpanel-import`` (npm) into ``bench/.tools`` with ``npm install --prefix``;
* ``mixpanel-utils`` and ``py-spy`` (PyPI) into the separate venv ``bench/.venv-mpu``.

Both folders are git-ignored; the dev venv is never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import REPO

TOOLS = REPO / "bench" / ".tools"
MPU_VENV = REPO / "bench" / ".venv-mpu"
NPM_INSTALL = ("npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
PIP_FLAGS = ("--quiet", "--disable-pip-version-check")
MPI_PACKAGE = TOOLS / "node_modules" / "mixpanel-import" / "package.json"


def ensure_mixpanel_import() -> str | None:
    """Install mixpanel-import if needed; return its version, or None without npm/node."""
    if not (shutil.which("npm") and shutil.which("node")):
        return None
    if not MPI_PACKAGE.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*NPM_INSTALL, "--prefix", str(TOOLS), "mixpanel-import"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return json.loads(MPI_PACKAGE.read_text())["version"]


def mpu_python() -> Path:
    """The venv's interpreter (created with mixpanel-utils and py-spy if missing)."""
    python = MPU_VENV / "bin" / "python"
    if not (MPU_VENV / "bin" / "py-spy").exists():
        subprocess.run([sys.executable, "-m", "venv", str(MPU_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", *PIP_FLAGS, "mixpanel-utils", "py-spy"],
            check=True,
        )
    return python


def mixpanel_utils_version() -> str:
    """Version of the installed mixpanel-utils."""
    code = "import importlib.metadata as m; print(m.version('mixpanel-utils'))"
    return subprocess.run(
        [str(mpu_python()), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def py_spy() -> Path:
    """Path of the py-spy executable (installed with the mixpanel-utils venv)."""
    mpu_python()
    return MPU_VENV / "bin" / "py-spy"


if __name__ == "__main__":
    print("mixpanel-import", ensure_mixpanel_import())
    print("mixpanel-utils", mixpanel_utils_version())
