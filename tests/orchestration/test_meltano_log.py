"""Reading Meltano's JSON log lines: what reaches the op's log, and which line says why."""

from __future__ import annotations

import json

from orchestration.meltano_log import error_line, parse_line, summary_figures


def _line(event: str, level: str = "info", name: str | None = None) -> str:
    record = {"event": event, "level": level, "timestamp": "2026-12-01T21:40:50.351475Z"}
    if name:
        record |= {"name": name, "cmd_type": "loader", "stdio": "stderr"}
    return json.dumps(record)


def test_plugin_summaries_and_problems_are_kept_sdk_chatter_is_not() -> None:
    summary = parse_line(
        _line("target-mixpanel summary: records=293 imported=266", name="target-mixpanel")
    )
    assert summary.from_plugin and summary.is_summary
    assert (
        summary.render() == "21:40:50 info     target-mixpanel      "
        "target-mixpanel summary: records=293 imported=266"
    )
    chatter = parse_line(
        _line("Beginning sync of 'users_behaviors_purchase'", name="tap-braze-currents")
    )
    assert not chatter.is_summary and not chatter.is_problem
    assert parse_line(_line("Running extract & load...")).is_summary
    assert not parse_line(_line("Incremental state has been updated at 2026-12-01")).is_summary
    assert parse_line(_line("Retrying in 2 s", "warning", "target-braze")).is_problem
    box = parse_line('│ ❱ 207 │   │   │   raise RunnerError("Loader failed") │\n')
    assert not box.structured and not box.is_summary and box.render().startswith("│ ❱ 207")


def test_the_plugins_last_error_wins_over_meltanos() -> None:
    lines = [
        parse_line(
            _line("Mixpanel /import: a network error; retrying", "warning", "target-mixpanel")
        ),
        parse_line(
            _line("Mixpanel /import still failing after 8 attempts", "error", "target-mixpanel")
        ),
        parse_line(
            _line("FileNotFoundError: tap.config.json was not found", name="tap-braze-currents")
        ),
        parse_line(_line("ELT could not be completed: Loader failed.", "error")),
    ]
    assert error_line(lines) == "target-mixpanel: Mixpanel /import still failing after 8 attempts"


def test_without_a_logged_error_the_traceback_line_then_meltano_speaks() -> None:
    crash = [
        parse_line(_line('File "tap.py", line 3, in sync', name="tap-braze-currents")),
        parse_line(_line("OSError: [Errno 28] No space left on device", name="tap-braze-currents")),
        parse_line(_line("Extractor failed", "error")),
    ]
    assert error_line(crash) == "tap-braze-currents: OSError: [Errno 28] No space left on device"
    assert error_line(crash[2:]) == "meltano: Extractor failed"
    assert error_line([]) == ""


def test_summary_figures_come_from_the_plugins_json_summaries() -> None:
    figures = {"records": 10, "imported": 8, "waited_s": 0.5, "dry_run": False, "by": {"x": 1}}
    lines = [
        parse_line(_line("target-mixpanel summary: records=10 imported=8", name="target-mixpanel")),
        parse_line(
            _line(
                json.dumps({"event": "run_summary", "plugin": "target-mixpanel", **figures}),
                name="target-mixpanel",
            )
        ),
        parse_line(_line("target-mixpanel progress: 8 events sent", name="target-mixpanel")),
    ]
    assert summary_figures(lines) == {
        "target-mixpanel.records": 10,
        "target-mixpanel.imported": 8,
        "target-mixpanel.waited_s": 0.5,
    }
    assert [line.is_summary for line in lines] == [True, False, True]


def test_only_telling_lines_are_kept_after_the_run() -> None:
    kept = [
        _line("target-mixpanel summary: records=1", name="target-mixpanel"),
        _line(
            json.dumps({"event": "run_summary", "plugin": "tap-braze-currents"}),
            name="tap-braze-currents",
        ),
        _line("OSError: disk full", name="tap-braze-currents"),
        _line("Retrying", "warning", "target-braze"),
        _line("Extract & load complete!"),
    ]
    dropped = [
        _line("METRIC", name="target-mixpanel"),
        _line("Beginning sync of 'users_behaviors_purchase'", name="tap-braze-currents"),
        "╰──────────────╯",
    ]
    assert all(parse_line(raw).telling for raw in kept)
    assert not any(parse_line(raw).telling for raw in dropped)
