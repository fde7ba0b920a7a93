"""Where time comes from: :class:`SystemClock` in production; tests inject a fake clock.

Every wait of the delivery layer (backoff, rate limits, checkpoints) goes through a
:class:`Clock`, so tests run hours of waiting in milliseconds.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of time and of sleeping."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (wall clock)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:  # noqa: D102
        return time.monotonic()

    def time(self) -> float:  # noqa: D102
        return time.time()

    def sleep(self, seconds: float) -> None:  # noqa: D102
        if seconds > 0:
            time.sleep(seconds)
