"""The diffs: what Braze must add and remove, computed in SQLite against the ledger.

Both kinds of input end in the staging table ``changes`` that delivery sends unchanged
(:mod:`target_braze.delivery`), with a :class:`Plan` of per-cohort figures.

**Snapshots** (:func:`plan_snapshot`): a pair of anti-joins between the snapshot and the ledger;
removals only for a complete snapshot (and, for one-cohort snapshots, only for the cohorts it
covers), with the removal guard per cohort.

**Change records** (``cohort_member_changes``, :func:`plan_changes`): adds and removes applied
through the ledger.

Each record says that one user entered (``add``) or left (``remove``) one cohort in one export
session. They are staged in arrival order; at the end of the input the last change per (user,
cohort) decides, compared with the ledger:

* ``add``: the user gets the cohort's current name unless the ledger already holds it (a replay
  changes nothing); an older name of that cohort is removed (a rename).
* ``remove``: every ledger row of (user, cohort) is removed; a user the ledger does not hold is
  nothing to do (a replay changes nothing).
* In mode ``attributes`` a cohort renamed upstream moves its other ledger members to the new name.
* The removal guard applies per session: a session that would remove more than
  ``max_removal_fraction`` of the cohort's ledger members (a cohort of at least
  ``removal_guard_min_members``) has its removals withheld; its adds and every other session
  still apply.

"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from target_braze.ledger import ADD, Ledger


@dataclass
class CohortPlan:
    """Per-cohort figures of one namespace's diff."""

    cohort_id: str
    name: str
    synced_members: int = 0
    snapshot_members: int = 0
    leavers: int = 0
    vanished: bool = False
    withheld: bool = False
    planned_adds: int = 0
    planned_removes: int = 0


@dataclass
class Plan:
    """The diff of one namespace: cohorts and the number of planned change rows."""

    ns: int
    complete: bool
    cohorts: dict[str, CohortPlan] = field(default_factory=dict)
    adds: int = 0
    removes: int = 0

    @property
    def withheld(self) -> list[CohortPlan]:
        """Cohorts whose removals the guard withheld."""
        return [c for c in self.cohorts.values() if c.withheld]


def plan_snapshot(
    ledger: Ledger,
    ns: int,
    *,
    complete: bool,
    listing_seen: bool,
    max_removal_fraction: float,
    guard_min_members: int,
    per_name: bool,
    scope: Collection[str] | None = None,
) -> Plan:
    """Compute the changes of snapshot namespace ``ns`` into the staging table ``changes``.

    Args:
        ledger: the run's ledger (its staging file holds the snapshot).
        ns: Namespace id.
        complete: The snapshot is complete (ACTIVATE_VERSION seen): removals are planned.
        listing_seen: The ``cohorts`` stream arrived this run, so a cohort absent from both
            it and the snapshot has vanished upstream (exempt from the guard).
        max_removal_fraction: Guard threshold on leavers / synced members.
        guard_min_members: The guard applies to cohorts with at least this many members.
        per_name: Attributes mode: a cohort's name is part of the membership (a rename moves
            users); names shared by two cohorts are only removed when no cohort keeps them.
        scope: One-cohort snapshots: removals are planned for these cohorts only, and no
            cohort counts as vanished (None: the snapshot covers every cohort).

    Returns:
        The plan, with per-cohort figures.
    """
    db = ledger.db
    plan = Plan(ns=ns, complete=complete)
    db.executescript("DROP TABLE IF EXISTS scope; CREATE TABLE scope (cohort_id TEXT PRIMARY KEY);")
    db.executemany("INSERT OR IGNORE INTO scope VALUES (?)", ((c,) for c in scope or ()))
    in_scope = "" if scope is None else " AND l.cohort_id IN (SELECT cohort_id FROM scope)"
    for cohort_id, name in db.execute("SELECT cohort_id, name FROM snap_cohorts WHERE ns=?", (ns,)):
        plan.cohorts[cohort_id] = CohortPlan(cohort_id, name)
    for cohort_id, name, count in db.execute(
        "SELECT cohort_id, MAX(name), COUNT(DISTINCT external_id) FROM ledger.members "
        "WHERE ns=? GROUP BY cohort_id",
        (ns,),
    ):
        listed = ledger.listed(cohort_id)
        cohort = plan.cohorts.setdefault(
            cohort_id, CohortPlan(cohort_id, (listed and listed[0]) or name)
        )
        cohort.synced_members = count
        cohort.vanished = (
            scope is None
            and listing_seen
            and listed is None
            and cohort_id not in _snap_ids(ledger, ns)
        )
    for cohort_id, count in db.execute(
        "SELECT cohort_id, COUNT(*) FROM snap WHERE ns=? GROUP BY cohort_id", (ns,)
    ):
        plan.cohorts[cohort_id].snapshot_members = count

    db.executescript(
        "DROP TABLE IF EXISTS changes; DROP TABLE IF EXISTS withheld;"
        "CREATE TABLE changes (external_id TEXT NOT NULL, cohort_id TEXT NOT NULL,"
        " name TEXT NOT NULL, op INTEGER NOT NULL, send INTEGER NOT NULL DEFAULT 1);"
        "CREATE TABLE withheld (cohort_id TEXT PRIMARY KEY);"
    )
    db.execute("BEGIN")
    db.execute(
        "INSERT INTO changes (external_id, cohort_id, name, op) "
        "SELECT s.external_id, s.cohort_id, s.name, 1 FROM snap s WHERE s.ns=? AND NOT EXISTS "
        "(SELECT 1 FROM ledger.members l WHERE l.ns=s.ns AND l.external_id=s.external_id "
        " AND l.cohort_id=s.cohort_id AND l.name=s.name)",
        (ns,),
    )
    if complete:
        for cohort_id, leavers in db.execute(
            "SELECT l.cohort_id, COUNT(DISTINCT l.external_id) FROM ledger.members l "
            "WHERE l.ns=? AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.ns=l.ns "
            " AND s.external_id=l.external_id AND s.cohort_id=l.cohort_id)"
            f"{in_scope} GROUP BY l.cohort_id",
            (ns,),
        ).fetchall():
            cohort = plan.cohorts[cohort_id]
            cohort.leavers = leavers
            if (
                not cohort.vanished
                and cohort.synced_members >= guard_min_members
                and leavers > max_removal_fraction * cohort.synced_members
            ):
                cohort.withheld = True
                db.execute("INSERT INTO withheld VALUES (?)", (cohort_id,))
        db.execute(
            "INSERT INTO changes (external_id, cohort_id, name, op) "
            "SELECT l.external_id, l.cohort_id, l.name, 0 FROM ledger.members l "
            "WHERE l.ns=? AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.ns=l.ns "
            " AND s.external_id=l.external_id AND s.cohort_id=l.cohort_id AND s.name=l.name) "
            f"{in_scope} AND NOT (l.cohort_id IN (SELECT cohort_id FROM withheld) "
            " AND NOT EXISTS (SELECT 1 FROM snap s WHERE s.ns=l.ns"
            "  AND s.external_id=l.external_id AND s.cohort_id=l.cohort_id))",
            (ns,),
        )
    db.execute("CREATE INDEX changes_user ON changes (external_id, op)")
    if complete and per_name:
        # A name still held through another cohort (same name) must stay in the array.
        db.execute(
            "UPDATE changes SET send=0 WHERE op=0 AND ("
            " EXISTS (SELECT 1 FROM snap s WHERE s.ns=? AND s.external_id=changes.external_id"
            "  AND s.name=changes.name) OR"
            " EXISTS (SELECT 1 FROM ledger.members l WHERE l.ns=? "
            "  AND l.external_id=changes.external_id AND l.name=changes.name AND NOT EXISTS"
            "  (SELECT 1 FROM changes c2 WHERE c2.external_id=l.external_id AND c2.op=0"
            "   AND c2.cohort_id=l.cohort_id AND c2.name=l.name)))",
            (ns, ns),
        )
    db.execute("COMMIT")
    count_planned(ledger, plan)
    return plan


def count_planned(ledger: Ledger, plan: Plan) -> None:
    """Fill ``plan``'s planned adds and removes from the staging table ``changes``."""
    for cohort_id, op, count in ledger.db.execute(
        "SELECT cohort_id, op, COUNT(*) FROM changes GROUP BY cohort_id, op"
    ).fetchall():
        cohort = plan.cohorts.setdefault(cohort_id, CohortPlan(cohort_id, cohort_id))
        if op == ADD:
            plan.adds += count
            cohort.planned_adds = count
        else:
            plan.removes += count
            cohort.planned_removes = count


def _snap_ids(ledger: Ledger, ns: int) -> set[str]:
    rows = ledger.db.execute("SELECT cohort_id FROM snap_cohorts WHERE ns=?", (ns,))
    return {r[0] for r in rows}


def plan_changes(
    ledger: Ledger,
    ns: int,
    *,
    max_removal_fraction: float,
    guard_min_members: int,
    per_name: bool,
    names: Mapping[str, str],
) -> Plan:
    """Turn the staged change rows of ``ns`` into the staging table ``changes``.

    Args:
        ledger: the run's ledger (its staging file holds the rows).
        ns: the namespace (the membership stream the changes modify).
        max_removal_fraction: the guard's threshold per session.
        guard_min_members: the guard applies to cohorts with at least this many ledger members.
        per_name: mode ``attributes``: names are part of the membership (renames move users).
        names: each cohort's current name (as the records last gave it).
    """
    db = ledger.db
    plan = Plan(ns=ns, complete=True)
    db.executescript(
        "DROP TABLE IF EXISTS changes; DROP TABLE IF EXISTS withheld_sessions;"
        "DROP TABLE IF EXISTS final; DROP TABLE IF EXISTS current_names;"
        "CREATE TABLE changes (external_id TEXT NOT NULL, cohort_id TEXT NOT NULL,"
        " name TEXT NOT NULL, op INTEGER NOT NULL, send INTEGER NOT NULL DEFAULT 1);"
        "CREATE TABLE withheld_sessions (cohort_id TEXT, session TEXT,"
        " PRIMARY KEY (cohort_id, session));"
        "CREATE INDEX IF NOT EXISTS delta_member ON delta (ns, cohort_id, external_id, seq);"
    )
    _guard(
        db,
        plan,
        ns,
        max_removal_fraction=max_removal_fraction,
        guard_min_members=guard_min_members,
        names=names,
    )
    db.execute("BEGIN")
    db.execute(
        "CREATE TABLE final AS SELECT external_id, cohort_id, name, op FROM ("
        " SELECT external_id, cohort_id, name, op, ROW_NUMBER() OVER ("
        "  PARTITION BY cohort_id, external_id ORDER BY seq DESC) AS latest"
        " FROM delta d WHERE ns=? AND NOT (op=0 AND EXISTS (SELECT 1 FROM withheld_sessions w"
        "  WHERE w.cohort_id=d.cohort_id AND w.session=d.session))) WHERE latest=1",
        (ns,),
    )
    db.execute("CREATE UNIQUE INDEX final_member ON final (external_id, cohort_id)")
    db.execute(
        "CREATE TABLE current_names AS SELECT cohort_id, name FROM ("
        " SELECT cohort_id, name, ROW_NUMBER() OVER (PARTITION BY cohort_id ORDER BY seq DESC)"
        " AS latest FROM delta WHERE ns=?) WHERE latest=1",
        (ns,),
    )
    # Adds: the current name, unless the ledger holds it already.
    db.execute(
        "INSERT INTO changes (external_id, cohort_id, name, op) "
        "SELECT f.external_id, f.cohort_id, f.name, 1 FROM final f WHERE f.op=1 AND NOT EXISTS"
        " (SELECT 1 FROM ledger.members l WHERE l.ns=? AND l.external_id=f.external_id"
        "  AND l.cohort_id=f.cohort_id AND l.name=f.name)",
        (ns,),
    )
    # Removes: every row of a user who left, and older names of a user who (re)entered.
    db.execute(
        "INSERT INTO changes (external_id, cohort_id, name, op) "
        "SELECT l.external_id, l.cohort_id, l.name, 0 FROM ledger.members l JOIN final f"
        " ON f.external_id=l.external_id AND f.cohort_id=l.cohort_id"
        " WHERE l.ns=? AND (f.op=0 OR l.name<>f.name)",
        (ns,),
    )
    if per_name:
        _rename_untouched_members(db, ns)
        # A name still held through another cohort (same name) must stay in the array.
        db.execute(
            "UPDATE changes SET send=0 WHERE op=0 AND EXISTS (SELECT 1 FROM ledger.members l"
            " WHERE l.ns=? AND l.external_id=changes.external_id AND l.name=changes.name"
            " AND NOT EXISTS (SELECT 1 FROM changes c2 WHERE c2.external_id=l.external_id"
            "  AND c2.op=0 AND c2.cohort_id=l.cohort_id AND c2.name=l.name))",
            (ns,),
        )
    db.execute("CREATE INDEX changes_user ON changes (external_id, op)")
    db.execute("COMMIT")
    count_planned(ledger, plan)
    return plan


def _rename_untouched_members(db: sqlite3.Connection, ns: int) -> None:
    """Cohorts renamed upstream: their ledger members without a change move to the new name."""
    execute = db.execute
    untouched = (
        "FROM ledger.members l JOIN current_names n ON n.cohort_id=l.cohort_id"
        " WHERE l.ns=? AND l.name<>n.name AND NOT EXISTS (SELECT 1 FROM final f"
        "  WHERE f.external_id=l.external_id AND f.cohort_id=l.cohort_id)"
    )
    execute(
        f"INSERT INTO changes (external_id, cohort_id, name, op) "
        f"SELECT l.external_id, l.cohort_id, l.name, 0 {untouched}",
        (ns,),
    )
    execute(
        f"INSERT INTO changes (external_id, cohort_id, name, op) "
        f"SELECT DISTINCT l.external_id, l.cohort_id, n.name, 1 {untouched} AND NOT EXISTS"
        " (SELECT 1 FROM ledger.members k WHERE k.ns=l.ns AND k.external_id=l.external_id"
        "  AND k.cohort_id=l.cohort_id AND k.name=n.name)",
        (ns,),
    )


def _guard(
    db: sqlite3.Connection,
    plan: Plan,
    ns: int,
    *,
    max_removal_fraction: float,
    guard_min_members: int,
    names: Mapping[str, str],
) -> None:
    """Fill the plan's cohorts and withhold the removals of sessions that remove too many."""
    execute = db.execute
    for (cohort_id,) in execute("SELECT DISTINCT cohort_id FROM delta WHERE ns=?", (ns,)):
        plan.cohorts[cohort_id] = CohortPlan(cohort_id, names.get(cohort_id, cohort_id))
    for cohort_id, count in execute(
        "SELECT cohort_id, COUNT(DISTINCT external_id) FROM ledger.members WHERE ns=?"
        " AND cohort_id IN (SELECT DISTINCT cohort_id FROM delta WHERE ns=?) GROUP BY cohort_id",
        (ns, ns),
    ).fetchall():
        plan.cohorts[cohort_id].synced_members = count
    for cohort_id, session, leavers in execute(
        "SELECT d.cohort_id, d.session, COUNT(DISTINCT d.external_id) FROM delta d"
        " WHERE d.ns=? AND d.op=0 AND EXISTS (SELECT 1 FROM ledger.members l WHERE l.ns=d.ns"
        "  AND l.external_id=d.external_id AND l.cohort_id=d.cohort_id)"
        " GROUP BY d.cohort_id, d.session",
        (ns,),
    ).fetchall():
        cohort = plan.cohorts[cohort_id]
        synced = cohort.synced_members
        if synced >= guard_min_members and leavers > max_removal_fraction * synced:
            cohort.withheld = True
            cohort.leavers += leavers  # what the guard's message reports
            execute("INSERT OR IGNORE INTO withheld_sessions VALUES (?, ?)", (cohort_id, session))
