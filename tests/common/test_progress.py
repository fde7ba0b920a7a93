"""The shared progress line (throttled on an injected clock) and the JSON summary line."""

from __future__ import annotations

import json
import logging

import pytest

from braze_mixpanel_common.progress import INTERVAL_S, Progress, log_summary_json, summaries
from tests.support.clock import FakeClock

LOGGER = logging.getLogger("test-progress")


def test_a_line_at_most_every_interval_with_the_rate_since_the_last_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    progress = Progress(LOGGER, "tap-x", clock=clock, interval_s=5)
    calls: list[float] = []

    def describe(rate: float) -> str:
        calls.append(rate)
        return f"{rate:.0f} events/s"

    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        assert not progress.update(100, describe)  # nothing due yet: describe not even called
        clock.sleep(4.9)
        assert not progress.update(490, describe)
        clock.sleep(0.1)
        assert progress.update(500, describe)  # 500 events in 5 s
        clock.sleep(1)
        assert not progress.update(2000, describe)
        clock.sleep(9)
        assert progress.update(3500, describe)  # 3000 more in the last 10 s
    assert calls == [100.0, 300.0]
    assert [r.getMessage() for r in caplog.records] == [
        "tap-x progress: 100 events/s",
        "tap-x progress: 300 events/s",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    assert progress.elapsed() == pytest.approx(15)


def test_default_interval_is_a_few_seconds() -> None:
    assert 2 <= INTERVAL_S <= 10


def test_summary_is_one_parseable_json_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER.name):
        logged = log_summary_json(LOGGER, "target-x", {"imported": 3, "by": {"a": 1}, "ok": True})
    (record,) = caplog.records
    assert json.loads(record.getMessage()) == logged
    assert logged == {
        "event": "run_summary",
        "plugin": "target-x",
        "imported": 3,
        "by": {"a": 1},
        "ok": True,
    }


def test_summaries_are_found_whatever_surrounds_them() -> None:
    one = json.dumps({"event": "run_summary", "plugin": "tap-x", "files": {"read": 2}})
    two = json.dumps({"event": "run_summary", "plugin": "target-y", "sent": 1})
    log = (
        f"2026-12-01T10:00:00Z [info     ] {one} cmd_type=elb name=tap-x\n"
        "2026-12-01T10:00:01Z [info     ] other line {not json\n"
        f"INFO | target-y | {two}\n"
    )
    assert summaries(log) == [json.loads(one), json.loads(two)]
    assert summaries(log, "target-y") == [json.loads(two)]
    assert summaries("no summary here") == []
