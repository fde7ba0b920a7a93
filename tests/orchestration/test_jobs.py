"""The incremental jobs through Dagster: both loops against the emulators, and a failing run."""

from __future__ import annotations

from pathlib import Path

import pytest

dg = pytest.importorskip("dagster", reason="the [dagster] extra is not installed")

from orchestration.jobs import cohorts_to_braze, currents_to_mixpanel  # noqa: E402
from sandbox.loop.stack import ROOT, external_ids, generate_round, open_sandbox  # noqa: E402


def _use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _figures(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (output,) = [e for e in result.all_node_events if e.is_successful_output]
    return {key: value.value for key, value in output.step_output_data.metadata.items()}


def test_both_loops_run_as_dagster_jobs_and_a_bad_setting_fails_with_its_line(
    meltano: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_sandbox(meltano, work=tmp_path / "work", fixed_ports=False) as box:
        export = generate_round(box.work, 1, 600)
        box.seed_braze_users(external_ids(export))
        _use_env(
            monkeypatch, {**box.env, "MELTANO_BIN": meltano, "MELTANO_PROJECT_ROOT": str(ROOT)}
        )

        currents = currents_to_mixpanel.execute_in_process()
        assert currents.success
        stats = box.loop.importer.stats
        assert stats["imported"] > 0  # Mixpanel accepts Braze's own duplicates and drops them
        assert (
            _figures(currents)["target-mixpanel.imported"]
            == stats["imported"] + stats["duplicates"]
        )
        cohorts = cohorts_to_braze.execute_in_process()
        assert cohorts.success
        mirrored = {name for names in box.braze_cohorts().values() for name in names}
        assert mirrored == {c.name for c in box.loop.cohorts() if c.members}
        assert _figures(cohorts)["target-braze.cohort_members_added"] > 0

        monkeypatch.setenv("TARGET_BRAZE_OBJECTS_PER_REQUEST", "500")
        failed = cohorts_to_braze.execute_in_process(raise_on_error=False)
        assert not failed.success
        (failure,) = failed.get_step_failure_events()
        data = failure.step_failure_data
        assert data.user_failure_data is not None
        assert str(data.user_failure_data.description).endswith(
            "target-braze: Setting 'objects_per_request': 500 is greater than the maximum of 75."
        )
