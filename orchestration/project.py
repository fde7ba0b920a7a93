"""The Meltano project the ops run: its ``meltano`` executable, root, environment and schedules.

Everything comes from the environment of the process that runs an op, read when the op runs (so
the definitions load on a machine without Meltano, e.g. a webserver pod):

- ``MELTANO_BIN``: the ``meltano`` executable (default: ``meltano`` on ``PATH``);
- ``MELTANO_PROJECT_ROOT``: the project directory (default: this repository);
- ``MELTANO_ENVIRONMENT``: the Meltano environment, as ``meltano`` itself reads it (default: the
  project's ``default_environment``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


class MeltanoNotFoundError(RuntimeError):
    """``MELTANO_BIN`` (or ``meltano`` on ``PATH``) is not an executable."""


@dataclass(frozen=True)
class MeltanoProject:
    """A Meltano project directory and the ``meltano`` that runs it."""

    executable: str
    root: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> MeltanoProject:
        """The project named by ``MELTANO_BIN`` and ``MELTANO_PROJECT_ROOT``.

        Raises:
            MeltanoNotFoundError: No ``meltano`` executable is found.
        """
        wanted = environ.get("MELTANO_BIN") or "meltano"
        found = shutil.which(wanted, path=environ.get("PATH"))
        if not found:
            raise MeltanoNotFoundError(
                f"meltano executable {wanted!r} not found: set MELTANO_BIN to its path "
                "or put meltano on PATH"
            )
        return cls(executable=found, root=project_root(environ))

    def sys_dir(self, environ: Mapping[str, str] = os.environ) -> Path:
        """Meltano's system directory (``.meltano``, or ``MELTANO_SYS_DIR_ROOT``)."""
        return Path(environ.get("MELTANO_SYS_DIR_ROOT") or self.root / ".meltano")

    def remove_job_run_dirs(self, run_id: str, environ: Mapping[str, str] = os.environ) -> None:
        """Delete what ``meltano el --run-id=<run_id>`` left in ``.meltano/run/elt/`` (its catalog).

        ``meltano el`` runs each job in a directory of its own (so parallel partitions never share
        a catalog file); without this, every partition would leave its catalog behind.
        """
        for found in self.sys_dir(environ).glob(f"run/elt/*/{run_id}"):
            shutil.rmtree(found, ignore_errors=True)
            with contextlib.suppress(OSError):
                found.parent.rmdir()  # the state id's folder, once empty

    def environment(self, environ: Mapping[str, str] = os.environ) -> str | None:
        """The Meltano environment a command runs in, as ``meltano`` chooses it."""
        return environ.get("MELTANO_ENVIRONMENT") or read_meltano_yml(self.root).get(
            "default_environment"
        )


def project_root(environ: Mapping[str, str] = os.environ) -> Path:
    """``MELTANO_PROJECT_ROOT``, or this repository."""
    return Path(environ.get("MELTANO_PROJECT_ROOT") or REPOSITORY_ROOT)


def read_meltano_yml(root: Path) -> dict[str, Any]:
    """The project file ``meltano.yml`` of ``root``, parsed."""
    with (root / "meltano.yml").open(encoding="utf-8") as file:
        content = yaml.safe_load(file)
    return content if isinstance(content, dict) else {}


def meltano_schedules(root: Path) -> dict[str, str]:
    """The cron interval of each Meltano job that ``meltano.yml`` schedules (job -> cron)."""
    return {
        str(item["job"]): str(item["interval"])
        for item in read_meltano_yml(root).get("schedules") or []
        if isinstance(item, dict) and item.get("job") and item.get("interval")
    }
