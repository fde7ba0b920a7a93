"""The project's plugins, and their ``--about`` from the venv that runs the tools.

:data:`PLUGINS` is the one list of the four plugins for the tools, the tests and the benchmarks:
the console scripts of pyproject.toml, in their order there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
    "project"
]["scripts"]
# Singer plugins are the SDK's ``<Class>.cli`` entry points; other scripts (the webhook receiver)
# are services, not plugins, and have no --about.
PLUGINS: tuple[str, ...] = tuple(
    name for name, entry in _SCRIPTS.items() if entry.endswith(".cli")
)  # tap-braze-currents, target-mixpanel, ...
PACKAGES: dict[str, str] = {plugin: _SCRIPTS[plugin].split(".")[0] for plugin in PLUGINS}
"""Plugin name -> its Python package (``python -m <package>`` runs it)."""


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


def own_settings(plugin: str) -> list[str]:
    """Names of the settings the plugin declares itself: its ``config_jsonschema`` properties.

    Every other setting in ``--about`` is one the Singer SDK adds for a built-in capability.
    Read in a fresh interpreter: once a plugin has been instantiated, the SDK has appended its
    built-in settings to the class's own ``config_jsonschema``.
    """
    module, _, attribute = _SCRIPTS[plugin].partition(":")
    cls = attribute.split(".")[0]
    code = (
        f"import json; from {module} import {cls}; "
        f"print(json.dumps(list({cls}.config_jsonschema['properties'])))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return list(json.loads(result.stdout))
