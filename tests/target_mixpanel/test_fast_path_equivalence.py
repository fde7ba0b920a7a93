"""The performance shortcuts change nothing Mixpanel stores.

One sample of the tap's real output (a generated Currents export) goes through target-mixpanel
twice into fresh emulators that keep every event:

* the reference path: ``validate_records`` on (so the Singer SDK's generic record path runs:
  copy, validation, identity map), one request in flight, small batches;
* the fast path the benchmarks measure: the defaults (direct record path, 10 requests in
  flight, 2000-event batches, bounded in-flight queue).

The stored events, property for property, must be identical, and equal to what the dry run
writes. Guards every optimisation of the mapping, encoding and dispatch code.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from sandbox.emulators.mixpanel_event_rules import dedupe_key
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.loop.currents_gen import generate_export
from target_mixpanel.target import TargetMixpanel
from tests.support.mixpanel import sa_config

ROOT = Path(__file__).resolve().parents[2]


def tap_output(tmp_path: Path) -> str:
    generate_export(tmp_path / "bucket", seed=7, events_per_file=60, hours=2, duplicates=0.05)
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({"storage_url": str(tmp_path / "bucket" / "currents")}))
    return subprocess.run(
        [sys.executable, "-m", "tap_braze_currents", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def stored(messages: str, tmp_path: Path, **settings: Any) -> dict[tuple, dict[str, Any]]:
    emulator = MixpanelImportEmulator(keep="events").start()
    try:
        config = sa_config(emulator.url, dead_letter_path=str(tmp_path / "dead.jsonl"))
        target = TargetMixpanel(config={**config, **settings})
        target.listen(io.StringIO(messages))
        assert target.stats.sending["dead_lettered"] == 0
        return {dedupe_key(e): e for e in emulator.events}
    finally:
        emulator.stop()


def test_fast_path_stores_exactly_what_the_reference_path_stores(tmp_path: Path) -> None:
    messages = tap_output(tmp_path)
    reference = stored(messages, tmp_path, validate_records=True, max_concurrency=1, batch_size=7)
    fast = stored(messages, tmp_path)
    assert len(reference) > 1000
    assert fast == reference

    dry_path = tmp_path / "dry.ndjson"
    TargetMixpanel(config={"dry_run": True, "dry_run_path": str(dry_path)}).listen(
        io.StringIO(messages)
    )
    dry = [msgspec.json.decode(line) for line in dry_path.read_bytes().splitlines()]
    assert {dedupe_key(e): e for e in dry} == fast
