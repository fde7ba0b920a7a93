"""The four plugins in a brand-new Meltano project, added from hub/ and installed from git.

What a user of one plugin does in their own project, end to end: ``meltano init``, ``meltano add
--plugin-type <type> <name> --from-ref hub/<type>s/<name>.yml`` for each plugin, ``meltano
install``, then both loops against the emulators. The only change to the definitions is the git
URL: a local clone of this checkout's committed HEAD (``git+file://<clone>@<sha>``) instead of
the public repository, so the test needs no network beyond PyPI. Uncommitted changes are not in
the clone: commit before running it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from braze_mixpanel_common.progress import summaries
from sandbox.loop.stack import ROOT, external_ids, generate_round, open_sandbox, skipped_reasons
from tools import sync_hub
from tools.about import PLUGINS

# Settings the repository's sandbox environment holds; a fresh project gets them from variables.
SANDBOX_SETTINGS = {
    "TAP_MIXPANEL_COHORTS_PROJECT_ID": "12345",
    "TAP_MIXPANEL_COHORTS_SERVICE_ACCOUNT_USERNAME": "sa-user.mp-service-account",
    "TARGET_MIXPANEL_PROJECT_ID": "12345",
    "TARGET_MIXPANEL_SERVICE_ACCOUNT_USERNAME": "sa-user.mp-service-account",
}


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def _clone(target: Path) -> tuple[Path, str]:
    """A clone of this checkout at its committed HEAD, and that commit."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    sha = _run(["git", "rev-parse", "HEAD"], ROOT, env).strip()
    _run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(target)], ROOT, env)
    _run(["git", "checkout", "--quiet", sha], target, env)
    return target, sha


def _definitions(clone: Path, sha: str, folder: Path) -> dict[str, tuple[str, Path]]:
    """The clone's hub/ files with pip_url pointed at the clone: plugin -> (type, file)."""
    found = {}
    for source in sorted((clone / "hub").glob("*/*.yml")):
        definition = yaml.safe_load(source.read_text(encoding="utf-8"))
        plugin = definition["name"]
        assert definition["pip_url"] == sync_hub.pip_url(plugin), "hub/ as generated"
        definition["pip_url"] = sync_hub.pip_url(plugin, f"file://{clone}@{sha}")
        target = folder / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
        found[plugin] = (source.parent.name.rstrip("s"), target)
    return found


def test_fresh_project_adds_every_plugin_from_hub_and_runs_both_loops(
    meltano_executable: str, tmp_path: Path
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone, sha = _clone(tmp_path / "clone")
    definitions = _definitions(clone, sha, tmp_path / "definitions")
    assert sorted(definitions) == sorted(PLUGINS)

    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'init.db'}",
    }
    env.pop("MELTANO_PROJECT_ROOT", None)
    _run([meltano_executable, "init", "project", "--no_usage_stats"], tmp_path, env)
    project = tmp_path / "project"
    for plugin, (kind, path) in definitions.items():
        add = ["add", "--no-install", "--plugin-type", kind, plugin, "--from-ref", str(path)]
        _run([meltano_executable, *add], project, env)
    _run([meltano_executable, "environment", "add", "sandbox"], project, env)
    _run([meltano_executable, "install"], project, env, timeout=900)

    added = yaml.safe_load((project / "meltano.yml").read_text(encoding="utf-8"))["plugins"]
    names = [p["name"] for kind in ("extractors", "loaders") for p in added[kind]]
    assert sorted(names) == sorted(PLUGINS)
    about = _run(
        [meltano_executable, "invoke", "target-braze", "--about", "--format=json"], project, env
    )
    version = json.JSONDecoder().raw_decode(about, about.index("{"))[0]["version"]
    assert version[:1].isdigit(), f"version from git: {version}"

    with open_sandbox(meltano_executable, work=tmp_path / "work", fixed_ports=False) as box:
        box.project = project
        export = generate_round(box.work, 1, 600)
        box.seed_braze_users(external_ids(export))
        log = box.run(
            "run",
            "tap-braze-currents",
            "target-mixpanel",
            log_name="currents",
            extra_env=SANDBOX_SETTINGS,
        )
        with_id = [r for _, r in export.events if r.get("external_user_id")]
        stored = [e["properties"]["$insert_id"] for e in box.loop.importer.events]
        assert sorted(stored) == sorted({r["id"] for r in with_id}), "each event once"
        assert skipped_reasons(log) == {"no_external_user_id": len(export.events) - len(with_id)}
        (tap,) = summaries(log, "tap-braze-currents")
        (target,) = summaries(log, "target-mixpanel")
        assert target["imported"] == len(with_id) and tap["records"] == len(export.events)
        assert tap["corrupt_files"] == 2

        log = box.run(
            "run",
            "tap-mixpanel-cohorts",
            "target-braze",
            log_name="cohorts",
            extra_env=SANDBOX_SETTINGS,
        )
        cohorts = {c.name: set(c.members) for c in box.loop.cohorts()}
        assert cohorts and any(cohorts.values()), cohorts  # 600 events leave some cohorts empty
        users = box.braze_cohorts()
        for name, members in cohorts.items():
            assert {uid for uid, held in users.items() if name in held} == members, name
        (braze,) = summaries(log, "target-braze")
        joined = sum(len(m) for m in cohorts.values())
        assert braze["cohort_members_added"] == joined and braze["users"] == braze["data_points"]
        assert summaries(log, "tap-mixpanel-cohorts")[0]["members"] >= joined
