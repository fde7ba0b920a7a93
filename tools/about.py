"""Run a plugin's ``--about`` from the venv that runs the tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("tap-braze-currents", "target-mixpanel", "tap-mixpanel-cohorts", "target-braze")


def about(plugin: str, fmt: str = "json") -> str:
    """The plugin's ``--about --format=<fmt>`` output.

    Args:
        plugin: Console script name, e.g. ``target-braze``.
        fmt: ``json`` or ``markdown``.

    Returns:
        What the plugin printed on standard output.
    """
    executable = Path(sys.executable).parent / plugin
    result = subprocess.run(
        [str(executable), "--about", f"--format={fmt}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return result.stdout


def about_json(plugin: str) -> dict[str, Any]:
    """The plugin's ``--about`` as a dict."""
    return json.loads(about(plugin, "json"))
