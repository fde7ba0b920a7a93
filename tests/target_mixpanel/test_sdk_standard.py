"""The Singer SDK's standard target tests that apply to an API target, against the emulator.

Left out: TargetMultipleStateMessages (expects the SDK's drain-time state relay; this target
checkpoints only confirmed input, tested in test_target.py) and TargetInvalidSchemaTest (expects
a crash on a schema without properties; an API target has no table to create from it).
"""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class, target_tests
from singer_sdk.testing.suites import SingerTestSuite

from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from target_mixpanel.target import TargetMixpanel
from tests.support.mixpanel import sa_config

_EMULATOR = MixpanelImportEmulator().start()
atexit.register(_EMULATOR.stop)
_DEAD = Path(tempfile.mkdtemp(prefix="tm-sdk-")) / "dead.jsonl"

api_target_suite = SingerTestSuite(
    kind="target",
    tests=[
        target_tests.TargetArrayData,
        target_tests.TargetCamelcaseComplexSchema,
        target_tests.TargetCamelcaseTest,
        target_tests.TargetCliPrintsTest,
        target_tests.TargetDuplicateRecords,
        target_tests.TargetEncodedStringData,
        target_tests.TargetNoPrimaryKeys,
        target_tests.TargetOptionalAttributes,
        target_tests.TargetPrimaryKeyUpdates,
        target_tests.TargetRecordBeforeSchemaTest,
        target_tests.TargetRecordMissingKeyProperty,
        target_tests.TargetRecordMissingOptionalFields,
        target_tests.TargetSchemaNoProperties,
        target_tests.TargetSchemaUpdates,
        target_tests.TargetSpecialCharsInAttributes,
    ],
)

# The SDK's sample streams carry an `id` but no event time: with `id` as distinct_id they are
# mapped, found to lack a time, and dead-lettered -- exercising mapping and the dead-letter
# writer on arrays, unicode, camelCase, special characters and schema changes.
TestTargetMixpanelStandard = get_target_test_class(
    TargetMixpanel,
    config=sa_config(_EMULATOR.url, distinct_id_field="id", dead_letter_path=str(_DEAD)),
    custom_suites=[api_target_suite],
    include_target_tests=False,
)
