"""The reconciliation's Meltano utility declares exactly the check's settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconcile.export_loop.settings import ENV_PREFIX, SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def test_the_utility_declares_every_setting_and_marks_the_secrets():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (utility,) = [
        u for u in project["plugins"]["utilities"] if u["name"] == "reconcile-export-loop"
    ]
    assert utility["executable"] == "reconcile-export-loop"
    # Meltano names a utility's variables <NAMESPACE>_<SETTING>: what the check reads.
    assert utility["namespace"].upper() + "_" == ENV_PREFIX
    declared = {s["name"]: s for s in utility["settings"]}
    assert sorted(declared) == sorted(SCHEMA["properties"])
    for name, spec in SCHEMA["properties"].items():
        assert bool(declared[name].get("sensitive")) == bool(spec.get("secret")), name
