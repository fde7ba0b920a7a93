"""The query budget (sliding hour + concurrency) and 429 recovery, all on a fake clock."""

from __future__ import annotations

import logging
import threading

import pytest

from braze_mixpanel_common.ratelimit import RateLimiter
from braze_mixpanel_common.settings import ConfigView
from sandbox.emulators.server import Faults
from tap_mixpanel_cohorts.client import BUDGET_WINDOW_SECONDS, MixpanelQueryClient
from tap_mixpanel_cohorts.settings import CONFIG_SCHEMA, Settings
from tests.support.clock import FakeClock
from tests.support.cohorts import config_for, records, run_tap

LOG = logging.getLogger("test-budget")


def max_in_any_hour(starts: list[float]) -> int:
    starts = sorted(starts)
    best = 0
    for i, start in enumerate(starts):
        best = max(best, sum(1 for s in starts[i:] if s < start + 3600.0))
    return best


def test_sliding_window_waits_for_the_oldest_query(caplog):
    caplog.set_level(logging.INFO)
    clock = FakeClock(start=0.0)
    config = {"api_secret": "x" * 8, "max_queries_per_hour": 3}
    settings = Settings.from_config(ConfigView(config, CONFIG_SCHEMA), LOG)
    client = MixpanelQueryClient(settings, LOG, clock=clock)
    budget = client.limiter
    starts = []
    for n in range(7):
        client.remaining = lambda n=n: f"{7 - n} pages remain"
        with budget.slot():
            starts.append(clock.monotonic())
        clock.sleep(10)  # each query is 10 s apart
    assert budget.used == 7
    assert max_in_any_hour(starts) == 3
    # Query 4 waits until query 1 (t=0) leaves the window at t=3600.
    assert starts[3] == pytest.approx(3600.0)
    assert starts[6] == pytest.approx(7200.0)
    assert "continuing at 1970-01-01T01:00:00Z; 4 pages remain" in caplog.text


def test_concurrency_is_capped():
    budget = RateLimiter(1000, BUDGET_WINDOW_SECONDS, max_in_flight=2, clock=FakeClock())
    peak = 0
    running = 0
    changed = threading.Condition()
    gate = threading.Event()  # holds the queries in flight until two are (no sleep that hopes)

    def work():
        nonlocal peak, running
        with budget.slot():
            with changed:
                running += 1
                peak = max(peak, running)
                changed.notify_all()
            gate.wait(30)
            with changed:
                running -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    with changed:
        assert changed.wait_for(lambda: running == 2, timeout=30)
    assert budget.in_flight == 2
    gate.set()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert budget.used == 8
    assert budget.in_flight == 0


def test_budget_rejects_nonsense():
    with pytest.raises(ValueError):
        RateLimiter(0, BUDGET_WINDOW_SECONDS, max_in_flight=5, clock=FakeClock())


def test_tap_never_exceeds_the_hourly_budget(make_emulator, clock, caplog):
    """25 engage pages under a 10/hour budget: the tap waits instead of drawing 429s."""
    caplog.set_level(logging.INFO)
    emulator = make_emulator(page_size=100, max_queries_per_hour=10)
    starts: list[float] = []
    emulator.on_query = lambda request: starts.append(clock.monotonic())
    tap = run_tap(config_for(emulator, cohort_ids=[2], max_queries_per_hour=10), clock)
    assert len(records(tap, "cohort_members")) == 2500
    assert emulator.rate_limited_count == 0
    assert len(starts) == 27  # cohorts/list + 26 engage pages
    assert max_in_any_hour(starts) == 10
    assert sum(clock.sleeps) >= 2 * 3600
    assert "Query budget spent (10 queries in the last hour" in caplog.text
    assert "page(s) remain for cohort 2" in caplog.text
    assert "26 pages, 26 queries used" in caplog.text


def test_default_budget_takes_about_an_hour_per_60_pages(make_emulator, clock):
    """The default budget (60/hour) on a 100-page cohort: the second hour starts after 3600 s."""
    emulator = make_emulator(page_size=25)  # 2,500 members = 100 full pages + 1 empty
    t0 = clock.monotonic()
    run_tap(config_for(emulator, cohort_ids=[2]), clock)
    assert emulator.pages_served[2] == 101
    assert emulator.rate_limited_count == 0
    elapsed = clock.monotonic() - t0
    assert 3600 <= elapsed < 3700


def test_429_answers_are_retried_with_backoff(make_emulator, clock, caplog):
    emulator = make_emulator(page_size=250, faults=Faults(rate_429=0.3, seed=7))
    tap = run_tap(config_for(emulator, cohort_ids=[2]), clock)
    members = records(tap, "cohort_members")
    assert len({m["distinct_id"] for m in members}) == 2500
    assert emulator.faults_injected.get("429", 0) > 0
    assert ": 429 (Query rate limit exceeded" in caplog.text
    assert min(clock.sleeps) >= 30  # the query API backs off in half-minutes


def test_429_from_a_project_budget_spent_elsewhere_is_outlasted(make_emulator, clock):
    """The server allows 60/hour but the tap was told 100: real 429s, then recovery."""
    emulator = make_emulator(page_size=25)
    tap = run_tap(config_for(emulator, cohort_ids=[2], max_queries_per_hour=100), clock)
    assert len(records(tap, "cohort_members")) == 2500
    assert emulator.rate_limited_count > 0


def test_5xx_and_resets_are_retried(make_emulator, clock):
    emulator = make_emulator(page_size=250, faults=Faults(rate_5xx=0.2, rate_reset=0.1, seed=3))
    tap = run_tap(config_for(emulator, cohort_ids=[1, 2]), clock)
    assert len(records(tap, "cohort_members")) == 2504
    assert emulator.faults_injected.get("5xx", 0) + emulator.faults_injected.get("reset", 0) > 0
