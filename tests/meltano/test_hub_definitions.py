"""hub/ stays in step with meltano.yml and the plugins (tools/sync_hub.py).

Each Hub-format definition matches what the generator builds from the plugin's ``--about`` now,
installs from this repository's git URL with a pip_url Meltano can split, names every setting
with a label, a kind and a description, and passes Meltano Hub's own checks: its plugin JSON
schema and its yamllint configuration, as vendored in ``tests/meltano/hub_rules/`` from
``meltano/hub`` at commit :data:`HUB_COMMIT`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from yamllint import linter
from yamllint.config import YamlLintConfig

from tools import sync_hub
from tools.about import PACKAGES, PLUGINS

HUB_COMMIT = "9d28b36a64bf1ba18d6b0dd6936d8f14d2eaa0ba"  # meltano/hub, where hub_rules/ comes from
HUB_RULES = Path(__file__).parent / "hub_rules"


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
    assert definition["capabilities"] == sorted(about["capabilities"])  # as Hub sorts them
    properties = about["settings"]["properties"]
    settings = {s["name"]: s for s in definition["settings"]}
    assert list(settings) == sorted(properties)  # Hub sorts settings by name
    for name, spec in properties.items():
        entry = settings[name]
        assert entry["label"] and entry["kind"] and entry["description"], name
        assert entry.get("value") == spec.get("default"), name
        assert bool(entry.get("sensitive")) == bool(spec.get("secret")), name
        if spec.get("secret") and entry["kind"] != "object":
            assert entry["kind"] == "password", name  # Hub's form of a secret string
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


def _hub_validator(kinds: str) -> Draft7Validator:
    """Hub's validator for ``kinds``, built as its plugin_schema_validate.py builds it."""
    resources = []
    for source in sorted((HUB_RULES / "schemas").glob("*/*.schema.json")):
        schema = json.loads(source.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    schema_file = HUB_RULES / "schemas" / "plugin_definitions" / f"{kinds}.schema.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    return Draft7Validator(schema, registry=Registry().with_resources(resources))


def _hub_files() -> list[Path]:
    return sorted(sync_hub.HUB.glob("*/*.yml"))


@pytest.mark.parametrize("path", _hub_files(), ids=lambda p: p.stem)
def test_definition_passes_hubs_plugin_schema(path: Path) -> None:
    definition = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [e.message for e in _hub_validator(path.parent.name).iter_errors(definition)]
    assert errors == []
    assert definition["quality"] == "unknown"  # required by Hub; not rated yet
    assert definition["name"] == path.stem  # Hub's yaml_check_names.py: name = folder name


@pytest.mark.parametrize("path", _hub_files(), ids=lambda p: p.stem)
def test_definition_passes_hubs_yamllint(path: Path) -> None:
    config = YamlLintConfig(file=str(HUB_RULES / "yamllint.yaml"))
    problems = list(linter.run(path.read_text(encoding="utf-8"), config, str(path)))
    assert [f"{p.line}:{p.column} {p.desc} ({p.rule})" for p in problems] == []


def test_hubs_yamllint_catches_an_unsorted_key() -> None:
    config = YamlLintConfig(file=str(HUB_RULES / "yamllint.yaml"))
    problems = list(linter.run("name: a\nlabel: b\n", config))
    assert [p.rule for p in problems] == ["key-ordering"]


def _matches_a_group(definition: dict, config: dict) -> bool:
    """Meltano's rule: a config is valid when every setting of some group is set."""
    return any(
        all(config.get(name) is not None for name in group)
        for group in definition["settings_group_validation"]
    )


@pytest.mark.parametrize(
    ("plugin", "config", "valid"),
    [
        ("tap-braze-currents", {"storage_url": "s3://bucket/currents"}, True),
        (
            "tap-mixpanel-cohorts",
            {"project_id": 1, "service_account_username": "u", "service_account_secret": "s"},
            True,
        ),
        ("tap-mixpanel-cohorts", {"api_secret": "s"}, True),
        ("tap-mixpanel-cohorts", {"source": "webhook", "spool_url": "s3://b/spool"}, True),
        ("tap-mixpanel-cohorts", {"project_id": 1}, False),
        ("target-mixpanel", {"project_token": "t"}, True),
        (
            "target-mixpanel",
            {"project_id": 1, "service_account_username": "u", "service_account_secret": "s"},
            True,
        ),
        ("target-mixpanel", {"api_secret": "s"}, True),
        ("target-braze", {"rest_endpoint": "https://rest.iad-01.braze.com", "api_key": "k"}, True),
        (
            "target-braze",
            {
                "rest_endpoint": "https://rest.iad-01.braze.com",
                "mode": "partner_cohorts",
                "partner_name": "p",
                "partner_api_key": "k",
                "data_import_key": "d",
            },
            True,
        ),
        ("target-braze", {"rest_endpoint": "https://rest.iad-01.braze.com"}, False),
    ],
)
def test_settings_group_validation_lists_every_valid_way_to_configure(
    plugin: str, config: dict, valid: bool
) -> None:
    assert _matches_a_group(_definitions()[plugin], config) is valid
