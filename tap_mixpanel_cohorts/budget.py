"""The query budget: Mixpanel allows 60 queries per sliding hour and 5 at once per project.

Every request the tap sends (``cohorts/list``, each ``engage`` page, each retry) takes one slot.
When the hourly budget is spent the tap waits, on an injectable clock, until the oldest query
leaves the window, and logs when it will continue and how much work remains.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from braze_mixpanel_common.retry import Clock

WINDOW_SECONDS = 3600.0


class QueryBudget:
    """A thread-safe sliding-window limiter with a cap on concurrent queries.

    Args:
        max_per_hour: queries allowed in any sliding window of ``window`` seconds.
        max_concurrent: queries allowed in flight at once.
        clock: time source; a fake clock makes the waits instant in tests.
        logger: where waits are announced.
        window: window length in seconds (an hour).
    """

    def __init__(
        self,
        max_per_hour: int,
        max_concurrent: int,
        clock: Clock,
        logger: logging.Logger,
        window: float = WINDOW_SECONDS,
    ) -> None:
        if max_per_hour < 1:
            raise ValueError("max_per_hour must be >= 1")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.max_per_hour = max_per_hour
        self.max_concurrent = max_concurrent
        self.clock = clock
        self.logger = logger
        self.window = window
        self.used = 0
        self.waited_seconds = 0.0
        self._starts: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._cond = threading.Condition()

    def _prune(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()

    def acquire(self, remaining: Callable[[], str] | None = None) -> None:
        """Block until a query may start, then count it.

        Args:
            remaining: describes the work left (e.g. "about 40 pages remain"); called only when
                the tap has to wait, for the log line.
        """
        with self._cond:
            while True:
                now = self.clock.monotonic()
                self._prune(now)
                if self._in_flight >= self.max_concurrent:
                    self._cond.wait(timeout=1.0)
                    continue
                if len(self._starts) < self.max_per_hour:
                    self._starts.append(now)
                    self._in_flight += 1
                    self.used += 1
                    return
                wait = self._starts[0] + self.window - now
                resume = datetime.fromtimestamp(self.clock.time() + wait, tz=UTC)
                self.logger.info(
                    "Query budget spent (%d queries in the last hour, the limit set by "
                    "'max_queries_per_hour'): waiting %.0f s, continuing at %s%s.",
                    len(self._starts),
                    wait,
                    resume.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"; {remaining()}" if remaining else "",
                )
                self.waited_seconds += wait
                # Sleep without the lock so other threads can finish and release their slots.
                self._cond.release()
                try:
                    self.clock.sleep(wait)
                finally:
                    self._cond.acquire()

    def release(self) -> None:
        """Mark a query as finished (its slot in the hourly window stays taken)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()

    @contextmanager
    def query(self, remaining: Callable[[], str] | None = None) -> Iterator[None]:
        """Hold one query slot for the duration of the block."""
        self.acquire(remaining)
        try:
            yield
        finally:
            self.release()

    @property
    def in_flight(self) -> int:
        """Queries currently running."""
        with self._cond:
            return self._in_flight
