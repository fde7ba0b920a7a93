"""hub/ stays in step with meltano.yml and the plugins (tools/sync_hub.py).

Each Hub-format definition matches what the generator builds from the plugin's ``--about`` now,
installs from this repository's git URL with a pip_url Meltano can split, and names every
setting with a label, a kind and a description.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tools import sync_hub
from tools.about import PACKAGES, PLUGINS


def _definitions() -> dict[str, dict]:
    return {
        p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(sync_hub.HUB.glob("*/*.yml"))
    }


def test_hub_files_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert sync_hub.main(["--check"]) == 0, capsys.readouterr().out


def test_check_fails_on_a_stale_or_missing_file_and_sync_fixes_it(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    shutil.copytree(sync_hub.HUB, hub)
    stale = hub / "loaders" / "target-braze.yml"
    text = stale.read_text("utf-8")
    assert "value: 0.5" in text
    stale.write_text(text.replace("value: 0.5", "value: 0.9"), "utf-8")
    assert sync_hub.main(["--check", "--hub", str(hub)]) == 1
    (hub / "extractors" / "tap-braze-currents.yml").unlink()
    assert sync_hub.main(["--check", "--hub", str(hub)]) == 1
    assert sync_hub.main(["--hub", str(hub)]) == 0
    assert sync_hub.main(["--check", "--hub", str(hub)]) == 0


def test_one_definition_per_plugin_in_the_folder_of_its_type() -> None:
    found = {p.relative_to(sync_hub.HUB).as_posix() for p in sync_hub.HUB.glob("*/*.yml")}
    assert found == {
        "extractors/tap-braze-currents.yml",
        "extractors/tap-mixpanel-cohorts.yml",
        "loaders/target-mixpanel.yml",
        "loaders/target-braze.yml",
    }
    assert sorted(_definitions()) == sorted(PLUGINS)


@pytest.mark.parametrize("plugin", PLUGINS)
def test_definition_installs_from_git_and_describes_every_setting(plugin: str) -> None:
    definition = _definitions()[plugin]
    repo = sync_hub.repository()
    assert definition["name"] == definition["executable"] == plugin
    assert definition["namespace"] == PACKAGES[plugin]
    assert definition["repo"] == repo and definition["docs"].startswith(repo)
    pip_url = definition["pip_url"]
    assert not re.search(r"\s", pip_url), "Meltano splits pip_url on whitespace"
    assert pip_url.endswith(f"git+{repo}.git")
    assert ("[storage]@" in pip_url) == (plugin == "tap-braze-currents")
    assert "meltano_sdk" in definition["keywords"]
    assert definition["log_parser"] == "singer-sdk"
    about = sync_hub.about(plugin)
    assert definition["capabilities"] == about["capabilities"]
    properties = about["settings"]["properties"]
    settings = {s["name"]: s for s in definition["settings"]}
    assert list(settings) == list(properties)
    for name, spec in properties.items():
        entry = settings[name]
        assert entry["label"] and entry["kind"] and entry["description"], name
        assert entry.get("value") == spec.get("default"), name
        assert bool(entry.get("sensitive")) == bool(spec.get("secret")), name
        if "minimum" in spec and "maximum" in spec:
            assert "Range:" in entry["description"], name
    grouped = {s for group in definition["settings_group_validation"] for s in group}
    assert grouped <= set(settings)


def test_labels_of_untitled_settings_read_well() -> None:
    assert sync_hub.label("project_id") == "Project ID"
    assert sync_hub.label("cohort_ids") == "Cohort IDs"
    assert sync_hub.label("api_url") == "API URL"
    assert sync_hub.label("max_queries_per_hour") == "Max queries per hour"


def test_pip_url_for_a_local_clone() -> None:
    assert sync_hub.pip_url("target-braze", "file:///tmp/clone") == "git+file:///tmp/clone"
    assert (
        sync_hub.pip_url("tap-braze-currents", "file:///tmp/clone")
        == "braze-mixpanel-singer[storage]@git+file:///tmp/clone"
    )
