"""The code location loads as Dagster loads it, with the jobs, partitions and limits it promises."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

dg = pytest.importorskip("dagster", reason="the [dagster] extra is not installed")

from orchestration.backfill import currents_hours  # noqa: E402
from orchestration.definitions import defs  # noqa: E402
from orchestration.jobs import cohorts_to_braze, currents_to_mixpanel  # noqa: E402
from orchestration.ops import BACKFILL_TAG, SERIAL_TAG  # noqa: E402
from orchestration.partitions import backfill_start, state_id, window_settings  # noqa: E402
from sandbox.loop.stack import ROOT  # noqa: E402
from tests.support.dagster_home import dagster_env, run_dagster  # noqa: E402


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = dagster_env(tmp_path / "home", "meltano")
    result = run_dagster(env, "definitions", "validate", "-m", "orchestration.definitions")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_a_bad_backfill_start_fails_loading_with_its_reason(tmp_path: Path) -> None:
    env = {**dagster_env(tmp_path / "home", "meltano"), "CURRENTS_BACKFILL_START": "last spring"}
    result = run_dagster(env, "definitions", "validate", "-m", "orchestration.definitions")
    assert result.returncode != 0
    assert "CURRENTS_BACKFILL_START='last spring' is not a date" in result.stdout + result.stderr


def test_jobs_and_their_concurrency_tags() -> None:
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert {"currents_to_mixpanel_backfill", "currents_to_mixpanel", "cohorts_to_braze"} <= names
    backfill = defs.resolve_job_def("currents_to_mixpanel_backfill")
    assert isinstance(backfill.partitions_def, dg.HourlyPartitionsDefinition)
    assert backfill.tags[BACKFILL_TAG] == "currents_to_mixpanel"
    assert cohorts_to_braze.tags[SERIAL_TAG] == "cohorts_to_braze"
    assert currents_to_mixpanel.tags[SERIAL_TAG] == "currents_to_mixpanel"


def test_the_instance_example_runs_one_cohort_sync_at_a_time(tmp_path: Path) -> None:
    dagster_env(tmp_path, "meltano")  # copies orchestration/dagster.yaml into the home
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    serial = [limit for limit in limits if limit["key"] == SERIAL_TAG]
    assert serial == [{"key": SERIAL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert any(limit["key"] == BACKFILL_TAG for limit in limits)
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    instance.dispose()


def test_partitions_are_currents_hours_from_the_backfill_start() -> None:
    hours = currents_hours({"CURRENTS_BACKFILL_START": "2026-11-01"})
    keys = hours.get_partition_keys_in_range(dg.PartitionKeyRange("2026-11-01-00", "2026-11-01-02"))
    assert keys == ["2026-11-01-00", "2026-11-01-01", "2026-11-01-02"]
    assert hours.get_first_partition_key() == "2026-11-01-00"
    assert window_settings("2026-11-01-23") == {
        "TAP_BRAZE_CURRENTS_START_DATE": "2026-11-01T23:00:00Z",
        "TAP_BRAZE_CURRENTS_END_DATE": "2026-11-02T00:00:00Z",
    }
    assert (
        state_id("prod", "2026-11-01-23")
        == "prod:tap-braze-currents-to-target-mixpanel:2026-11-01-23"
    )


def test_the_backfill_starts_90_days_back_by_default() -> None:
    assert backfill_start({}, today=date(2026, 12, 1)) == date(2026, 9, 2)
    with pytest.raises(ValueError, match="CURRENTS_BACKFILL_START='2026-13-01' is not a date"):
        backfill_start({"CURRENTS_BACKFILL_START": "2026-13-01"})


def test_the_project_defaults_to_this_repository() -> None:
    assert (ROOT / "meltano.yml").exists()
    from orchestration.project import project_root

    assert project_root({}) == ROOT
