"""The tap's fast path (lines encoded while a file decodes) writes what the SDK's path writes."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import tap_braze_currents.staging
from sandbox.loop.currents_gen import generate_export
from tap_braze_currents.streams import CurrentsStream
from tap_braze_currents.tap import TapBrazeCurrents
from tests.support.corpus import write_corpus

TIME_EXTRACTED = re.compile(rb'"time_extracted":"[^"]+"')


def sync_lines(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every line the tap writes, with ``time_extracted`` blanked (it is the time of the run)."""
    buffer = io.BytesIO()
    stdout = io.TextIOWrapper(buffer, encoding="utf-8")
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", stdout)
        TapBrazeCurrents(config=config, parse_env_config=False).sync_all()
    stdout.flush()
    return [
        TIME_EXTRACTED.sub(b'"time_extracted":""', line) for line in buffer.getvalue().splitlines()
    ]


def both_paths(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """The tap's output on the fast path, then on the SDK's path (fast path switched off)."""
    fast_files: list[str] = []
    write_file_lines = CurrentsStream._write_file_lines

    def counted(self: CurrentsStream, file: Any, counter: Any) -> Any:
        fast_files.append(file.path)
        return write_file_lines(self, file, counter)

    monkeypatch.setattr(CurrentsStream, "_write_file_lines", counted)
    fast = sync_lines(config, monkeypatch)
    assert fast_files, "the fast path was not taken"
    monkeypatch.setattr(CurrentsStream, "_encodes_ahead", property(lambda self: False))
    return fast, sync_lines(config, monkeypatch)


@pytest.mark.parametrize("hold_bytes", [None, 2000], ids=["in-memory", "spilled"])
def test_same_lines_on_both_paths(tmp_path: Path, monkeypatch, hold_bytes):
    if hold_bytes is not None:
        monkeypatch.setattr(tap_braze_currents.staging, "DEFAULT_HOLD_BYTES", hold_bytes)
    # Eight types (Purchase has 32-bit floats), drifted schemas, duplicates, corrupt files.
    export = generate_export(tmp_path / "bucket", seed=11, events_per_file=40)
    fast, reference = both_paths({"storage_url": str(export.root / "currents")}, monkeypatch)
    assert fast == reference
    records = [json.loads(line) for line in fast if line.startswith(b'{"type":"RECORD"')]
    assert len(records) == len(export.events)


def test_same_lines_for_bad_and_odd_files(tmp_path: Path, monkeypatch):
    write_corpus(tmp_path)  # corrupt files (skipped whole), a 5 MB string, unexpected types
    fast, reference = both_paths(
        {"storage_url": str(tmp_path / "currents"), "on_corrupt_file": "skip"}, monkeypatch
    )
    assert fast == reference


def test_a_file_corrupt_past_the_memory_budget_writes_no_line(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tap_braze_currents.staging, "DEFAULT_HOLD_BYTES", 100)  # spill at once
    paths = write_corpus(tmp_path)
    fast, _ = both_paths({"storage_url": str(tmp_path / "currents")}, monkeypatch)
    sources = {
        json.loads(line)["record"]["_sdc_source_file"].rsplit("/", 1)[-1]
        for line in fast
        if line.startswith(b'{"type":"RECORD"')
    }
    assert paths["huge_string"].name in sources  # a good file was read
    assert not {paths[name].name for name in ("non_utf8", "truncated")} & sources
