"""Run target-mixpanel with ``python -m target_mixpanel``."""

from target_mixpanel.target import TargetMixpanel

TargetMixpanel.cli()
