"""Run target-braze with ``python -m target_braze``."""

from target_braze.target import TargetBraze

TargetBraze.cli()
