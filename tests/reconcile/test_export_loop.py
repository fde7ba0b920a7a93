"""The export-loop check end to end: Currents files -> target-mixpanel -> emulators -> report."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from braze_mixpanel_common.errors import ConfigurationError
from reconcile.export_loop.check import reconcile_export_loop
from reconcile.export_loop.cli import main
from reconcile.export_loop.settings import Settings
from reconcile.report import EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR
from sandbox.emulators.mixpanel_query import MixpanelQueryEmulator
from tap_mixpanel_cohorts.client import MixpanelQueryClient
from target_mixpanel.events import event_name_for_type
from tests.reconcile.conftest import SA_SECRET, Landed
from tests.support.clock import FakeClock

START = datetime(2026, 11, 1, 10, tzinfo=UTC)
END = datetime(2026, 11, 1, 12, tzinfo=UTC)
LOG = logging.getLogger("test")


def _run(landed: Landed, query: MixpanelQueryEmulator, **overrides):
    settings = Settings.from_config(landed.config(query, **overrides), LOG)
    return reconcile_export_loop(settings, START, END, logger=LOG)


def test_clean_run_reports_zero_drift(landed, query_emulator):
    report = _run(landed, query_emulator)
    assert report.drift == 0
    in_window = [
        e for e in landed.events if START.timestamp() <= e["properties"]["time"] < END.timestamp()
    ]
    assert report.checked == len(in_window) > 300
    # The generator writes some events a minute before their partition's hour: outside.
    assert report.details["outside_window"] == len(landed.events) - len(in_window)
    hours = {row.key["hour"] for row in report.rows}
    assert hours == {"2026-11-01 10:00:00", "2026-11-01 11:00:00"}
    # Skipped (no external_user_id), duplicates and the corrupt files are accounted for.
    assert report.details["skipped"]["no_external_user_id"] > 0
    assert report.details["duplicates"] > 0
    assert len(report.details["bad_files"]) == 2
    names = report.details["event_names"]
    assert report.details["queries"] == query_emulator.queries["events"] == -(-names // 50)
    assert query_emulator.rate_limited_count == 0


def test_missing_hour_and_dropped_event_type_are_found_and_named(landed, query_emulator):
    dropped = event_name_for_type("users.messages.email.Send")
    kept = [
        e
        for e in landed.events
        if e["event"] != dropped
        and not (e["event"] == "Purchase" and e["properties"]["time"] % 86400 >= 11 * 3600)
    ]
    assert len(kept) < len(landed.events)
    query_emulator.events = lambda: kept
    report = _run(landed, query_emulator)
    drifted = {(row.key["event"], row.key["hour"]): row for row in report.drifted_rows}
    assert {key for key in drifted if key[0] == dropped} == {
        (dropped, "2026-11-01 10:00:00"),
        (dropped, "2026-11-01 11:00:00"),
    }
    assert {key for key in drifted if key[0] == "Purchase"} == {("Purchase", "2026-11-01 11:00:00")}
    assert {name for name, _ in drifted} == {dropped, "Purchase"}
    for row in drifted.values():
        assert row.counts["found"] == 0
        assert row.counts["difference"] == -row.counts["expected"] < 0
    window = range(int(START.timestamp()), int(END.timestamp()))
    lost = [e for e in landed.events if e not in kept and e["properties"]["time"] in window]
    assert report.drift == len(lost)


def test_cli_exit_codes_summary_and_no_secret_in_output(
    landed, query_emulator, tmp_path: Path, capsys, caplog
):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(landed.config(query_emulator)))
    summary = tmp_path / "out" / "summary.json"
    window = ["--start", "2026-11-01T10:00:00Z", "--end", "2026-11-01T12:00:00Z"]
    assert main(["--config", str(config), *window, "--summary", str(summary)]) == EXIT_CLEAN
    written = json.loads(summary.read_text())
    assert written["passed"] is True
    assert written["drift"] == 0
    assert written["window"]["hours"] == 2

    query_emulator.events = lambda: landed.events[: len(landed.events) // 2]
    assert main(["--config", str(config), *window, "--summary", str(summary)]) == EXIT_DRIFT
    assert json.loads(summary.read_text())["passed"] is False
    ratio = landed.config(query_emulator, max_drift_ratio=0.6)
    config.write_text(json.dumps(ratio))
    assert main(["--config", str(config), *window]) == EXIT_CLEAN

    wrong = landed.config(query_emulator, service_account_secret=SA_SECRET + "-wrong")
    config.write_text(json.dumps(wrong))
    assert main(["--config", str(config), *window]) == EXIT_ERROR
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert "401" in text
    assert SA_SECRET not in text
    assert SA_SECRET not in summary.read_text()


def test_query_budget_is_never_exceeded(landed, query_emulator, monkeypatch, caplog):
    # One name a query: more queries than the budget allows -> refused before any query.
    for name, value in landed.config(query_emulator).items():
        monkeypatch.setenv(f"RECONCILE_EXPORT_LOOP_{name.upper()}", value)
    monkeypatch.setenv("RECONCILE_EXPORT_LOOP_EVENTS_PER_QUERY", "1")
    monkeypatch.setenv("RECONCILE_EXPORT_LOOP_QUERY_BUDGET", "3")
    window = ["--start", "2026-11-01T10:00:00Z", "--hours", "2"]
    assert main(window) == EXIT_ERROR
    assert "'query_budget' allows (3)" in caplog.text
    assert query_emulator.queries["events"] == 0
    # Within the budget, every query is admitted: the emulator never had to refuse one.
    monkeypatch.setenv("RECONCILE_EXPORT_LOOP_QUERY_BUDGET", "60")
    assert main(window) == EXIT_CLEAN
    assert 3 < query_emulator.queries["events"] <= 60
    assert query_emulator.rate_limited_count == 0
    assert query_emulator.max_in_flight <= 5


def test_a_window_without_currents_events_costs_no_query_and_says_so(
    landed, query_emulator, caplog
):
    settings = Settings.from_config(landed.config(query_emulator), LOG)
    empty = datetime(2026, 10, 1, tzinfo=UTC)
    report = reconcile_export_loop(settings, empty, END.replace(month=10), logger=LOG)
    assert (report.checked, report.rows, report.details["queries"]) == (0, [], 0)
    assert query_emulator.queries["events"] == 0
    assert "No Currents events" in caplog.text


def test_a_bad_setting_is_named_and_a_secret_value_never_repeated(landed, query_emulator):
    bad = landed.config(query_emulator, storage_options="key=AKIA-not-shown", late_hours=99)
    with pytest.raises(ConfigurationError) as error:
        Settings.from_config({**bad, "late_hours": 2}, LOG)
    assert "'storage_options' is invalid" in str(error.value)
    assert "AKIA-not-shown" not in str(error.value)
    with pytest.raises(ConfigurationError, match=r"'late_hours' is invalid\. 99 is greater"):
        Settings.from_config(bad | {"storage_options": {}}, LOG)


def test_a_window_needing_more_than_an_hours_budget_waits_instead_of_being_refused(
    landed, query_emulator
):
    # Mixpanel allows 5 queries an hour here; the window needs 12 (one event name a query).
    # One query at a time: with several, threads sleeping on the shared fake clock would move
    # time between the limiter's count and the emulator's (a 429 the retry would absorb).
    clock = FakeClock()
    query_emulator.clock = clock
    query_emulator.max_queries_per_hour = 5
    config = landed.config(
        query_emulator,
        events_per_query=1,
        query_budget=12,
        max_queries_per_hour=5,
        max_concurrent_queries=1,
    )
    settings = Settings.from_config(config, LOG)
    client = MixpanelQueryClient(settings.query, LOG, clock=clock)
    report = reconcile_export_loop(settings, START, END, logger=LOG, client=client)
    assert report.drift == 0
    assert query_emulator.queries["events"] == 12
    assert query_emulator.rate_limited_count == 0  # never over Mixpanel's limit
    assert client.limiter.waited >= 2 * 3600 - 1  # two full windows waited for


def test_a_file_the_storage_will_not_give_stops_the_check(
    landed, query_emulator, tmp_path, monkeypatch, caplog
):
    import reconcile.export_loop.expected as expected_module
    from tap_braze_currents.reader import UnreadableFileError

    def refused(fs, path):
        raise UnreadableFileError("PermissionError: 403 Forbidden")

    monkeypatch.setattr(expected_module, "open_local", refused)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(landed.config(query_emulator)))
    window = ["--start", "2026-11-01T10:00:00Z", "--hours", "2"]
    assert main(["--config", str(config), *window]) == EXIT_ERROR
    assert "403 Forbidden" in caplog.text
    assert "Check 'storage_url'" in caplog.text
    assert query_emulator.queries["events"] == 0
