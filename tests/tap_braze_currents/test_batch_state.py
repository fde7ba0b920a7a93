"""Under ``batch_config``, a STATE never marks a file read before its records are in BATCH files."""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path
from urllib.parse import urlparse

from sandbox.currents_gen import generate_export
from tests.support.harness import run_cli

PER_FILE = 30


def test_state_follows_the_batch_files_that_hold_its_files(tmp_path: Path):
    export = generate_export(
        tmp_path / "bucket", seed=3, events_per_file=PER_FILE, corrupt=False, duplicates=0.0
    )
    batches = tmp_path / "batches"
    batches.mkdir()
    config = {
        "storage_url": str(export.root / "currents"),
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": batches.as_uri()},
            "batch_size": 45,  # files span batches
        },
    }
    result = run_cli("tap-braze-currents", config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in result.stdout.splitlines():
        message = json.loads(line)
        assert message["type"] != "RECORD"
        if message["type"] == "BATCH":
            for url in message["manifest"]:
                with gzip.open(urlparse(url).path, "rt") as handle:
                    for row in handle:
                        seen[message["stream"]][json.loads(row)["_sdc_source_file"]] += 1
                        total += 1
        elif message["type"] == "STATE":
            for stream, bookmark in message["value"].get("bookmarks", {}).items():
                marked = sum(len(ids) for ids in bookmark.get("files", {}).values())
                whole = sum(1 for n in seen[stream].values() if n == PER_FILE)
                assert marked <= whole, (stream, marked, whole)
    assert total == len(export.events)
