"""Additions in flight: what a crashed run may have added to Braze without recording it.

The ledger is published after the sends, so a run killed after Braze applied its additions but
before the publish leaves them unrecorded; if such a user then leaves the cohort, no later diff
would remove them. Before sending, each run therefore records its planned additions in the
ledger's ``target_braze_pending`` table and (for a ledger in object storage) publishes that
*intent* without a new generation. This holds for every kind of input: full snapshots, one-cohort
snapshots and change sessions alike, because the input of the next run need not replay the
crashed one (a newer ``members`` session can supersede a change session).

A pending row stands for "possibly in Braze". The next run that covers its (user, cohort) settles
it: a complete snapshot of the cohort that lacks the user, or a change whose last word on (user,
cohort) is a ``remove`` (or another name), gets a ``remove`` for the pending row as well, which
Braze ignores when the value was never added. Once the run's sends for a stream ended, the rows it
covered are forgotten, and so is every row the ledger now holds as confirmed; rows no run covered
yet stay pending.
"""

from __future__ import annotations

from target_braze.ledger import Ledger
from target_braze.run import StreamRun

PENDING_TABLE = "target_braze_pending"
"""The table (in the ledger's schema, :mod:`target_braze.ledger`)."""


def _covered(run: StreamRun) -> str:
    """SQL condition on pending row ``p``: the stream's input this run settles it.

    Must follow the stream's plan (it reads the staging tables ``scope`` and ``final``).
    """
    if run.change_records:
        return (
            "EXISTS (SELECT 1 FROM final f WHERE f.external_id=p.external_id"
            " AND f.cohort_id=p.cohort_id)"
        )
    if run.scoped:
        return "p.cohort_id IN (SELECT cohort_id FROM scope)"
    return "1"


def add_uncertain_removals(ledger: Ledger, run: StreamRun, *, per_name: bool) -> int:
    """Plan a ``remove`` for each pending row of ``run`` that its input says is gone.

    Snapshots: a pending row of a cohort the complete snapshot covers, which the snapshot lacks.
    Changes: a pending row whose last change is a ``remove``, or an ``add`` under another name.
    Rows the ledger holds are left to the diff. A name the user still holds through another
    cohort is recorded but not sent (``send=0``), as the diff does. Returns the rows added.
    """
    if run.plan is None or not run.plan.complete:
        return 0
    keeps_name = (
        " OR EXISTS (SELECT 1 FROM ledger.members m WHERE m.ns=p.ns"
        " AND m.external_id=p.external_id AND m.name=p.name)"
    )
    if run.change_records:
        gone = (
            "EXISTS (SELECT 1 FROM final f WHERE f.external_id=p.external_id"
            " AND f.cohort_id=p.cohort_id AND (f.op=0 OR f.name<>p.name))"
        )
        if per_name:
            keeps_name += (
                " OR EXISTS (SELECT 1 FROM final f WHERE f.external_id=p.external_id"
                " AND f.op=1 AND f.name=p.name)"
            )
    else:
        gone = (
            f"{_covered(run)} AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.ns=p.ns"
            " AND s.external_id=p.external_id AND s.cohort_id=p.cohort_id AND s.name=p.name)"
        )
        if per_name:
            keeps_name += (
                " OR EXISTS (SELECT 1 FROM snap s WHERE s.ns=p.ns"
                " AND s.external_id=p.external_id AND s.name=p.name)"
            )
    db = ledger.db
    db.execute("BEGIN")
    cursor = db.execute(
        "INSERT INTO changes (external_id, cohort_id, name, op, send) "
        f"SELECT p.external_id, p.cohort_id, p.name, 0, NOT (0{keeps_name if per_name else ''}) "
        f"FROM ledger.{PENDING_TABLE} p WHERE p.ns=? AND {gone} "
        "AND NOT EXISTS (SELECT 1 FROM ledger.members m WHERE m.ns=p.ns"
        " AND m.external_id=p.external_id AND m.cohort_id=p.cohort_id AND m.name=p.name) "
        "AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.op=0 AND c.external_id=p.external_id"
        " AND c.cohort_id=p.cohort_id AND c.name=p.name)",
        (run.ns,),
    )
    db.execute("COMMIT")
    added = max(cursor.rowcount, 0)
    run.plan.removes += added
    return added


def record_planned_additions(ledger: Ledger, run: StreamRun) -> int:
    """Add the stream's planned additions to the pending table; returns how many it planned."""
    db = ledger.db
    db.execute("BEGIN")
    cursor = db.execute(
        f"INSERT OR IGNORE INTO ledger.{PENDING_TABLE} "
        "SELECT ?, external_id, cohort_id, name FROM changes WHERE op=1",
        (run.ns,),
    )
    db.execute("COMMIT")
    return max(cursor.rowcount, 0)


def settle(ledger: Ledger, run: StreamRun) -> None:
    """The stream's sends all ended: forget the pending rows its input covered.

    A covered row was either planned as an addition (confirmed: the ledger holds it; rejected:
    Braze does not have it) or as a removal (sent). Must follow the stream's plan and sends.
    """
    if run.plan is None or not run.plan.complete:
        return
    ledger.db.execute(
        f"DELETE FROM ledger.{PENDING_TABLE} AS p WHERE p.ns=? AND {_covered(run)}", (run.ns,)
    )


def forget_confirmed(ledger: Ledger) -> None:
    """Forget every pending row the ledger now holds: Braze confirmed it."""
    ledger.db.execute(
        f"DELETE FROM ledger.{PENDING_TABLE} AS p WHERE EXISTS (SELECT 1 FROM ledger.members m"
        " WHERE m.ns=p.ns AND m.external_id=p.external_id AND m.cohort_id=p.cohort_id"
        " AND m.name=p.name)"
    )
