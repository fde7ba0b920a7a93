"""Dagster schedules for the Meltano jobs that ``meltano.yml`` schedules, at the same cron.

A tick is skipped while a run of its job is queued or in progress, so a slow sync is never
overlapped by the next one (the instance's tag limit in orchestration/dagster.yaml also holds
runs launched by hand).
"""

from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from orchestration.project import meltano_schedules

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def one_at_a_time_schedule(name: str, cron: str, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """A UTC schedule of ``job`` that skips its tick while a run of the job is in progress."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        description=f"`{cron}` (UTC), as in meltano.yml; skipped while a run is in progress.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        running = context.instance.get_run_records(
            dg.RunsFilter(job_name=job.name, statuses=IN_PROGRESS), limit=1
        )
        if running:
            return dg.SkipReason(
                f"{job.name} run {running[0].dagster_run.run_id} is still in progress"
            )
        return dg.RunRequest()

    return _schedule


def schedules_from_meltano(
    root: Path, jobs: Iterable[dg.JobDefinition]
) -> list[dg.ScheduleDefinition]:
    """One schedule per job that meltano.yml schedules (Meltano's ``a-b`` is Dagster's ``a_b``)."""
    crons = {
        meltano_job.replace("-", "_"): cron for meltano_job, cron in meltano_schedules(root).items()
    }
    return [
        one_at_a_time_schedule(f"{job.name}_schedule", crons[job.name], job)
        for job in jobs
        if job.name in crons
    ]
