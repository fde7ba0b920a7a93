"""The code location: ``dagster dev -m orchestration.definitions`` (docs/orchestration.md)."""

import dagster as dg

from orchestration.backfill import currents_events, currents_to_mixpanel_backfill
from orchestration.jobs import cohorts_to_braze, currents_to_mixpanel
from orchestration.project import project_root
from orchestration.reconciliation import landed_in_mixpanel
from orchestration.schedules import schedules_from_meltano

defs = dg.Definitions(
    assets=[currents_events],
    asset_checks=[landed_in_mixpanel],
    jobs=[currents_to_mixpanel_backfill, currents_to_mixpanel, cohorts_to_braze],
    schedules=schedules_from_meltano(project_root(), [currents_to_mixpanel, cohorts_to_braze]),
)
