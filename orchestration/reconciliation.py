"""The export-loop reconciliation as an asset check on each hourly backfill partition.

After a partition's ``meltano el`` (in the same run, and whenever it is run on its own), the
check compares the hour's Currents events with Mixpanel's Aggregate Event Counts
(:mod:`reconcile.export_loop`): a partition whose events did not land fails, with the drifted
event names in its metadata. Settings come from the ``RECONCILE_EXPORT_LOOP_*`` environment
variables (docs/reconciliation.md); each check costs ``ceil(event names / events_per_query)``
queries of the project's query budget, shared with tap-mixpanel-cohorts.
"""

import logging
import os
from collections.abc import Mapping

import dagster as dg

from braze_mixpanel_common.errors import PluginError
from braze_mixpanel_common.secrets import redact
from braze_mixpanel_common.settings import ConfigView
from orchestration.backfill import currents_events, currents_hours
from orchestration.partitions import hour_window
from reconcile.export_loop.check import reconcile_export_loop
from reconcile.export_loop.settings import ENV_PREFIX, SCHEMA, Settings, config_from_env
from reconcile.report import summary

MAX_ROWS_SHOWN = 20


def check_partition(
    partition_key: str, environ: Mapping[str, str] = os.environ
) -> dg.AssetCheckResult:
    """Reconcile one hour partition; failed when its drift passes the threshold."""
    config = config_from_env(environ)
    if not config.get("storage_url"):
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"Not configured: set {ENV_PREFIX}STORAGE_URL and the Mixpanel "
            f"credentials ({ENV_PREFIX}*, docs/reconciliation.md).",
        )
    logger = logging.getLogger("reconcile-export-loop")
    start, end = hour_window(partition_key)
    try:
        settings = Settings.from_config(config, logger)
        report = reconcile_export_loop(settings, start, end, logger=logger)
    except PluginError as error:
        message = redact(str(error), ConfigView(config, SCHEMA).secrets())
        raise dg.Failure(description=f"The reconciliation could not run: {message}") from None
    result = summary(report, settings.threshold)
    drifted = [row.as_json() for row in report.drifted_rows[:MAX_ROWS_SHOWN]]
    return dg.AssetCheckResult(
        passed=bool(result["passed"]),
        description=(
            f"{result['drift']} events of difference in {result['rows_drifted']} "
            f"(event, hour) rows: expected {result['expected_total']}, "
            f"found {result['found_total']}."
        ),
        metadata={
            "expected": result["expected_total"],
            "found": result["found_total"],
            "drift": result["drift"],
            "queries": result["queries"],
            "drifted_rows": dg.MetadataValue.json(drifted),
        },
    )


@dg.asset_check(
    asset=currents_events,
    name="landed_in_mixpanel",
    partitions_def=currents_hours(),
    description="The hour's Currents events, per Mixpanel event name, are all in Mixpanel "
    "(Aggregate Event Counts; docs/reconciliation.md).",
)
def landed_in_mixpanel(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Reconcile the partition this check runs for."""
    return check_partition(context.partition_key)
