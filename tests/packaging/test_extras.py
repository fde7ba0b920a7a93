"""The receiver's web stack is the [webhook] extra: no plugin pulls it, the receiver says so.

Each check runs a fresh interpreter in which starlette, uvicorn and httptools cannot be
imported (``sys.modules[name] = None``), as on a machine where only the plugins were installed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from mixpanel_cohort_webhook.script import WEB_STACK
from tools.about import PACKAGES, ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
_HIDE = f"import sys\nfor name in {WEB_STACK!r}: sys.modules[name] = None\n"


def _without_web_stack(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _HIDE + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_web_stack_is_an_extra_not_a_dependency() -> None:
    project = PYPROJECT["project"]
    names = {
        dep.split(">")[0].split("[")[0].split("=")[0].strip() for dep in project["dependencies"]
    }
    assert not names & set(WEB_STACK)
    webhook = project["optional-dependencies"]["webhook"]
    assert {dep.split(">")[0] for dep in webhook} == set(WEB_STACK)
    assert "webhook" in project["optional-dependencies"]["test"][0]  # make test runs the receiver
    assert project["scripts"]["mixpanel-cohort-webhook"] == "mixpanel_cohort_webhook.script:main"


def test_every_plugin_runs_without_the_web_stack() -> None:
    modules = [
        f"{package}.tap" if package.startswith("tap_") else f"{package}.target"
        for package in PACKAGES.values()
    ]
    result = _without_web_stack("".join(f"import {module}\n" for module in modules))
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_receiver_names_the_extra_to_install_in_one_line() -> None:
    result = _without_web_stack(
        "from mixpanel_cohort_webhook.script import main\nmain(['--spool-url', 'x'])"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    assert "[webhook]" in lines[0] and "starlette" in lines[0]
    assert "pip install 'braze-mixpanel-singer[webhook]'" in lines[0]
