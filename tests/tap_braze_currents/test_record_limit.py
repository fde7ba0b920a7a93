"""A record limit (the SDK's dry run) still writes out every record it allows."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.loop.currents_gen import generate_export
from tap_braze_currents.tap import TapBrazeCurrents


def test_a_record_limit_writes_out_the_held_records(tmp_path: Path, capfd):
    export = generate_export(tmp_path / "bucket", seed=5, events_per_file=20, corrupt=False)
    tap = TapBrazeCurrents(
        config={"storage_url": str(export.root / "currents")}, parse_env_config=False
    )
    tap.run_sync_dry_run(dry_run_record_limit=3)
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    records = [m for m in lines if m["type"] == "RECORD"]
    streams = {m["stream"] for m in lines if m["type"] == "SCHEMA"}
    assert streams and {m["stream"] for m in records} == streams  # the last stream's too
    assert len(records) == 3 * len(streams)


def test_the_connection_test_writes_state_only_for_the_streams_it_read(tmp_path: Path, capfd):
    export = generate_export(tmp_path / "bucket", seed=5, events_per_file=20, corrupt=False)
    tap = TapBrazeCurrents(
        config={"storage_url": str(export.root / "currents")}, parse_env_config=False
    )
    with_files = {s.name for s in tap.streams.values() if s.folders}
    assert 0 < len(with_files) < len(tap.streams)  # the catalogue lists types with no files
    tap.run_connection_test()  # what `tap-braze-currents --test` runs
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    read = {m["stream"] for m in lines if m["type"] == "RECORD"}
    assert read == with_files
    states = [m["value"] for m in lines if m["type"] == "STATE"]
    assert states and len(states) <= 2 * len(read)
    assert set(states[-1]["bookmarks"]) <= read
