"""The two incremental loops as Dagster jobs: one op running ``meltano run <job>`` each.

Each job carries ``SERIAL_TAG`` with its own name, which the instance limits to one run at a time
(orchestration/dagster.yaml); its schedule (:mod:`orchestration.schedules`) skips busy ticks.
"""

import dagster as dg

from orchestration.ops import SERIAL_TAG, meltano_project, run_for_op


def meltano_run_job(meltano_job: str, description: str) -> dg.JobDefinition:
    """A job (named like ``meltano_job`` with underscores) of one op: ``meltano run <job>``."""
    name = meltano_job.replace("-", "_")

    @dg.op(name=f"meltano_run_{name}", description=f"`meltano run {meltano_job}`")
    def run_op(context: dg.OpExecutionContext) -> dg.Output[None]:
        result = run_for_op(meltano_project(), ["run", meltano_job], context.log)
        return dg.Output(None, metadata=dict(result.figures))

    @dg.job(name=name, tags={SERIAL_TAG: name}, description=description)
    def the_job() -> None:
        run_op()

    return the_job


currents_to_mixpanel = meltano_run_job(
    "currents-to-mixpanel", "Incremental Currents -> Mixpanel sync (`meltano run`)."
)
cohorts_to_braze = meltano_run_job(
    "cohorts-to-braze", "Mixpanel cohorts -> Braze membership sync (`meltano run`)."
)
