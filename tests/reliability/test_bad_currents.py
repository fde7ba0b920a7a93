"""Bad Currents files: each is skipped whole (or read, when it is valid Avro), named and counted.

The corpus (``corpus.py``) is written next to good files in one hour partition. The real CLI
reads it; then the same export goes through ``tap-braze-currents | target-mixpanel``.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from tests.support.corpus import CORPUS, EVENT_TYPE, write_corpus
from tests.support.harness import run_cli

CORRUPT = [entry for entry in CORPUS if entry.corrupt]
READABLE = [entry for entry in CORPUS if not entry.corrupt]


def tap_config(root: Path, **extra: object) -> dict[str, object]:
    return {"storage_url": str(root / "currents"), "event_types": [EVENT_TYPE], **extra}


def records_by_file(stdout: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            name = message["record"]["_sdc_source_file"].rsplit("/", 1)[-1]
            counts[name.split("+")[0]] += 1
    return counts


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus")
    paths = write_corpus(root)
    result = run_cli("tap-braze-currents", tap_config(root), root)
    return root, paths, result


def test_the_run_succeeds_and_good_files_are_read_in_full(corpus_run):
    _, _, result = corpus_run
    assert result.returncode == 0, result.stderr[-3000:]
    counts = records_by_file(result.stdout)
    assert counts["good101"] == 5
    assert counts["good102"] == 5
    assert counts["huge_string"] == 3
    assert counts["unexpected_field_type"] == 3
    assert f"{len(CORRUPT)} corrupt" in result.stderr


@pytest.mark.parametrize("entry", CORRUPT, ids=lambda e: e.name)
def test_each_corrupt_file_yields_nothing_and_is_named_with_its_reason(corpus_run, entry):
    _, paths, result = corpus_run
    assert records_by_file(result.stdout)[entry.name] == 0  # never half a file
    named = [
        line
        for line in result.stderr.splitlines()
        if "WARNING" in line and paths[entry.name].name in line
    ]
    assert named, f"{entry.name} is not named in a warning"
    assert any(entry.reason in line for line in named), named


def test_a_huge_string_is_passed_through_intact(corpus_run):
    _, _, result = corpus_run
    names = [
        json.loads(line)["record"]["name"]
        for line in result.stdout.splitlines()
        if "/huge_string+" in line and '"type":"RECORD"' in line.replace(" ", "")
    ]
    assert max(len(n) for n in names) == 5_000_000


def test_corrupt_files_are_in_state_and_not_reread(corpus_run, tmp_path):
    root, _, first = corpus_run
    state = [json.loads(x)["value"] for x in first.stdout.splitlines() if '"STATE"' in x][-1]
    (tmp_path / "state.json").write_text(json.dumps(state))
    again = run_cli(
        "tap-braze-currents", tap_config(root), tmp_path, args=["--state", "state.json"]
    )
    assert again.returncode == 0
    assert records_by_file(again.stdout) == {}
    assert "0 corrupt" in again.stderr


@pytest.mark.parametrize("entry", CORRUPT, ids=lambda e: e.name)
def test_fail_fast_stops_with_one_line_naming_the_file(tmp_path, entry):
    paths = write_corpus(tmp_path, (entry,))
    result = run_cli("tap-braze-currents", tap_config(tmp_path, on_corrupt_file="fail"), tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert any(paths[entry.name].name in line and "on_corrupt_file" in line for line in errors)


def test_corpus_through_target_mixpanel_lands_exactly_the_readable_events(tmp_path):
    """Every decodable record arrives once; the huge name is cut to 255 characters and counted."""
    write_corpus(tmp_path)
    tap = run_cli("tap-braze-currents", tap_config(tmp_path), tmp_path)
    assert tap.returncode == 0
    expected = {
        json.loads(line)["record"]["id"]
        for line in tap.stdout.splitlines()
        if '"type":"RECORD"' in line.replace(" ", "")
    }
    assert len(expected) == 16
    emulator = MixpanelImportEmulator().start()
    try:
        config = {
            "api_url": emulator.url,
            "project_id": "12345",
            "service_account_username": "sa-user.mp-service-account",
            "service_account_secret": "sa-secret",
        }
        target = run_cli("target-mixpanel", config, tmp_path, stdin=tap.stdout)
        stored = {e["properties"]["$insert_id"]: e for e in emulator.events}
    finally:
        emulator.stop()
    assert target.returncode == 0, target.stderr[-3000:]
    assert set(stored) == expected
    assert all(len(e["event"]) <= 255 for e in stored.values())
    assert max(len(e["event"]) for e in stored.values()) == 255
    summary = next(line for line in target.stderr.splitlines() if "summary:" in line)
    # The name property and the event name built from it.
    assert "truncated_strings=2 " in summary
    assert "dead_lettered=0 " in summary
