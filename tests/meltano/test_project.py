"""meltano.yml against the plugins themselves: settings, secrets, executables, jobs, schedules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.loop.stack import ROOT
from tools.about import PACKAGES, PLUGINS

KINDS = {"string", "integer", "boolean", "decimal", "array", "object", "options", "date_iso8601"}


def _project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))


def _all_plugins() -> list[dict[str, Any]]:
    project = _project()["plugins"]
    return [p for kind in ("extractors", "loaders") for p in project[kind]]


def _plugins() -> dict[str, dict[str, Any]]:
    """The four base plugins (not the inherited backfill slots)."""
    return {p["name"]: p for p in _all_plugins() if "inherit_from" not in p}


def _about(script: str) -> dict[str, Any]:
    executable = Path(sys.executable).parent / script
    out = subprocess.run(
        [str(executable), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def _expected_kind(spec: dict[str, Any]) -> str:
    if spec.get("enum"):
        return "options"
    if spec.get("format") == "date-time":
        return "date_iso8601"
    types = spec.get("type")
    types = [t for t in (types if isinstance(types, list) else [types]) if t != "null"]
    if len(types) != 1:
        return "string"  # e.g. project_id: string or integer
    mapping = {"number": "decimal"}
    return mapping.get(types[0], types[0])


@pytest.mark.parametrize("name", PLUGINS)
def test_settings_match_the_plugin(name: str) -> None:
    plugin = _plugins()[name]
    about = _about(plugin["executable"])
    declared = {s["name"]: s for s in plugin["settings"]}
    properties = about["settings"]["properties"]
    assert list(declared) == list(properties), "meltano.yml settings differ from --about"
    for setting, spec in properties.items():
        entry = declared[setting]
        assert entry.get("description"), f"{setting} has no description"
        assert entry["kind"] in KINDS
        assert entry["kind"] == _expected_kind(spec), setting
        assert bool(entry.get("sensitive")) == bool(spec.get("secret")), setting
        if entry["kind"] == "options":
            assert [o["value"] for o in entry["options"]] == spec["enum"]
    assert sorted(plugin["capabilities"]) == sorted(about["capabilities"])


def test_plugins_come_from_this_repository() -> None:
    assert sorted(_plugins()) == sorted(PLUGINS)
    for name, plugin in _plugins().items():
        assert plugin["executable"] == name
        assert plugin["namespace"] == PACKAGES[name]
        assert plugin["pip_url"].split("[")[0] == "-e ."


def test_backfill_slots_share_the_tap() -> None:
    slots = [p for p in _all_plugins() if p["name"].startswith("tap-braze-currents--")]
    assert len(slots) >= 2
    for slot in slots:
        assert slot["inherit_from"] == "tap-braze-currents"
        assert "pip_url" not in slot, "a slot with its own pip_url gets its own venv"


def test_no_secret_value_in_meltano_yml() -> None:
    """Secrets only come from the environment: no sensitive setting has a literal value."""
    sensitive = {
        (name, s["name"])
        for name, p in _plugins().items()
        for s in p["settings"]
        if s.get("sensitive")
    }
    configs = [(name, p.get("config") or {}) for name, p in _plugins().items()]
    for environment in _project()["environments"]:
        plugins = environment.get("config", {}).get("plugins", {})
        for kind in ("extractors", "loaders"):
            configs.extend((p["name"], p.get("config") or {}) for p in plugins.get(kind, []))
    for name, config in configs:
        for key, value in config.items():
            if (name, key) in sensitive:
                assert str(value).startswith("$"), f"{name}.{key} holds a literal secret"


def test_the_webhook_source_is_an_inherited_tap() -> None:
    (webhook,) = [p for p in _all_plugins() if p["name"] == "tap-mixpanel-cohorts--webhook"]
    assert webhook["inherit_from"] == "tap-mixpanel-cohorts"
    assert webhook["config"] == {"source": "webhook"}
    assert "pip_url" not in webhook


def test_jobs_schedules_and_environments() -> None:
    project = _project()
    jobs = {j["name"]: j["tasks"] for j in project["jobs"]}
    assert jobs == {
        "currents-to-mixpanel": ["tap-braze-currents target-mixpanel"],
        "cohorts-to-braze": ["tap-mixpanel-cohorts target-braze"],
        "cohorts-webhook-to-braze": ["tap-mixpanel-cohorts--webhook target-braze"],
        "reconcile-export-loop-last-day": ["reconcile-export-loop:last-day"],
        "reconcile-cohort-loop": ["reconcile-cohorts:audit"],
    }
    schedules = {s["job"]: s["interval"] for s in project["schedules"]}
    assert schedules["cohorts-to-braze"] == "*/15 * * * *"
    assert "currents-to-mixpanel" in schedules
    assert {e["name"] for e in project["environments"]} == {"sandbox", "prod"}
    assert project["default_environment"] == "sandbox"
    assert project["state_backend"]["uri"] == "systemdb"
