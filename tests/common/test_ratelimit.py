"""The one rate limiter: sliding window, in-flight cap, shared pause, on a fake clock."""

from __future__ import annotations

import threading
import time

import pytest

from braze_mixpanel_common.ratelimit import RateLimiter
from tests.support.clock import FakeClock


def test_window_admits_limit_calls_then_waits_for_the_oldest_to_leave():
    clock = FakeClock()
    waits: list[float] = []
    limiter = RateLimiter(3, 10.0, clock=clock, on_wait=waits.append)
    starts = []
    for _ in range(7):
        with limiter.slot():
            starts.append(clock.monotonic() - 1_700_000_000.0)
        clock.sleep(1)  # each call takes a second
    assert starts == [0, 1, 2, 10, 11, 12, 20]
    assert waits == [7, 7]
    assert limiter.used == 7 and limiter.waited == 14


def test_any_window_holds_at_most_limit_starts():
    clock = FakeClock()
    limiter = RateLimiter(60, 3600.0, clock=clock)
    starts = []
    for _ in range(200):
        limiter.acquire()
        starts.append(clock.monotonic())
        limiter.release()
        clock.sleep(13)
    for i, start in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < start + 3600) <= 60


def test_pause_holds_every_caller():
    clock = FakeClock()
    limiter = RateLimiter(100, 1.0, clock=clock)
    limiter.pause(30)
    begin = clock.monotonic()
    limiter.acquire()
    assert clock.monotonic() - begin == pytest.approx(30)


def test_in_flight_cap_blocks_until_a_slot_is_released():
    limiter = RateLimiter(100, 1.0, max_in_flight=2)
    limiter.acquire()
    limiter.acquire()
    entered = threading.Event()

    def third() -> None:
        with limiter.slot():
            entered.set()

    thread = threading.Thread(target=third)
    thread.start()
    time.sleep(0.2)
    assert not entered.is_set() and limiter.in_flight == 2
    limiter.release()
    assert entered.wait(5)
    thread.join(5)
    limiter.release()
    assert limiter.in_flight == 0


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        RateLimiter(0, 1.0)
    with pytest.raises(ValueError):
        RateLimiter(1, 1.0, max_in_flight=0)


def test_uncounted_calls_skip_the_window_but_keep_the_in_flight_cap():
    """A call the budget does not count (an engage follow-up page) never waits for the window."""
    clock = FakeClock(start=0.0)
    limiter = RateLimiter(1, 3600.0, max_in_flight=1, clock=clock)
    with limiter.slot():
        pass
    for _ in range(5):
        with limiter.slot(counted=False):
            assert limiter.in_flight == 1
    assert limiter.used == 1
    assert clock.monotonic() == 0.0
    with limiter.slot():  # the next counted call waits for the first to leave the hour
        pass
    assert clock.monotonic() == 3600.0
