"""What one run knows about each stream: staged snapshot, diff plan and confirmed figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from target_braze.ledger.diff import Plan


@dataclass
class CohortCounts:
    """Confirmed and skipped figures of one cohort in one run."""

    name: str = ""
    added: int = 0
    removed: int = 0
    rejected: int = 0
    skipped: int = 0


@dataclass
class StreamRun:
    """A membership stream's state within the run.

    Attributes:
        stream: the stream name.
        ns: its ledger namespace.
        complete: ACTIVATE_VERSION arrived after the last record (removals may be sent).
        records: membership records read.
        buffer: ``(external_id, cohort_id, name)`` rows not yet staged in the ledger.
        names: the current name of every cohort seen.
        counts: per-cohort figures.
        plan: the diff against the ledger, once computed.
        change_records: the stream carries change records (``cohort_member_changes``), not
            snapshots.
        delta: change rows ``(seq, external_id, cohort_id, name, op, session)`` not yet staged.
        scoped: one-cohort snapshots (the schema has ``session_id``): a snapshot replaces only
            the cohorts it covers.
        open_cohorts: scoped: cohorts with records since the last ACTIVATE_VERSION.
        complete_cohorts: scoped: cohorts whose snapshot ended with ACTIVATE_VERSION.
    """

    stream: str
    ns: int
    complete: bool = False
    records: int = 0
    buffer: list[tuple[str, str, str]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    counts: dict[str, CohortCounts] = field(default_factory=dict)
    plan: Plan | None = None
    change_records: bool = False
    delta: list[tuple[int, str, str, str, int, str]] = field(default_factory=list)
    scoped: bool = False
    open_cohorts: set[str] = field(default_factory=set)
    complete_cohorts: set[str] = field(default_factory=set)

    def cohort(self, cohort_id: str) -> CohortCounts:
        """Counters of ``cohort_id`` (created on first use)."""
        counts = self.counts.get(cohort_id)
        if counts is None:
            counts = self.counts[cohort_id] = CohortCounts(self.names.get(cohort_id, ""))
        return counts


@dataclass
class UpsertCounts:
    """Figures of a stream upserted as plain attributes."""

    sent: int = 0
    rejected: int = 0
    skipped: int = 0
