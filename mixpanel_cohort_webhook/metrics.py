"""Prometheus metrics of the receiver, served at ``GET /metrics`` (docs/cohort-webhook.md).

Each app has a registry of its own (not prometheus_client's global one), so two receivers in one
process, or a test, never share counters. Label values are bounded: ``action`` is one of
Mixpanel's three actions or ``unknown`` (a refused body may say anything), ``status`` an HTTP
status, ``cohort_id`` only from pages that passed validation (the project's cohorts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from braze_mixpanel_common.cohort_spool import ACTIONS

__all__ = ["CONTENT_TYPE", "ReceiverMetrics"]

PREFIX = "mixpanel_cohort_webhook"
# Spool writes: a local disk takes milliseconds, an object store tens to hundreds; Mixpanel
# gives up on a delivery after some seconds, so the buckets reach past that.
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def action_label(action: Any) -> str:
    """``action`` when it is one of Mixpanel's, else ``unknown`` (bounded label values)."""
    return action if isinstance(action, str) and action in ACTIONS else "unknown"


class ReceiverMetrics:
    """The receiver's counters, histogram and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accepted = Counter(
            f"{PREFIX}_pages_accepted",
            "Pages answered 200 (stored, or already stored), by action.",
            ["action"],
            registry=self.registry,
        )
        self.refused = Counter(
            f"{PREFIX}_pages_refused",
            "Deliveries not stored, by action (unknown when unreadable) and HTTP status.",
            ["action", "status"],
            registry=self.registry,
        )
        self.members = Counter(
            f"{PREFIX}_members_received",
            "Members in accepted pages, by action.",
            ["action"],
            registry=self.registry,
        )
        self.bytes = Counter(
            f"{PREFIX}_received_bytes",
            "Body bytes read from deliveries (accepted or not).",
            registry=self.registry,
        )
        self.spool_write = Histogram(
            f"{PREFIX}_spool_write_seconds",
            "Seconds to write one page to the spool (successful writes).",
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.spool_errors = Counter(
            f"{PREFIX}_spool_errors",
            "Spool writes that failed (the delivery was answered 503).",
            registry=self.registry,
        )
        self.last_accepted = Gauge(
            f"{PREFIX}_last_accepted_page_timestamp_seconds",
            "Unix time of the last accepted page, per cohort.",
            ["cohort_id"],
            registry=self.registry,
        )

    def page_accepted(self, action: str, cohort_id: Any, members: int, at: datetime) -> None:
        """Count an accepted page and note when its cohort last delivered."""
        label = action_label(action)
        self.accepted.labels(label).inc()
        self.members.labels(label).inc(members)
        self.last_accepted.labels(str(cohort_id)).set(at.timestamp())

    def page_refused(self, action: Any, status: int) -> None:
        """Count a delivery answered with ``status`` (not stored)."""
        self.refused.labels(action_label(action), str(status)).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
