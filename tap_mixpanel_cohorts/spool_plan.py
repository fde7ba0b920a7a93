"""Source 'webhook': which spooled cycles of each cohort a run emits, and in what order.

Mixpanel syncs a cohort in *cycles* (``reference/mixpanel.md`` section 7): a full sync (one
``members`` delivery), or an ``add_members`` call followed by a ``remove_members`` call, empty
ones included. A cycle is all-or-nothing on Mixpanel's side: when it fails, Mixpanel keeps its last
successful snapshot and computes the next cycle against it. So the tap applies a cycle only once
every page of it is stored (then Mixpanel saw every page answered 200 and counted it successful),
and never any part of a cycle that did not complete.

Per cohort the spool lists *deliveries* (one action of one session) in arrival order; the tap's
state keeps a watermark per cohort, the order key of the last delivery consumed. The deliveries
after it are *pending*, and are grouped into cycles:

1. A ``members`` delivery is a cycle.
2. An ``add_members`` delivery and the ``remove_members`` delivery right after it are a cycle when
   they share a session id, or when the remove's session id has no ``add_members`` of its own
   (separate session ids, add before remove as in Mixpanel's worked example). Both orders are
   paired when they share a session id.
3. An ``add_members`` delivery followed by anything else lacks its ``remove_members``: the cycle
   failed before its second call (counted as ``add without remove``).
4. A ``remove_members`` delivery not paired by rule 2 is a cycle of its own (counted as
   ``remove without add``: the sender sent the calls the other way round, or only one).

Then, per cohort: cycles up to the last *complete* one are consumed, the cycles after it are *in
progress* (they wait, and hold nothing back but themselves). Among the consumed cycles, the last
complete ``members`` cycle supersedes every cycle before it; the remaining complete cycles are
emitted in order and the incomplete ones are *discarded as failed* (Mixpanel re-sends their
content, computed from the older snapshot, in a later cycle). The watermark moves to the last
delivery consumed, so a failed cycle is never read again and never holds a cohort back.

A cohort whose run starts with a ``members`` snapshot emits only that snapshot; the cycles after it
follow in the next run. The SDK syncs ``cohort_member_changes`` before ``cohort_members`` (streams
go by name), so this keeps every change after the snapshot it follows, and a run cut short can
never mark a snapshot consumed that was not emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from braze_mixpanel_common.cohort_spool import SessionInfo

MEMBERS = "members"
ADD = "add_members"
REMOVE = "remove_members"


@dataclass
class Cycle:
    """One sync cycle of one cohort as the spool holds it.

    Attributes:
        deliveries: a ``members`` delivery, or an add and a remove delivery (either may be
            alone, see the module's rules 3 and 4), in arrival order.
        lacks_remove: an ``add_members`` delivery followed by something other than its remove.
        lone_remove: a ``remove_members`` delivery that no add delivery pairs with.
    """

    deliveries: list[SessionInfo]
    lacks_remove: bool = False
    lone_remove: bool = False

    @property
    def complete(self) -> bool:
        """Every delivery has every page, and an ``add_members`` has its ``remove_members``."""
        has_end = any(d.action != ADD for d in self.deliveries)
        return has_end and all(d.complete for d in self.deliveries)

    @property
    def full(self) -> bool:
        """A ``members`` cycle (a whole snapshot)."""
        return self.deliveries[0].action == MEMBERS

    @property
    def last(self) -> SessionInfo:
        """The cycle's last delivery."""
        return self.deliveries[-1]


@dataclass
class CohortWork:
    """What one run does with one cohort's pending deliveries.

    Attributes:
        cohort_id: the cohort (as spooled, a string).
        snapshot: the complete ``members`` delivery to emit in ``cohort_members``, if any.
        changes: complete ``add_members`` / ``remove_members`` deliveries to emit, in order.
        waiting: cycles not consumed this run (in progress, or following a snapshot).
        superseded: cycles passed over because a later ``members`` cycle replaces them.
        failed: incomplete cycles discarded because a later cycle completed.
        lacks_remove: cycles (consumed or waiting) whose add has no remove after it.
        lone_removes: cycles (consumed or waiting) made of a remove alone.
        cycles: how many cycles this run emits.
        members_mark: the watermark ``cohort_members`` stores once its part is emitted.
        changes_mark: the watermark ``cohort_member_changes`` stores once its part is emitted.
    """

    cohort_id: str
    snapshot: SessionInfo | None = None
    changes: list[SessionInfo] = field(default_factory=list)
    waiting: list[Cycle] = field(default_factory=list)
    superseded: list[Cycle] = field(default_factory=list)
    failed: list[Cycle] = field(default_factory=list)
    lacks_remove: int = 0
    lone_removes: int = 0
    cycles: int = 0
    members_mark: str | None = None
    changes_mark: str | None = None

    @property
    def emitted(self) -> list[SessionInfo]:
        """The deliveries this run emits, in order."""
        return ([self.snapshot] if self.snapshot else []) + self.changes

    @property
    def in_progress(self) -> list[Cycle]:
        """Waiting cycles still missing a page or their remove call."""
        return [c for c in self.waiting if not c.complete]

    @property
    def incomplete(self) -> list[SessionInfo]:
        """Deliveries of waiting cycles still missing pages."""
        return [d for c in self.in_progress for d in c.deliveries if not d.complete]


def group_cycles(pending: list[SessionInfo], add_sessions: set[str]) -> list[Cycle]:
    """The module's rules 1-4 on a cohort's pending deliveries, in arrival order.

    ``add_sessions``: session ids with an ``add_members`` delivery anywhere in the cohort.
    """
    cycles: list[Cycle] = []
    index = 0
    while index < len(pending):
        delivery = pending[index]
        after = pending[index + 1] if index + 1 < len(pending) else None
        if delivery.action == MEMBERS:
            cycles.append(Cycle([delivery]))
        elif after is not None and _pair(delivery, after, add_sessions):
            cycles.append(Cycle([delivery, after]))
            index += 1
        elif delivery.action == ADD:
            cycles.append(Cycle([delivery], lacks_remove=after is not None))
        else:
            cycles.append(Cycle([delivery], lone_remove=True))
        index += 1
    return cycles


def _pair(first: SessionInfo, second: SessionInfo, add_sessions: set[str]) -> bool:
    if {first.action, second.action} != {ADD, REMOVE}:
        return False
    if first.session_id == second.session_id:
        return True
    return first.action == ADD and second.session_id not in add_sessions


def plan_cohort(
    cohort_id: str,
    sessions: list[SessionInfo],
    watermark: str | None,
    *,
    members_selected: bool,
    changes_selected: bool,
) -> CohortWork:
    """Apply the module's rules to one cohort's deliveries (in spool order).

    Args:
        cohort_id: the cohort.
        sessions: its deliveries, in spool order.
        watermark: the order key of the last delivery consumed, or None.
        members_selected: ``cohort_members`` is selected.
        changes_selected: ``cohort_member_changes`` is selected.
    """
    work = CohortWork(cohort_id)
    add_sessions = {s.session_id for s in sessions if s.action == ADD}
    pending = [s for s in sessions if watermark is None or s.order_key > watermark]
    cycles = group_cycles(pending, add_sessions)
    work.lacks_remove = sum(c.lacks_remove for c in cycles)
    work.lone_removes = sum(c.lone_remove for c in cycles)
    consumed, applied = _consume(work, cycles)
    if not consumed:
        return work
    end_mark = consumed[-1].last.order_key
    if applied[0].full and members_selected:
        _emit_snapshot(work, consumed, applied, end_mark, changes_selected=changes_selected)
    elif changes_selected:
        work.changes = [d for c in applied if not c.full for d in c.deliveries]
        work.cycles = sum(not c.full for c in applied)
        work.changes_mark = end_mark
    elif members_selected:
        work.members_mark = end_mark  # change cycles nobody selected
    return work


def _consume(work: CohortWork, cycles: list[Cycle]) -> tuple[list[Cycle], list[Cycle]]:
    """The cycles up to the last complete one (consumed), and those of them this run applies.

    Sets ``work.waiting`` (the cycles after), ``work.superseded`` (before the last complete
    snapshot) and ``work.failed`` (incomplete, followed by a complete cycle).
    """
    done = max((i for i, c in enumerate(cycles) if c.complete), default=-1)
    consumed, work.waiting = cycles[: done + 1], cycles[done + 1 :]
    start = max((i for i, c in enumerate(consumed) if c.complete and c.full), default=0)
    work.superseded = consumed[:start]
    applied = [c for c in consumed[start:] if c.complete]
    work.failed = [c for c in consumed[start:] if not c.complete]
    return consumed, applied


def _emit_snapshot(
    work: CohortWork,
    consumed: list[Cycle],
    applied: list[Cycle],
    end_mark: str,
    *,
    changes_selected: bool,
) -> None:
    """Emit the snapshot that opens ``applied``; change cycles after it wait for the next run."""
    work.snapshot = applied[0].deliveries[0]
    work.cycles = 1
    if changes_selected and len(applied) > 1:  # the rest follows in the next run
        later = consumed.index(applied[1])
        work.waiting = consumed[later:] + work.waiting
        work.failed = [c for c in work.failed if consumed.index(c) < later]
        work.members_mark = consumed[later - 1].last.order_key
    else:
        work.members_mark = end_mark
