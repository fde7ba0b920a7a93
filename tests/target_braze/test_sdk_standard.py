"""The Singer SDK's standard target tests that apply to an HTTP target."""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class, target_tests
from singer_sdk.testing.suites import SingerTestSuite

from target_braze.target import TargetBraze

_DIR = Path(tempfile.mkdtemp(prefix="target-braze-sdk-"))

# These streams carry no external_id, so records are counted as skipped: no request leaves.
suite = SingerTestSuite(
    kind="target",
    tests=[
        target_tests.TargetArrayData,
        target_tests.TargetCamelcaseTest,
        target_tests.TargetCliPrintsTest,
        target_tests.TargetDuplicateRecords,
        target_tests.TargetEncodedStringData,
        target_tests.TargetInvalidSchemaTest,
        target_tests.TargetOptionalAttributes,
        target_tests.TargetRecordBeforeSchemaTest,
        target_tests.TargetSchemaNoProperties,
        target_tests.TargetSchemaUpdates,
        target_tests.TargetSpecialCharsInAttributes,
    ],
)

TestTargetBrazeStandard = get_target_test_class(
    TargetBraze,
    config={
        "rest_endpoint": "http://127.0.0.1:9",
        "api_key": "sdk-suite-key",
        "ledger_path": str(_DIR / "ledger.sqlite3"),
    },
    custom_suites=[suite],
    include_target_tests=False,
)
