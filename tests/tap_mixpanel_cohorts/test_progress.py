"""tap-mixpanel-cohorts: progress (members, pages, budget wait) and the JSON summary."""

from __future__ import annotations

import logging
import re

from braze_mixpanel_common.progress import summaries
from tests.support.cohorts import config_for, records, run_tap


def test_budget_waits_show_in_progress_and_summary(make_emulator, clock, caplog):
    """26 pages under a 10/hour budget: hours pass on the fake clock, progress lines follow."""
    caplog.set_level(logging.INFO)
    emulator = make_emulator(page_size=100, max_queries_per_hour=10)
    tap = run_tap(config_for(emulator, cohort_ids=[2], max_queries_per_hour=10), clock)
    members = len(records(tap, "cohort_members"))
    lines = [r.getMessage() for r in caplog.records if " progress: " in r.getMessage()]
    # the budget spends an hour twice: a line after each wait, never one per page
    assert 2 <= len(lines) < 26, lines
    pattern = re.compile(
        r"tap-mixpanel-cohorts progress: cohort 2 \(1/1\): (\d+) members so far; run: (\d+) "
        r"pages, \d+ members/s, (\d+) s waited for the query budget"
    )
    found = [pattern.fullmatch(line) for line in lines]
    assert all(found), lines
    waited = [int(m.group(3)) for m in found if m]
    assert waited == sorted(waited) and waited[-1] >= 3600
    (summary,) = summaries(caplog.text, "tap-mixpanel-cohorts")
    assert summary["members"] == members == 2500
    assert summary["skipped"] == 0 and summary["pages"] == 26 and summary["cohorts"] == 1
    assert summary["waited_budget_s"] >= 2 * 3600 - 60
    assert summary["queries"] == 26 and summary["queries_with_cohorts_list"] == 27
