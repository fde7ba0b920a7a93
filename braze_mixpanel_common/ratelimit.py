"""One rate limiter for every client: a sliding window, an in-flight cap and a shared pause.

The window admits N calls; the optional cap bounds calls in flight; a pause holds every caller
(after a 429 or an exhausted budget).

Braze allows 3,000 ``/users/track`` requests per 3 s; Mixpanel's query API 60 queries per hour and
5 at once. Both are the same shape: the limiter keeps the start times of the last ``limit`` calls
and makes a caller wait until the oldest leaves the window. Waits happen on an injectable
:class:`~braze_mixpanel_common.clock.Clock`, never while holding the lock.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.counters import Counters


class RateLimiter:
    """At most ``limit`` calls start in any ``window`` seconds; at most ``max_in_flight`` at once.

    Args:
        limit: calls allowed per sliding window.
        window: window length in seconds.
        max_in_flight: calls allowed to run at once (None: no cap); needs :meth:`slot`.
        clock: time source (a fake clock in tests).
        on_wait: called with the seconds about to be waited when the window is full (for a log
            line); not called for pauses or the in-flight cap.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_in_flight: int | None = None,
        clock: Clock | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.limit = limit
        self.window = window
        self.max_in_flight = max_in_flight
        self.clock: Clock = clock or SystemClock()
        self.on_wait = on_wait
        self.used = 0
        """Calls started so far."""
        self.waited = 0.0
        """Seconds spent waiting for the window or a pause, added over every caller."""
        self._starts: collections.deque[float] = collections.deque()
        self._paused_until = 0.0
        self._pause_is_budget = False
        self._budget_counters: list[Counters] = []
        self._in_flight = 0
        self._cond = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Calls between :meth:`acquire` and :meth:`release`."""
        with self._cond:
            return self._in_flight

    def acquire(self, *, counted: bool = True) -> None:
        """Block until one more call fits, then count it (and hold an in-flight slot).

        Args:
            counted: False for a call the budget does not count (it still waits for pauses and
                the in-flight cap, but takes no place in the window).
        """
        with self._cond:
            while True:
                if self.max_in_flight is not None and self._in_flight >= self.max_in_flight:
                    self._cond.wait(timeout=1.0)
                    continue
                now = self.clock.monotonic()
                self._prune(now)
                wait = self._paused_until - now
                full = counted and wait <= 0 and len(self._starts) >= self.limit
                if full:
                    wait = self._starts[0] + self.window - now
                if wait <= 0:
                    if counted:
                        self._starts.append(now)
                        self.used += 1
                    self._in_flight += 1
                    return
                if full and self.on_wait is not None:
                    self.on_wait(wait)
                self.waited += wait
                if full or self._pause_is_budget:
                    for counters in self._budget_counters:
                        counters.add(waited_budget_s=wait)
                # Sleep without the lock so other callers can release their slots meanwhile.
                self._cond.release()
                try:
                    self.clock.sleep(wait)
                finally:
                    self._cond.acquire()

    def report_budget_to(self, counters: Counters) -> None:
        """Also add every budget wait to ``counters`` as ``waited_budget_s`` (run summaries)."""
        with self._cond:
            if all(c is not counters for c in self._budget_counters):
                self._budget_counters.append(counters)

    def release(self) -> None:
        """End a call started by :meth:`acquire` (its place in the window stays taken)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()

    @contextmanager
    def slot(self, *, counted: bool = True) -> Iterator[None]:
        """Hold one call's place for the duration of the block (see :meth:`acquire`)."""
        self.acquire(counted=counted)
        try:
            yield
        finally:
            self.release()

    def pause(self, seconds: float, *, budget: bool = True) -> None:
        """Hold every caller for ``seconds`` from now.

        ``budget`` says why, for :meth:`report_budget_to`: True when a server said the budget of
        its window is spent, False for a 429 backoff (which the HTTP caller counts itself).
        """
        if seconds <= 0:
            return
        with self._cond:
            until = self.clock.monotonic() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self._pause_is_budget = budget

    def _prune(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= self.window:
            self._starts.popleft()
