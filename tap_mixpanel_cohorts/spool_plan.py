"""Source 'webhook': which spooled sessions of each cohort a run emits, and in what order.

Per cohort the spool lists sessions in order (first page seen, then session id); the tap's state
keeps a watermark per cohort, the order key of the last session consumed. Sessions after the
watermark are *pending*. The rules:

1. A complete ``members`` session supersedes every session before it (a full replacement): the
   run starts at the last complete ``members`` session, the sessions before it are passed over.
2. From there sessions are taken in order while they are complete; the first incomplete session
   holds back itself and every later session of the cohort (they would otherwise apply out of
   order). The watermark never passes it.
3. A cohort whose run starts with a ``members`` snapshot emits only that snapshot; the change
   sessions after it follow in the next run. The SDK syncs ``cohort_member_changes`` before
   ``cohort_members`` (streams go by name), so this keeps every change after the snapshot it
   follows, and a run cut short can never mark a snapshot consumed that was not emitted.

Reading a session's action needs its first page; only complete pending sessions are read, newest
first, until a ``members`` session is found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from braze_mixpanel_common.cohort_spool import SessionInfo

MEMBERS = "members"


@dataclass
class CohortWork:
    """What one run does with one cohort's pending sessions.

    Attributes:
        cohort_id: the cohort (as spooled, a string).
        snapshot: the complete ``members`` session to emit in ``cohort_members``, if any.
        changes: complete ``add_members`` / ``remove_members`` sessions to emit, in order.
        waiting: pending sessions held back (the first is incomplete, or follows a snapshot).
        superseded: sessions passed over because a later ``members`` session replaces them.
        members_mark: the watermark ``cohort_members`` stores once its part is emitted.
        changes_mark: the watermark ``cohort_member_changes`` stores once its part is emitted.
    """

    cohort_id: str
    snapshot: SessionInfo | None = None
    changes: list[SessionInfo] = field(default_factory=list)
    waiting: list[SessionInfo] = field(default_factory=list)
    superseded: list[SessionInfo] = field(default_factory=list)
    members_mark: str | None = None
    changes_mark: str | None = None

    @property
    def emitted(self) -> list[SessionInfo]:
        """The sessions this run emits, in order."""
        return ([self.snapshot] if self.snapshot else []) + self.changes

    @property
    def incomplete(self) -> list[SessionInfo]:
        """Held-back sessions still missing pages."""
        return [s for s in self.waiting if not s.complete]


def plan_cohort(
    cohort_id: str,
    sessions: list[SessionInfo],
    watermark: str | None,
    action: Callable[[SessionInfo], str],
    *,
    members_selected: bool,
    changes_selected: bool,
) -> CohortWork:
    """Apply the module's rules to one cohort's sessions (in spool order).

    Args:
        cohort_id: the cohort.
        sessions: its sessions, in spool order.
        watermark: the order key of the last session consumed, or None.
        action: reads a complete session's action (its first page).
        members_selected: ``cohort_members`` is selected.
        changes_selected: ``cohort_member_changes`` is selected.
    """
    work = CohortWork(cohort_id)
    pending = [s for s in sessions if watermark is None or s.order_key > watermark]
    start = 0
    for index in range(len(pending) - 1, -1, -1):
        if pending[index].complete and action(pending[index]) == MEMBERS:
            start = index
            break
    work.superseded = pending[:start]
    ready: list[SessionInfo] = []
    for session in pending[start:]:
        if not session.complete:
            break
        ready.append(session)
    work.waiting = pending[start + len(ready) :]
    snapshot = ready[0] if ready and action(ready[0]) == MEMBERS else None
    changes = ready[1:] if snapshot else ready
    passed = pending[: start + len(ready)]
    if snapshot is not None and members_selected:
        work.snapshot = snapshot
        if changes_selected:
            work.waiting = changes + work.waiting  # next run, after the snapshot
            work.members_mark = snapshot.order_key
        else:
            work.members_mark = passed[-1].order_key
        return work
    if changes_selected:
        work.changes = changes
        work.changes_mark = passed[-1].order_key if passed else None
    elif members_selected and passed:
        work.members_mark = passed[-1].order_key  # change sessions nobody selected
    return work
