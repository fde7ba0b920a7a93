"""Source 'query': larger engage pages (page_size) and the follow-up-page budget rule."""

from __future__ import annotations

import logging

import pytest

from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers
from tests.support.cohorts import config_for, records, run_tap

BIG = 12_000


@pytest.fixture
def big_emulator(make_emulator):
    def factory(**kwargs):
        cohort = Cohort(
            9, "Huge", "", "2024-01-01 00:00:00", 1, GeneratedMembers(count=BIG, prefix="h-")
        )
        return make_emulator([cohort], **kwargs)

    return factory


def test_default_page_size_sends_no_parameter(big_emulator, clock):
    """The documented path is unchanged: no page_size is sent, Mixpanel's 1000 is served."""
    emulator = big_emulator()
    tap = run_tap(config_for(emulator, cohort_ids=[9]), clock)
    assert len(records(tap, "cohort_members")) == BIG
    assert "page_size" not in emulator.last_form
    assert emulator.pages_served[9] == 13  # 12 full pages + 1 empty


def test_a_larger_page_size_is_asked_for_and_used(big_emulator, clock, caplog):
    caplog.set_level(logging.INFO)
    emulator = big_emulator()
    tap = run_tap(config_for(emulator, cohort_ids=[9], page_size=5000), clock)
    members = records(tap, "cohort_members")
    assert len({m["distinct_id"] for m in members}) == BIG
    assert emulator.last_form["page_size"] == "5000"
    assert emulator.pages_served[9] == 3  # 5000 + 5000 + 2000
    assert "3 pages, 3 queries used" in caplog.text


def test_a_page_size_above_the_served_cap_fails_clearly(big_emulator, clock):
    emulator = big_emulator(max_page_size=2000)
    with pytest.raises(Exception, match="page_size must be an integer between 1 and 2000"):
        run_tap(config_for(emulator, cohort_ids=[9], page_size=5000), clock)


def test_follow_up_pages_count_by_default(big_emulator, clock, caplog):
    """The documented rule: 13 pages under a 5/hour budget wait about two hours."""
    caplog.set_level(logging.INFO)
    emulator = big_emulator(max_queries_per_hour=5)
    t0 = clock.monotonic()
    tap = run_tap(config_for(emulator, cohort_ids=[9], max_queries_per_hour=5), clock)
    assert len(records(tap, "cohort_members")) == BIG
    assert emulator.rate_limited_count == 0
    assert clock.monotonic() - t0 >= 2 * 3600
    assert "13 pages, 13 queries used" in caplog.text


def test_follow_up_pages_uncounted_when_asked(big_emulator, clock, caplog):
    """count_follow_up_pages false against a Mixpanel that counts first pages only: no wait."""
    caplog.set_level(logging.INFO)
    emulator = big_emulator(max_queries_per_hour=5, count_follow_up_pages=False)
    t0 = clock.monotonic()
    config = config_for(
        emulator, cohort_ids=[9], max_queries_per_hour=5, count_follow_up_pages=False
    )
    tap = run_tap(config, clock)
    assert len(records(tap, "cohort_members")) == BIG
    assert emulator.rate_limited_count == 0
    assert clock.monotonic() - t0 < 60
    assert "13 pages, 1 queries used" in caplog.text


def test_uncounted_follow_ups_against_a_counting_mixpanel_are_outlasted(big_emulator, clock):
    """If Mixpanel does count follow-ups after all, its 429s are retried and nothing is lost."""
    emulator = big_emulator(max_queries_per_hour=5)
    config = config_for(
        emulator, cohort_ids=[9], max_queries_per_hour=5, count_follow_up_pages=False
    )
    tap = run_tap(config, clock)
    assert len({m["distinct_id"] for m in records(tap, "cohort_members")}) == BIG
    assert emulator.rate_limited_count > 0
