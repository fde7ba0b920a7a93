"""Run counters behind the end-of-run summary (imported, skipped by reason, truncated, ...)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class RunStats:
    """Counters for one run.

    Mapping counters are touched by the reader thread only; the sending counters go through
    :meth:`add`, which is thread-safe.
    """

    started: float = field(default_factory=time.monotonic)
    records_in: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    truncated_strings: int = 0
    dropped_properties: int = 0
    invalid_properties_json: int = 0
    imported: int = 0
    dead_lettered: int = 0
    retries: int = 0
    waited_s: float = 0.0
    requests: int = 0
    splits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        """Add to sending counters from any thread."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        """One log line with every counter and the throughput."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"records={self.records_in} imported={self.imported} "
            f"skipped={sum(self.skipped.values())} ({skipped}) "
            f"truncated_strings={self.truncated_strings} "
            f"dropped_properties={self.dropped_properties} "
            f"invalid_properties_json={self.invalid_properties_json} "
            f"dead_lettered={self.dead_lettered} requests={self.requests} "
            f"retries={self.retries} waited_s={self.waited_s:.1f} split_413={self.splits} "
            f"elapsed_s={elapsed:.1f} events_per_s={self.imported / elapsed:.0f}"
        )
