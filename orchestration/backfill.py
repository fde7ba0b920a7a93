"""The Currents backfill: an hourly-partitioned asset and the job that materializes it.

Each partition (a ``date=`` hour folder, e.g. ``2026-11-01-10``) runs ``meltano el
tap-braze-currents target-mixpanel`` for exactly its hour, with a Meltano state id of its own
(:mod:`orchestration.partitions`). ``meltano el`` runs each job in a directory of its own, so
partitions side by side never share a catalog file; that directory is removed afterwards.
"""

import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg

from orchestration.ops import BACKFILL_TAG, meltano_project, run_for_op
from orchestration.partitions import (
    EXTRACTOR,
    LOADER,
    backfill_start,
    hour_window,
    state_id,
    window_settings,
)
from tap_braze_currents.state import HOUR_FORMAT


def currents_hours(environ: Mapping[str, str] = os.environ) -> dg.HourlyPartitionsDefinition:
    """Hour partitions (UTC, keyed like ``date=`` folders) from ``CURRENTS_BACKFILL_START``."""
    first = backfill_start(environ)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return dg.HourlyPartitionsDefinition(start_date=start, fmt=HOUR_FORMAT, timezone="UTC")


@dg.asset(
    key=dg.AssetKey(["mixpanel", "currents_events"]),
    partitions_def=currents_hours(),
    group_name="currents_to_mixpanel",
    kinds={"meltano"},
    description=(
        "Braze Currents events of one date= hour folder, imported into Mixpanel "
        f"(`meltano el {EXTRACTOR} {LOADER}` with start_date/end_date set to the hour)."
    ),
)
def currents_events(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Import one hour of Currents into Mixpanel, with the hour's own Meltano state."""
    key = context.partition_key
    start, end = hour_window(key)
    project = meltano_project()
    partition_state = state_id(project.environment(), key)
    run_id = str(uuid.uuid4())
    context.log.info(f"Hour [{start:%Y-%m-%d %H:%M}, {end:%H:%M}) UTC, state id {partition_state}")
    args = ["el", EXTRACTOR, LOADER, f"--state-id={partition_state}", f"--run-id={run_id}"]
    try:
        result = run_for_op(project, args, context.log, window_settings(key))
    finally:
        project.remove_job_run_dirs(run_id)
    return dg.MaterializeResult(
        metadata={"state_id": partition_state, "meltano_run_id": run_id, **result.figures}
    )


currents_to_mixpanel_backfill = dg.define_asset_job(
    name="currents_to_mixpanel_backfill",
    selection=[currents_events],
    tags={BACKFILL_TAG: "currents_to_mixpanel"},
    description="One hour of Currents history per partition (a backfill, run in parallel).",
)
