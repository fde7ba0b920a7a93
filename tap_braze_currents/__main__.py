"""Run the tap with ``python -m tap_braze_currents``."""

from tap_braze_currents.tap import TapBrazeCurrents

TapBrazeCurrents.cli()
