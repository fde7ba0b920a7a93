"""Additions in flight: what a crashed run may have added to Braze without recording it.

The ledger is published after the sends, so a run killed after Braze applied its additions but
before the publish leaves them unrecorded; if such a user then leaves the cohort, no later diff
would remove them. Before sending, each run therefore records its planned additions in the
ledger's ``target_braze_pending`` table and (for a ledger in object storage) publishes that
*intent* without a new generation. The next run treats every pending row as possibly present in
Braze: a pending member who is not in its snapshot (and not in the ledger) gets a ``remove``,
which Braze ignores when the value was never added. A run that ends normally clears the table.
"""

from __future__ import annotations

from target_braze.ledger import Ledger
from target_braze.run import StreamRun

PENDING_TABLE = "target_braze_pending"


def ensure_table(ledger: Ledger) -> None:
    """Create the pending table in the ledger when missing."""
    ledger.db.execute(
        f"CREATE TABLE IF NOT EXISTS ledger.{PENDING_TABLE} (ns INTEGER NOT NULL, "
        "external_id TEXT NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL, "
        "PRIMARY KEY (ns, external_id, cohort_id, name)) WITHOUT ROWID"
    )


def add_uncertain_removals(ledger: Ledger, run: StreamRun, *, per_name: bool) -> int:
    """Plan a ``remove`` for each pending row of ``run`` that its complete snapshot lacks.

    Must follow the stream's ``plan``. A name the user still holds through another cohort is
    recorded but not sent (``send=0``), as the diff does. Returns the number of rows added.
    """
    if run.plan is None or not run.plan.complete:
        return 0
    ensure_table(ledger)
    keeps_name = (
        " OR EXISTS (SELECT 1 FROM snap s WHERE s.ns=p.ns AND s.external_id=p.external_id"
        " AND s.name=p.name) OR EXISTS (SELECT 1 FROM ledger.members m WHERE m.ns=p.ns"
        " AND m.external_id=p.external_id AND m.name=p.name)"
        if per_name
        else ""
    )
    db = ledger.db
    db.execute("BEGIN")
    cursor = db.execute(
        "INSERT INTO changes (external_id, cohort_id, name, op, send) "
        f"SELECT p.external_id, p.cohort_id, p.name, 0, NOT (0{keeps_name}) "
        f"FROM ledger.{PENDING_TABLE} p WHERE p.ns=? "
        "AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.ns=p.ns AND s.external_id=p.external_id"
        " AND s.cohort_id=p.cohort_id AND s.name=p.name) "
        "AND NOT EXISTS (SELECT 1 FROM ledger.members m WHERE m.ns=p.ns"
        " AND m.external_id=p.external_id AND m.cohort_id=p.cohort_id AND m.name=p.name)",
        (run.ns,),
    )
    db.execute("COMMIT")
    added = max(cursor.rowcount, 0)
    run.plan.removes += added
    return added


def record_planned_additions(ledger: Ledger, run: StreamRun) -> int:
    """Add the stream's planned additions to the pending table; returns how many it planned."""
    ensure_table(ledger)
    db = ledger.db
    db.execute("BEGIN")
    cursor = db.execute(
        f"INSERT OR IGNORE INTO ledger.{PENDING_TABLE} "
        "SELECT ?, external_id, cohort_id, name FROM changes WHERE op=1",
        (run.ns,),
    )
    db.execute("COMMIT")
    return max(cursor.rowcount, 0)


def clear(ledger: Ledger, ns: int) -> None:
    """Forget namespace ``ns``'s pending rows: its sends all ended (confirmed or rejected)."""
    ensure_table(ledger)
    ledger.db.execute(f"DELETE FROM ledger.{PENDING_TABLE} WHERE ns=?", (ns,))
