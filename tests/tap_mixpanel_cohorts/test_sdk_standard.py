"""The Singer SDK's standard tap tests, run against the query-API emulator."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from sandbox.emulators.mixpanel_query import DEFAULT_PROJECT_ID, MixpanelQueryEmulator
from tap_mixpanel_cohorts.tap import TapMixpanelCohorts
from tests.support.cohorts import PROFILES, SA_SECRET, SA_USER, standard_cohorts

# The standard suite builds its tests from the config at import time, so the emulator starts here.
# Every test runs a full sync, so the server-side limit is raised; the tap keeps its own budget.
_EMULATOR = MixpanelQueryEmulator(
    standard_cohorts(),
    PROFILES,
    service_accounts={SA_USER: SA_SECRET},
    page_size=100,
    max_queries_per_hour=100_000,
    max_concurrent=50,
).start()
atexit.register(_EMULATOR._server.server_close)

CONFIG = {
    "api_url": _EMULATOR.url,
    "project_id": str(DEFAULT_PROJECT_ID),
    "service_account_username": SA_USER,
    "service_account_secret": SA_SECRET,
    "max_queries_per_hour": 100_000,
}

TestTapMixpanelCohorts = get_tap_test_class(
    TapMixpanelCohorts,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=300),
    parse_env_config=False,
)

# Requested profile properties may hold any JSON type, which the per-type attribute tests
# cannot judge; the schema/record conformance tests still run on them.
TestTapMixpanelCohortsWithProperties = get_tap_test_class(
    TapMixpanelCohorts,
    config={**CONFIG, "output_properties": ["$email", "tags", "address"]},
    include_stream_attribute_tests=False,
    suite_config=SuiteConfig(max_records_limit=300),
    parse_env_config=False,
)
