"""Run counters behind the end-of-run summary (imported, skipped by reason, truncated, ...)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from braze_mixpanel_common.counters import Counters
from braze_mixpanel_common.progress import Progress

PLUGIN = "target-mixpanel"


@dataclass
class RunStats:
    """Counters for one run.

    The mapping counters are plain fields: only the reader thread touches them, once per record,
    so they take no lock. The sending counters (``requests``, ``retries``, ``waited_s``,
    ``imported``, ``dead_lettered``, ``splits``) live in the thread-safe :attr:`sending`, which
    the HTTP caller adds its requests, retries and waits to. :attr:`progress` logs events sent
    and confirmed every few seconds, checked once per batch (:meth:`batch_sent`).
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
    progress: Progress = field(default_factory=lambda: Progress(logging.getLogger(PLUGIN), PLUGIN))

    def batch_sent(self, events: int) -> None:
        """Count a batch of ``events`` handed to a request; maybe log a progress line."""
        self.sending.add(sent=events)
        sending = self.sending
        self.progress.update(
            sending["imported"],
            lambda rate: (
                f"{sending['sent']:.0f} events sent, {sending['imported']:.0f} confirmed, "
                f"{rate:.0f} events/s, {sending['requests']:.0f} requests "
                f"({sending['retries']:.0f} retries, {sending['waited_s']:.1f} s waited)"
            ),
        )

    def figures(self) -> dict[str, Any]:
        """Every counter and the throughput (the JSON summary's fields)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        sent = self.sending
        imported = int(sent["imported"])
        return {
            "records": self.records_in,
            "imported": imported,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "truncated_strings": self.truncated_strings,
            "dropped_properties": self.dropped_properties,
            "invalid_properties_json": self.invalid_properties_json,
            "event_name_fallbacks": self.event_name_fallbacks,
            "dead_lettered": int(sent["dead_lettered"]),
            "requests": int(sent["requests"]),
            "retries": int(sent["retries"]),
            "waited_s": round(sent["waited_s"], 3),
            "waited_429_s": round(sent["waited_429_s"], 3),
            "waited_5xx_s": round(sent["waited_5xx_s"], 3),
            "waited_network_s": round(sent["waited_network_s"], 3),
            "split_413": int(sent["splits"]),
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(imported / elapsed, 1),
        }

    def summary(self) -> str:
        """One log line with every counter and the throughput."""
        f = self.figures()
        skipped = ", ".join(f"{k}={v}" for k, v in f["skipped_by_reason"].items()) or "none"
        return (
            f"records={f['records']} imported={f['imported']} "
            f"skipped={f['skipped']} ({skipped}) "
            f"truncated_strings={f['truncated_strings']} "
            f"dropped_properties={f['dropped_properties']} "
            f"invalid_properties_json={f['invalid_properties_json']} "
            f"event_name_fallbacks={f['event_name_fallbacks']} "
            f"dead_lettered={f['dead_lettered']} requests={f['requests']} "
            f"retries={f['retries']} waited_s={f['waited_s']:.1f} "
            f"waited_429_s={f['waited_429_s']:.1f} waited_5xx_s={f['waited_5xx_s']:.1f} "
            f"waited_network_s={f['waited_network_s']:.1f} "
            f"split_413={f['split_413']} "
            f"elapsed_s={f['elapsed_s']:.1f} events_per_s={f['events_per_s']:.0f}"
        )
