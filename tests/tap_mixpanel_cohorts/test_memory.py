"""Memory stays flat with cohort size: members stream page by page (a `long` test)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers
from tap_mixpanel_cohorts.tap import TapMixpanelCohorts
from tests.support.cohorts import config_for


class CountingTap(TapMixpanelCohorts):
    """Counts the records it would write and keeps none of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.record_count = 0
        super().__init__(*args, **kwargs)

    def write_message(self, message: Any) -> None:
        data = message.to_dict()
        if data["type"] == "RECORD" and data["stream"] == "cohort_members":
            self.record_count += 1


def _peak(make_emulator, clock, members: int) -> int:
    emulator = make_emulator([Cohort(1, "Many", members=GeneratedMembers(members))])
    config = config_for(emulator, max_queries_per_hour=10_000)
    tap = CountingTap(config=config, parse_env_config=False, clock=clock)
    tracemalloc.start()
    try:
        tap.sync_all()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tap.record_count == members
    return peak


@pytest.mark.long
def test_peak_memory_does_not_grow_with_the_cohort(make_emulator, clock):
    small = _peak(make_emulator, clock, 10_000)
    large = _peak(make_emulator, clock, 200_000)
    # 20x the members; the peak is one page (1,000 members) plus fixed overhead either way.
    assert large < small * 1.5 + 2_000_000, (small, large)
