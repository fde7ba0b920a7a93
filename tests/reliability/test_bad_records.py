"""Bad records for target-mixpanel: each gets the documented treatment, counted, and never crashes.

One run through the real CLI into the /import emulator (strict=1), with one bad record of each
kind between good ones. The documented treatments (README, target-mixpanel):
- invalid ``properties`` JSON: kept raw under ``properties``, counted, imported;
- strings over 255 characters: cut, counted; more than 254 properties: extra ones dropped, counted;
- ``time`` in milliseconds: sent as milliseconds (Mixpanel accepts both);
- negative or pre-2010 times: skipped (``before_min_event_time``);
- empty ``external_user_id``: skipped (``no_external_user_id``);
- an unparseable time, a CustomEvent without a name: dead-lettered (``invalid_record``);
- far-future times and ids Mixpanel refuses (``null``, ``undefined``, ``0``...): Mixpanel rejects
  them under strict=1; they are dead-lettered with Mixpanel's reason (``rejected``).
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Any

import pytest

from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from tests.support.harness import run_cli, singer_lines
from tests.support.mixpanel import currents_record, record_msg, schema_msg, state_msg

STREAM = "users_behaviors_customevent"
NOW = int(time.time())

BAD: dict[str, dict[str, Any]] = {
    "invalid_json": {"properties": "{not json"},
    "long_value": {"name": "n" * 400, "device_model": "d" * 400},
    "many_props": {"properties": json.dumps({f"k{i:03d}": i for i in range(300)})},
    "time_ms": {"time": 1_760_000_000_123},
    "negative_time": {"time": -5},
    "pre_2010": {"time": 1_000_000_000},
    "far_future": {"time": NOW + 10 * 86_400},
    "empty_id": {"external_user_id": ""},
    "null_id": {"external_user_id": "null"},
    "undefined_id": {"external_user_id": "undefined"},
    "zero_id": {"external_user_id": "0"},
    "bad_time": {"time": "yesterday"},
    "no_name": {"name": None},
}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("bad-records")
    messages: list[dict[str, Any]] = [schema_msg(STREAM)]
    ids: dict[str, str] = {}
    for i, (kind, overrides) in enumerate(BAD.items()):
        messages.append(record_msg(STREAM, currents_record(1000 + i)))  # a good neighbour
        record = currents_record(i, id=f"bad-{kind.replace('_', '-')}", **overrides)
        ids[kind] = record["id"]
        messages.append(record_msg(STREAM, record))
    messages.append(state_msg({"done": True}))
    emulator = MixpanelImportEmulator().start()
    config = {
        "api_url": emulator.url,
        "project_id": "12345",
        "service_account_username": "sa-user.mp-service-account",
        "service_account_secret": "sa-secret",
        "batch_size": 5,
    }
    try:
        result = run_cli("target-mixpanel", config, workdir, stdin=singer_lines(messages))
        stored = {e["properties"]["$insert_id"]: e for e in emulator.events}
    finally:
        emulator.stop()
    dead_path = workdir / "target-mixpanel-dead-letters.jsonl"
    dead = {d["record"]["id"]: d for d in map(json.loads, dead_path.read_text().splitlines())}
    summary = next(line for line in result.stderr.splitlines() if "summary:" in line)
    return result, stored, dead, ids, summary, dead_path


def test_the_run_completes_and_every_good_record_lands(bad_run):
    result, stored, *_ = bad_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert {f"evt-{1000 + i:06d}" for i in range(len(BAD))} <= set(stored)
    assert json.loads(result.stdout.splitlines()[-1]) == {"done": True}


def test_summary_counts_each_treatment(bad_run):
    *_, summary, _ = bad_run
    for fragment in (
        "skipped=3 ",
        "before_min_event_time=2",
        "no_external_user_id=1",
        "invalid_properties_json=1 ",
        "dropped_properties=",
        "dead_lettered=6 ",
    ):
        assert fragment in summary, (fragment, summary)
    assert "truncated_strings=0 " not in summary
    assert "dropped_properties=0 " not in summary


def test_fixable_records_are_imported_fixed(bad_run):
    _, stored, _, ids, *_ = bad_run
    raw = stored[ids["invalid_json"]]["properties"]
    assert raw["properties"] == "{not json"
    long_value = stored[ids["long_value"]]
    assert len(long_value["event"]) == 255
    assert long_value["properties"]["$device"] == "d" * 255
    many = stored[ids["many_props"]]["properties"]
    assert len(many) == 254
    assert {"time", "distinct_id", "$insert_id"} <= set(many)
    assert stored[ids["time_ms"]]["properties"]["time"] == 1_760_000_000_123


def test_unsendable_records_are_dead_lettered_with_a_reason(bad_run):
    _, stored, dead, ids, *_ = bad_run
    expectations = {
        "bad_time": ("invalid_record", "time"),
        "no_name": ("invalid_record", "name"),
        "far_future": ("rejected", "properties.time"),
        "null_id": ("rejected", "properties.distinct_id"),
        "undefined_id": ("rejected", "properties.distinct_id"),
        "zero_id": ("rejected", "properties.distinct_id"),
    }
    for kind, (reason, field) in expectations.items():
        entry = dead[ids[kind]]
        assert (entry["reason"], entry["field"]) == (reason, field), entry
        assert entry["message"]
        assert ids[kind] not in stored


def test_skipped_records_are_neither_sent_nor_dead_lettered(bad_run):
    _, stored, dead, ids, *_ = bad_run
    for kind in ("negative_time", "pre_2010", "empty_id"):
        assert ids[kind] not in stored
        assert ids[kind] not in dead


def test_dead_letter_file_is_owner_only_and_named_in_the_log(bad_run):
    result, *_, dead_path = bad_run
    assert stat.S_IMODE(os.stat(dead_path).st_mode) == 0o600
    assert any("WARNING" in x and dead_path.name in x for x in result.stderr.splitlines())


@pytest.mark.parametrize(
    "line",
    ["", "   ", "not json at all", '{"type": "RECORD"}', '{"type": "RECORD", "stream": "nope"}'],
    ids=["blank", "spaces", "not-json", "no-stream", "unknown-stream"],
)
def test_a_broken_singer_stream_stops_the_run(tmp_path, line):
    """A broken Singer line is not a bad record to skip: the tap upstream is broken. The run
    stops with a non-zero exit (the SDK's reader, blank lines included) and no state is written
    past it."""
    good = [schema_msg(STREAM), record_msg(STREAM, currents_record(1))]
    config = {"project_id": "1", "api_secret": "s", "dry_run": True, "dry_run_path": "dry"}
    stdin = singer_lines(good) + line + "\n" + singer_lines([state_msg({"after": True})])
    result = run_cli("target-mixpanel", config, tmp_path, stdin=stdin)
    assert result.returncode != 0
    assert "after" not in result.stdout
