"""Run the tap as ``python -m tap_mixpanel_cohorts``."""

from tap_mixpanel_cohorts.tap import TapMixpanelCohorts

TapMixpanelCohorts.cli()
