"""tap-braze-currents | target-mixpanel over a generated Currents export, faults on.

The emulator's stored set must equal, exactly, the set derived from the generator's records
with the design's rules (event names written out in ``tests.support.mixpanel.expected_keys``,
independently of the target's table).
"""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.server import Faults
from sandbox.loop.currents_gen import generate_export
from tests.support.mixpanel import expected_keys, run_pipeline


def test_currents_export_lands_in_mixpanel_exactly(tmp_path: Path) -> None:
    export = generate_export(tmp_path / "bucket", seed=21, events_per_file=40, hours=2)
    faults = Faults(rate_429=0.1, rate_5xx=0.1, rate_reset=0.05, rate_slow=0.05, slow_seconds=0.01)
    emulator = MixpanelImportEmulator(faults=faults).start()
    try:
        target, tap_states, emitted = run_pipeline(tmp_path, tmp_path / "bucket", emulator)
        expected = expected_keys(export.events)
        assert len(expected) > 500
        assert emulator.event_keys() == expected
        assert sum(emulator.faults_injected.values()) > 0
        assert target.stats.sending["retries"] > 0
        assert target.stats.skipped["no_external_user_id"] > 0
        assert target.stats.sending["dead_lettered"] == 0
        assert emitted and emitted[-1] == tap_states[-1]

        stored = {e["properties"]["$insert_id"]: e for e in emulator.events}
        custom = next(
            (t, r)
            for t, r in export.events
            if t == "users.behaviors.CustomEvent" and r["external_user_id"]
        )[1]
        props = stored[custom["id"]]["properties"]
        for key, value in json.loads(custom["properties"]).items():
            assert props[f"[Custom event property] {key}"] == value
        assert props["$partner_id"] == "braze"
        assert props["ip"] == "0"
        assert not any(k.startswith("_sdc_") for k in props)

        # A replay from scratch re-sends everything; $insert_id dedupes it to the same set.
        received = emulator.stats["received"]
        run_pipeline(tmp_path, tmp_path / "bucket", emulator)
        assert emulator.stats["received"] > received
        assert emulator.event_keys() == expected
        # Resuming from the emitted state sends nothing new.
        requests = emulator.stats["received"]
        run_pipeline(tmp_path, tmp_path / "bucket", emulator, state=emitted[-1])
        assert emulator.stats["received"] == requests
    finally:
        emulator.stop()
