"""Thread-safe run counters (requests, retries, seconds waited, ...) behind end-of-run summaries."""

from __future__ import annotations

import threading


class Counters:
    """Named numbers that any thread may add to; a missing name reads as 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def add(self, **amounts: float) -> None:
        """Add each amount to its counter."""
        with self._lock:
            for name, amount in amounts.items():
                self._values[name] = self._values.get(name, 0) + amount

    def __getitem__(self, name: str) -> float:
        with self._lock:
            return self._values.get(name, 0)

    def as_dict(self) -> dict[str, float]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._values)
