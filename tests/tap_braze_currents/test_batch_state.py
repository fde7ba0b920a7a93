"""Under ``batch_config``: one batch file per Currents file, and no STATE ahead of its records."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest

from braze_mixpanel_common.batch import BatchManifest, BatchReader
from sandbox.loop.currents_gen import generate_export
from tests.support.harness import run_cli

PER_FILE = 30


def batch_config(root: Path, compression: str, fmt: str = "jsonl") -> dict[str, Any]:
    return {
        "encoding": {"format": fmt, "compression": compression},
        "storage": {"root": root.as_uri()},
        "batch_size": 45,  # smaller than a file: the SDK's batcher would span files
    }


def batch_records(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(BatchReader().records(BatchManifest.from_message(message)))


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_state_follows_the_batch_files_that_hold_its_files(tmp_path: Path, compression):
    export = generate_export(
        tmp_path / "bucket", seed=3, events_per_file=PER_FILE, corrupt=False, duplicates=0.0
    )
    batches = tmp_path / "batches"
    config = {
        "storage_url": str(export.root / "currents"),
        "batch_config": batch_config(batches, compression),
    }
    result = run_cli("tap-braze-currents", config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_id = {record["id"]: record for _, record in export.events}
    total = 0
    for line in result.stdout.splitlines():
        message = json.loads(line)
        assert message["type"] != "RECORD"
        if message["type"] == "BATCH":
            for record in batch_records(message):
                source = record.pop("_sdc_source_file")
                seen[message["stream"]][source] += 1
                assert json.loads(json.dumps(record, default=float)) == by_id[record["id"]]
                total += 1
        elif message["type"] == "STATE":
            for stream, bookmark in message["value"].get("bookmarks", {}).items():
                marked = sum(len(ids) for ids in bookmark.get("files", {}).values())
                whole = sum(1 for n in seen[stream].values() if n == PER_FILE)
                assert marked <= whole, (stream, marked, whole)
    assert total == len(export.events)


def test_one_batch_file_per_good_file_and_none_for_a_corrupt_one(tmp_path: Path):
    export = generate_export(tmp_path / "bucket", seed=4, events_per_file=PER_FILE)
    batches = tmp_path / "batches"
    config = {
        "storage_url": str(export.root / "currents"),
        "batch_config": batch_config(batches, "none"),
    }
    result = run_cli("tap-braze-currents", config, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    manifests = [
        url
        for message in map(json.loads, result.stdout.splitlines())
        if message["type"] == "BATCH"
        for url in message["manifest"]
    ]
    assert len(manifests) == len(export.files)  # the truncated and the empty file have none
    assert sorted(path.as_uri() for path in batches.iterdir()) == sorted(manifests)
    assert all(url.endswith(".jsonl") for url in manifests)


def test_parquet_is_refused_in_one_line_naming_the_setting(tmp_path: Path):
    export = generate_export(tmp_path / "bucket", seed=5, events_per_file=5, corrupt=False)
    config = {
        "storage_url": str(export.root / "currents"),
        "batch_config": batch_config(tmp_path / "batches", "gzip", "parquet"),
    }
    result = run_cli("tap-braze-currents", config, tmp_path)
    assert result.returncode == 1
    assert "Setting 'batch_config': encoding format 'parquet' is not supported" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
