"""A thread-safe request budget shared by every sender thread: N requests per window seconds.

Braze allows 3,000 ``/users/track`` requests per 3 seconds per workspace. The limiter keeps the
start times of the last N requests and makes a caller wait until the oldest one leaves the window.
A 429 (or an ``X-RateLimit-Remaining: 0`` answer) pauses every thread until Braze's reset time.
"""

from __future__ import annotations

import collections
import threading

from braze_mixpanel_common.retry import Clock, SystemClock


class RateLimiter:
    """Sliding-window limiter: at most ``limit`` acquisitions in any ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Clock | None = None) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.clock = clock or SystemClock()
        self._stamps: collections.deque[float] = collections.deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        """Block until one more request fits in the budget, then count it."""
        while True:
            with self._lock:
                now = self.clock.monotonic()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._stamps) >= self.limit:
                    wait = self.window - (now - self._stamps[0])
                if wait <= 0:
                    self._stamps.append(now)
                    return
                self.waited += wait
            self.clock.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (after a 429 or an exhausted budget)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self.clock.monotonic() + seconds
            self._paused_until = max(self._paused_until, until)
