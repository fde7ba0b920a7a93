"""Fixtures: the query-API emulator on a shared fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.emulators.mixpanel_query import Cohort, MixpanelQueryEmulator
from tests.support.clock import FakeClock
from tests.support.cohorts import API_SECRET, PROFILES, SA_SECRET, SA_USER, standard_cohorts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_emulator(clock: FakeClock) -> Iterator[Callable[..., MixpanelQueryEmulator]]:
    started: list[MixpanelQueryEmulator] = []

    def factory(cohorts: list[Cohort] | None = None, **kwargs: Any) -> MixpanelQueryEmulator:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("service_accounts", {SA_USER: SA_SECRET})
        kwargs.setdefault("api_secret", API_SECRET)
        emulator = MixpanelQueryEmulator(
            standard_cohorts() if cohorts is None else cohorts,
            kwargs.pop("profiles", PROFILES),
            **kwargs,
        )
        started.append(emulator.start())
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., MixpanelQueryEmulator]) -> MixpanelQueryEmulator:
    return make_emulator()
