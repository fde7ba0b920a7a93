"""BATCH messages feed target-braze exactly like RECORDs: snapshots, attributes, state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braze_mixpanel_common.batch import BatchFileError
from tests.support.batch import as_batches, batch_msg
from tests.support.braze import run_target, snapshot

ATTR = "mixpanel_cohorts"
ENCODINGS = [(f, c) for f in ("jsonl", "parquet") for c in ("gzip", "none")]


@pytest.mark.parametrize(("fmt", "compression"), ENCODINGS)
def test_snapshot_sent_as_batches_is_complete_and_removes_leavers(
    braze, config, users, tmp_path: Path, fmt, compression
):
    first = snapshot({1: ("A", users[:30]), 2: ("B", users[25:40])})
    run_target(config, as_batches(first, tmp_path / "1", fmt, compression, per_file=7))
    assert braze.attribute("u000", ATTR) == ["A"]
    assert sorted(braze.attribute("u027", ATTR)) == ["A", "B"]
    # The second snapshot, again as BATCH + ACTIVATE_VERSION, is complete: leavers are removed.
    second = snapshot({1: ("A", users[10:30]), 2: ("B", users[25:40])})
    batched = as_batches(second, tmp_path / "2", fmt, compression, per_file=7)
    assert [m["type"] for m in batched][-1] == "ACTIVATE_VERSION"
    target = run_target(config, batched)
    assert braze.attribute("u000", ATTR) == []
    assert braze.attribute("u015", ATTR) == ["A"]
    assert target.sync.summary()["cohorts"][("cohort_members", "1")]["removed"] == 10


def test_batch_without_activate_version_adds_but_never_removes(braze, config, users, tmp_path):
    run_target(config, snapshot({1: ("A", users[:10])}))
    partial = snapshot({1: ("A", users[5:10])}, complete=False)
    run_target(config, as_batches(partial, tmp_path))
    assert braze.attribute("u000", ATTR) == ["A"]


def test_attribute_stream_as_parquet_batch(braze, config, tmp_path):
    schema = {
        "type": "SCHEMA",
        "stream": "profiles",
        "key_properties": [],
        "schema": {
            "type": "object",
            "properties": {
                "external_id": {"type": "string"},
                "plan": {"type": "string"},
                "ltv": {"type": "number"},
            },
        },
    }
    records = [
        {
            "type": "RECORD",
            "stream": "profiles",
            "record": {"external_id": f"u{i:03d}", "plan": "pro", "ltv": 2.5},
        }
        for i in range(12)
    ]
    target = run_target(config, as_batches([schema, *records], tmp_path, "parquet", "gzip"))
    assert braze.users["u011"]["plan"] == "pro"
    assert braze.users["u011"]["ltv"] == 2.5
    assert target.sync.upserts["profiles"].sent == 12


def test_unreadable_batch_fails_and_no_state_is_written(braze, config, users, tmp_path, capsys):
    messages = snapshot({1: ("A", users[:10])})
    messages.insert(len(messages) - 1, {"type": "STATE", "value": {"run": 1}})
    batched = as_batches(messages, tmp_path)
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    batched.insert(-2, batch_msg("cohort_members", [broken.as_uri()], "parquet", "none"))
    with pytest.raises(BatchFileError, match=r"broken.parquet \(parquet \(none\)\) is not a"):
        run_target(config, batched)
    assert '"run"' not in capsys.readouterr().out
    assert braze.track_requests == []


def test_state_after_batches_is_written_once_braze_confirmed(
    braze, config, users, tmp_path, capsys
):
    messages = snapshot({1: ("A", users[:10])})
    messages.append({"type": "STATE", "value": {"run": 2}})
    run_target(config, as_batches(messages, tmp_path))
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    last = lines[-1]
    assert last["run"] == 2  # the tap's state, passed on
    assert last["bookmarks"]["_target_braze_ledger"]["generation"] == 1  # the ledger published
    assert braze.attribute("u009", ATTR) == ["A"]


def test_loaded_batch_files_are_deleted_when_asked(braze, config, users, tmp_path):
    folder = tmp_path / "b"
    batched = as_batches(snapshot({1: ("A", users[:20])}), folder, per_file=7)
    assert any(folder.rglob("*.*"))
    run_target(
        {**config, "batch_delete_after_load": True, "batch_delete_root": str(folder)}, batched
    )
    assert braze.attribute("u000", ATTR) == ["A"]
    assert not [path for path in folder.rglob("*") if path.is_file()]


def test_batch_files_outside_the_delete_root_are_read_and_kept(
    braze, config, users, tmp_path, caplog
):
    folder = tmp_path / "b"
    batched = as_batches(snapshot({1: ("A", users[:20])}), folder, per_file=7)
    written = sorted(path for path in folder.rglob("*") if path.is_file())
    settings = {"batch_delete_after_load": True, "batch_delete_root": str(tmp_path / "other")}
    with caplog.at_level("WARNING"):
        run_target({**config, **settings}, batched)
    assert braze.attribute("u019", ATTR) == ["A"]
    assert sorted(path for path in folder.rglob("*") if path.is_file()) == written
    assert sum("not deleted" in r.getMessage() for r in caplog.records) == 1
