"""Run counters behind the end-of-run summary (imported, skipped by reason, truncated, ...)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from braze_mixpanel_common.counters import Counters


@dataclass
class RunStats:
    """Counters for one run.

    The mapping counters are plain fields: only the reader thread touches them, once per record,
    so they take no lock. The sending counters (``requests``, ``retries``, ``waited_s``,
    ``imported``, ``dead_lettered``, ``splits``) live in the thread-safe :attr:`sending`, which
    the HTTP caller adds its requests, retries and waits to.
    """

    started: float = field(default_factory=time.monotonic)
    records_in: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    truncated_strings: int = 0
    dropped_properties: int = 0
    invalid_properties_json: int = 0
    sending: Counters = field(default_factory=Counters)

    @property
    def imported(self) -> int:
        """Events Mixpanel confirmed."""
        return int(self.sending["imported"])

    @property
    def dead_lettered(self) -> int:
        """Records written to the dead-letter file."""
        return int(self.sending["dead_lettered"])

    @property
    def requests(self) -> int:
        """/import requests answered."""
        return int(self.sending["requests"])

    @property
    def retries(self) -> int:
        """Requests sent again after a transient failure."""
        return int(self.sending["retries"])

    @property
    def waited_s(self) -> float:
        """Seconds spent waiting before retries."""
        return self.sending["waited_s"]

    @property
    def splits(self) -> int:
        """Batches split in two after a 413."""
        return int(self.sending["splits"])

    def summary(self) -> str:
        """One log line with every counter and the throughput."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        imported = self.imported
        return (
            f"records={self.records_in} imported={imported} "
            f"skipped={sum(self.skipped.values())} ({skipped}) "
            f"truncated_strings={self.truncated_strings} "
            f"dropped_properties={self.dropped_properties} "
            f"invalid_properties_json={self.invalid_properties_json} "
            f"dead_lettered={self.dead_lettered} requests={self.requests} "
            f"retries={self.retries} waited_s={self.waited_s:.1f} split_413={self.splits} "
            f"elapsed_s={elapsed:.1f} events_per_s={imported / elapsed:.0f}"
        )
