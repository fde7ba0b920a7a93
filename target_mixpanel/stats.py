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
    event_name_fallbacks: int = 0
    """Records whose ``event_name_field`` was missing or empty (named by the fallback)."""
    sending: Counters = field(default_factory=Counters)

    def summary(self) -> str:
        """One log line with every counter and the throughput."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
        sent = self.sending
        imported = int(sent["imported"])
        return (
            f"records={self.records_in} imported={imported} "
            f"skipped={sum(self.skipped.values())} ({skipped}) "
            f"truncated_strings={self.truncated_strings} "
            f"dropped_properties={self.dropped_properties} "
            f"invalid_properties_json={self.invalid_properties_json} "
            f"event_name_fallbacks={self.event_name_fallbacks} "
            f"dead_lettered={sent['dead_lettered']:.0f} requests={sent['requests']:.0f} "
            f"retries={sent['retries']:.0f} waited_s={sent['waited_s']:.1f} "
            f"waited_429_s={sent['waited_429_s']:.1f} waited_5xx_s={sent['waited_5xx_s']:.1f} "
            f"waited_network_s={sent['waited_network_s']:.1f} "
            f"split_413={sent['splits']:.0f} "
            f"elapsed_s={elapsed:.1f} events_per_s={imported / elapsed:.0f}"
        )
