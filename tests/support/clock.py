"""A fake clock for the plugins' injected :class:`~braze_mixpanel_common.retry.Clock`."""

from __future__ import annotations

import threading


class FakeClock:
    """A clock whose ``sleep`` advances time instantly; records every sleep. Thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake time (one clock serves as both monotonic and wall clock)."""
        with self._lock:
            return self._now

    def time(self) -> float:
        """The fake time, as seconds since the epoch."""
        return self.monotonic()

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance the time by ``seconds`` (negative counts as 0)."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)
