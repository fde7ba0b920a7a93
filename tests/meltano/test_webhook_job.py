"""CI smoke test of ``meltano run cohorts-webhook-to-braze``: the demo's webhook path."""

from __future__ import annotations

from pathlib import Path

from sandbox.loop.stack import external_ids, generate_round, open_sandbox, webhook_path


def test_the_webhook_job_mirrors_mixpanels_cohort_sync(meltano: str, tmp_path: Path) -> None:
    with open_sandbox(meltano, work=tmp_path / "work", fixed_ports=False) as box:
        export = generate_round(box.work, 1, 1200)
        box.seed_braze_users(external_ids(export))
        box.run("run", "currents-to-mixpanel", log_name="round1-currents")
        with webhook_path(box) as (receiver, pusher):
            reports = pusher.sync()
            assert reports and {r.action for r in reports} == {"members"}
            assert not any(r.failed for r in reports)
            box.run("run", "cohorts-webhook-to-braze", log_name="webhook-cohorts")
            assert "Stored page 1/1 of members session" in receiver.log()
        cohorts = {c.name: {str(m) for m in c.members} for c in box.loop.cohorts()}
        assert cohorts and all(cohorts.values()), cohorts
        users = box.braze_cohorts()
        for name, members in cohorts.items():
            assert {uid for uid, names in users.items() if name in names} == members, name
