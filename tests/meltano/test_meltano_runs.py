"""CI smoke test of the Meltano project: both jobs against the emulators, as ``make demo`` runs
them, plus the plain Meltano commands a user starts with (config, discovery).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sandbox.loop.stack import ROOT, external_ids, generate_round, open_sandbox, skipped_reasons

ACTIVE = "Active in the last 2 hours"


def _meltano(meltano: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [meltano, *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_config_list_and_discovery(meltano: str, meltano_env: dict[str, str]) -> None:
    env = {**meltano_env, "TARGET_BRAZE_API_KEY": "not-to-be-shown-4242"}
    listing = _meltano(meltano, env, "--environment=sandbox", "config", "list", "target-braze")
    text = listing.stdout + listing.stderr
    assert "[env: TARGET_BRAZE_API_KEY] current value: (redacted)" in text
    assert "not-to-be-shown-4242" not in text
    assert "rest_endpoint" in text and "http://127.0.0.1:8790" in text
    for plugin, streams in (
        ("tap-mixpanel-cohorts", {"cohorts", "cohort_members"}),
        ("tap-braze-currents", {"users_behaviors_purchase", "users_messages_email_open"}),
    ):
        found = _meltano(meltano, env, "--environment=sandbox", "invoke", plugin, "--discover")
        names = {s["tap_stream_id"] for s in json.loads(found.stdout)["streams"]}
        assert streams <= names, plugin


def test_both_jobs_close_the_loop(meltano: str, tmp_path: Path) -> None:
    with open_sandbox(meltano, work=tmp_path / "work", fixed_ports=False) as box:
        export = generate_round(box.work, 1, 1200)
        box.seed_braze_users(external_ids(export))
        log = box.run("run", "currents-to-mixpanel", log_name="round1-currents")

        with_id = [r for _, r in export.events if r.get("external_user_id")]
        stored = [e["properties"]["$insert_id"] for e in box.loop.importer.events]
        assert sorted(stored) == sorted({r["id"] for r in with_id}), "each event once"
        assert skipped_reasons(log) == {"no_external_user_id": len(export.events) - len(with_id)}
        # The events travelled as batch files (meltano.yml), and none is left once loaded.
        assert "BATCH for stream 'users_behaviors_customevent'" in log
        batches = box.project / ".meltano" / "run" / "tap-braze-currents" / "batches"
        assert not [path for path in batches.rglob("*") if path.is_file()]

        box.run("run", "cohorts-to-braze", log_name="round1-cohorts")
        cohorts = {c.name: set(c.members) for c in box.loop.cohorts()}
        assert cohorts and all(cohorts.values()), cohorts
        _assert_braze_mirrors(box.braze_cohorts(), cohorts)
        before = box.braze_cohorts()

        more = generate_round(box.work, 2, 400)
        box.seed_braze_users(external_ids(more))
        box.run("run", "currents-to-mixpanel", log_name="round2-currents")
        box.run("run", "cohorts-to-braze", log_name="round2-cohorts")
        cohorts = {c.name: set(c.members) for c in box.loop.cohorts()}
        after = box.braze_cohorts()
        _assert_braze_mirrors(after, cohorts)
        left = {u for u, names in before.items() if ACTIVE in names and ACTIVE not in after[u]}
        assert left, "round 2 must remove members of the sliding-window cohort"


def _assert_braze_mirrors(users: dict[str, list[str]], cohorts: dict[str, set[str]]) -> None:
    for name, members in cohorts.items():
        holders = {uid for uid, names in users.items() if name in names}
        assert holders == members, name
