"""Schedules: meltano.yml's crons, evaluated as the Dagster daemon evaluates them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest

dg = pytest.importorskip("dagster", reason="the [dagster] extra is not installed")
from dagster._utils.schedules import schedule_execution_time_iterator  # noqa: E402

from orchestration.definitions import defs  # noqa: E402
from orchestration.project import meltano_schedules  # noqa: E402
from sandbox.loop.stack import ROOT  # noqa: E402


def _tick(schedule: dg.ScheduleDefinition, when: datetime, instance: dg.DagsterInstance) -> object:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    data = schedule.evaluate_tick(context)
    return data.run_requests or data.skip_message


def test_schedules_match_meltano_yml() -> None:
    crons = {s.job_name: s.cron_schedule for s in defs.schedules or []}  # type: ignore[union-attr]
    assert crons == {
        "cohorts_to_braze": "*/15 * * * *",
        "currents_to_mixpanel": meltano_schedules(ROOT)["currents-to-mixpanel"],
    }
    assert meltano_schedules(ROOT)["cohorts-to-braze"] == "*/15 * * * *"


def test_the_cohort_schedule_runs_the_cohort_job_every_15_minutes(tmp_path: Path) -> None:
    schedule = defs.resolve_schedule_def("cohorts_to_braze_schedule")
    assert schedule.execution_timezone == "UTC"
    start = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    # The daemon's own tick iterator (Dagster has no public one).
    ticks = list(
        islice(
            schedule_execution_time_iterator(start.timestamp(), schedule.cron_schedule, "UTC"), 5
        )
    )
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        for when in ticks:
            requests = _tick(schedule, when, instance)
            assert isinstance(requests, list) and len(requests) == 1, when
            assert schedule.job_name == "cohorts_to_braze"
    assert [t - start for t in ticks] == [timedelta(minutes=m) for m in (0, 15, 30, 45, 60)]


def test_a_tick_is_skipped_while_a_cohort_sync_is_in_progress(tmp_path: Path) -> None:
    schedule = defs.resolve_schedule_def("cohorts_to_braze_schedule")
    job = defs.resolve_job_def("cohorts_to_braze")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.STARTED)
        skipped = _tick(schedule, datetime(2026, 11, 1, 10, 15, tzinfo=UTC), instance)
        assert skipped == f"cohorts_to_braze run {run.run_id} is still in progress"
        instance.report_run_failed(run)
        requests = _tick(schedule, datetime(2026, 11, 1, 10, 30, tzinfo=UTC), instance)
        assert isinstance(requests, list) and len(requests) == 1
