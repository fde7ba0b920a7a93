"""target-mixpanel's progress line (events sent / confirmed, events/s) and JSON summary."""

from __future__ import annotations

import logging

from braze_mixpanel_common.progress import Progress, summaries
from target_mixpanel.stats import RunStats
from tests.support.clock import FakeClock
from tests.support.mixpanel import currents_record, record_msg, sa_config, schema_msg

CUSTOM = "users_behaviors_customevent"


def test_progress_counts_events_sent_and_confirmed_once_per_batch(caplog) -> None:
    clock = FakeClock()
    logger = logging.getLogger("target-mixpanel")
    stats = RunStats(progress=Progress(logger, "target-mixpanel", clock=clock))
    with caplog.at_level(logging.INFO, logger="target-mixpanel"):
        stats.batch_sent(2000)  # no line before the interval
        stats.sending.add(imported=2000, requests=1)
        clock.sleep(5)
        stats.batch_sent(2000)
        stats.sending.add(imported=1500, requests=2, retries=1, waited_s=2.5)
        clock.sleep(5)
        stats.batch_sent(1000)
    assert [r.getMessage() for r in caplog.records] == [
        "target-mixpanel progress: 4000 events sent, 2000 confirmed, 400 events/s, "
        "1 requests (0 retries, 0.0 s waited)",
        "target-mixpanel progress: 5000 events sent, 3500 confirmed, 300 events/s, "
        "3 requests (1 retries, 2.5 s waited)",
    ]


def test_end_of_run_summary_is_also_one_json_line(emulator, run_target, caplog) -> None:
    messages = [schema_msg(CUSTOM)] + [record_msg(CUSTOM, currents_record(i)) for i in range(7)]
    messages.append(record_msg(CUSTOM, currents_record(7, external_user_id=None)))
    with caplog.at_level(logging.INFO):
        run = run_target(sa_config(emulator.url, batch_size=3), messages)
    (summary,) = summaries(caplog.text, "target-mixpanel")
    assert summary["imported"] == 7 == run.stats.sending["imported"]
    assert summary["records"] == 8 and summary["skipped"] == 1
    assert summary["skipped_by_reason"] == {"no_external_user_id": 1}
    assert summary["requests"] == 3 and summary["retries"] == 0
    assert set(summary) >= {"elapsed_s", "events_per_s", "dead_lettered", "waited_s"}
    assert f"target-mixpanel summary: {run.stats.summary().split(' elapsed_s')[0]}" in caplog.text
