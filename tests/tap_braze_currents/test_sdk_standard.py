"""The Singer SDK's standard tap tests against a generated Currents export."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from sandbox.loop.currents_gen import DEFAULT_EVENT_TYPES, generate_export
from tap_braze_currents.tap import TapBrazeCurrents

_ROOT = Path(tempfile.mkdtemp(prefix="currents-sdk-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
generate_export(_ROOT, seed=11, hours=2, files_per_hour=1, events_per_file=10, corrupt=False)

TestTapBrazeCurrents = get_tap_test_class(
    TapBrazeCurrents,
    config={"storage_url": str(_ROOT / "currents"), "event_types": list(DEFAULT_EVENT_TYPES)},
    suite_config=SuiteConfig(max_records_limit=20),
)
