"""Running ``dagster`` as a user would, against this checkout and a private Dagster instance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sandbox.loop.stack import ROOT

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def dagster_env(home: Path, meltano_bin: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of ``dagster`` processes: this checkout's code, Meltano, a private instance.

    The instance (orchestration/dagster.yaml) is created here, once: like Meltano's, its SQLite
    storage must exist before runs start side by side.
    """
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    dg.DagsterInstance.from_config(str(home)).dispose()
    return {
        **(base or os.environ),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MELTANO_BIN": meltano_bin,
        "MELTANO_PROJECT_ROOT": str(ROOT),
        "CURRENTS_BACKFILL_START": "2026-11-01",
    }


def run_dagster(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``dagster <args>`` in the repository, output captured."""
    return subprocess.run(
        [DAGSTER, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
