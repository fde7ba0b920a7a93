"""The ledger: what Braze confirmed last, and this run's snapshot, diffed in SQLite.

Two SQLite files are involved:

* the **ledger** (``ledger_path``, kept between runs) holds one row per (namespace, user,
  cohort, name) that Braze confirmed, plus the cohort names sent to the partner API;
* a **staging** file (a temporary directory, deleted after the run) receives this run's
  snapshot and the computed changes.

A namespace is one membership stream sent to one destination (mode, instance, attribute or
partner), so changing ``cohort_attribute`` or ``rest_endpoint`` starts from an empty ledger
instead of trusting rows that describe another destination.

The diff is a pair of anti-joins, so memory stays flat for millions of members; the changes are
read back ordered by user so one attribute object carries all of a user's adds and removes.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ADD = 1
REMOVE = 0

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger.namespaces (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ledger.members (
    ns INTEGER NOT NULL, external_id TEXT NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, external_id, cohort_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger.partner_names (
    ns INTEGER NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, cohort_id)) WITHOUT ROWID;
"""

_STAGING_SCHEMA = """
CREATE TABLE snap (
    ns INTEGER NOT NULL, external_id TEXT NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, external_id, cohort_id)) WITHOUT ROWID;
CREATE TABLE snap_cohorts (
    ns INTEGER NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, cohort_id)) WITHOUT ROWID;
CREATE TABLE listed (cohort_id TEXT PRIMARY KEY, name TEXT, created TEXT) WITHOUT ROWID;
"""


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


@dataclass(frozen=True)
class Change:
    """One ledger row to add or remove; ``send`` is False when another cohort keeps the name."""

    external_id: str
    cohort_id: str
    name: str
    op: int
    send: bool = True


class Ledger:
    """The SQLite ledger file plus this run's staging file.

    Args:
        path: Ledger file; its directory is created when missing.
        read_only: Open the ledger read-only (dry runs never write it). A missing ledger then
            reads as empty.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._tmpdir = tempfile.mkdtemp(prefix="target-braze-")
        self._staging = Path(self._tmpdir) / "staging.sqlite3"
        self.db = sqlite3.connect(self._staging, isolation_level=None, check_same_thread=False)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "PRAGMA cache_size=-65536;"
        )
        self.db.executescript(_STAGING_SCHEMA)
        if read_only and self.path.exists():
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self.db.execute("ATTACH DATABASE ? AS ledger", (uri,))
        elif read_only:
            self.db.execute("ATTACH DATABASE ':memory:' AS ledger")
            self.db.executescript(_LEDGER_SCHEMA)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db.execute("ATTACH DATABASE ? AS ledger", (str(self.path),))
            self.db.execute("PRAGMA ledger.journal_mode=WAL")
            self.db.execute("PRAGMA ledger.synchronous=NORMAL")
            self.db.executescript(_LEDGER_SCHEMA)
        self._ns_cache: dict[str, int] = {}
        self._memory_ns: dict[str, int] = {}

    # -- staging ----------------------------------------------------------------------------

    def namespace(self, key: str) -> int:
        """The id of namespace ``key`` (created in the ledger when new)."""
        if key in self._ns_cache:
            return self._ns_cache[key]
        row = self.db.execute("SELECT id FROM ledger.namespaces WHERE key=?", (key,)).fetchone()
        if row:
            ns = int(row[0])
        elif self.read_only:
            ns = -1 - len(self._memory_ns)  # never matches a ledger row
            self._memory_ns[key] = ns
        else:
            cur = self.db.execute("INSERT INTO ledger.namespaces(key) VALUES (?)", (key,))
            ns = int(cur.lastrowid or 0)
        self._ns_cache[key] = ns
        return ns

    def stage_members(self, ns: int, rows: Iterable[tuple[str, str, str]]) -> None:
        """Add snapshot rows ``(external_id, cohort_id, name)`` of namespace ``ns``."""
        self.db.execute("BEGIN")
        self.db.executemany(
            f"INSERT OR REPLACE INTO snap VALUES ({int(ns)}, ?, ?, ?)",
            rows,
        )
        self.db.execute("COMMIT")

    def stage_cohort(self, ns: int, cohort_id: str, name: str) -> None:
        """Record a cohort (and its current name) seen in namespace ``ns``'s snapshot."""
        self.db.execute(
            "INSERT OR REPLACE INTO snap_cohorts VALUES (?, ?, ?)", (ns, cohort_id, name)
        )

    def stage_listed(self, cohort_id: str, name: str | None, created: str | None) -> None:
        """Record a cohort listed by the ``cohorts`` stream (it still exists upstream)."""
        self.db.execute(
            "INSERT OR REPLACE INTO listed VALUES (?, ?, ?)", (cohort_id, name, created)
        )

    def listed(self, cohort_id: str) -> tuple[str | None, str | None] | None:
        """``(name, created)`` of a listed cohort, or None."""
        row = self.db.execute(
            "SELECT name, created FROM listed WHERE cohort_id=?", (cohort_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    # -- diff -------------------------------------------------------------------------------

    def plan(
        self,
        ns: int,
        *,
        complete: bool,
        listing_seen: bool,
        max_removal_fraction: float,
        guard_min_members: int,
        per_name: bool,
        scope: Collection[str] | None = None,
    ) -> Plan:
        """Compute the changes of namespace ``ns`` into the staging table ``changes``.

        Args:
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
        db = self.db
        plan = Plan(ns=ns, complete=complete)
        db.executescript(
            "DROP TABLE IF EXISTS scope; CREATE TABLE scope (cohort_id TEXT PRIMARY KEY);"
        )
        db.executemany("INSERT OR IGNORE INTO scope VALUES (?)", ((c,) for c in scope or ()))
        in_scope = "" if scope is None else " AND l.cohort_id IN (SELECT cohort_id FROM scope)"
        for cohort_id, name in db.execute(
            "SELECT cohort_id, name FROM snap_cohorts WHERE ns=?", (ns,)
        ):
            plan.cohorts[cohort_id] = CohortPlan(cohort_id, name)
        for cohort_id, name, count in db.execute(
            "SELECT cohort_id, MAX(name), COUNT(DISTINCT external_id) FROM ledger.members "
            "WHERE ns=? GROUP BY cohort_id",
            (ns,),
        ):
            listed = self.listed(cohort_id)
            cohort = plan.cohorts.setdefault(
                cohort_id, CohortPlan(cohort_id, (listed and listed[0]) or name)
            )
            cohort.synced_members = count
            cohort.vanished = (
                scope is None
                and listing_seen
                and listed is None
                and cohort_id not in self._snap_ids(ns)
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
        self.count_planned(plan)
        return plan

    def count_planned(self, plan: Plan) -> None:
        """Fill ``plan``'s planned adds and removes from the staging table ``changes``."""
        for cohort_id, op, count in self.db.execute(
            "SELECT cohort_id, op, COUNT(*) FROM changes GROUP BY cohort_id, op"
        ).fetchall():
            cohort = plan.cohorts.setdefault(cohort_id, CohortPlan(cohort_id, cohort_id))
            if op == ADD:
                plan.adds += count
                cohort.planned_adds = count
            else:
                plan.removes += count
                cohort.planned_removes = count

    def _snap_ids(self, ns: int) -> set[str]:
        rows = self.db.execute("SELECT cohort_id FROM snap_cohorts WHERE ns=?", (ns,))
        return {r[0] for r in rows}

    def changes_by_user(self, batch: int = 5000) -> Iterator[tuple[str, list[Change]]]:
        """Yield ``(external_id, changes)`` for every user in the last plan, ordered by user.

        A second connection reads the staging file so ledger writes can interleave.
        """
        reader = sqlite3.connect(self._staging)
        try:
            cur = reader.execute(
                "SELECT external_id, cohort_id, name, op, send FROM changes "
                "ORDER BY external_id, op DESC, cohort_id"
            )
            current: str | None = None
            group: list[Change] = []
            while rows := cur.fetchmany(batch):
                for external_id, cohort_id, name, op, send in rows:
                    if external_id != current:
                        if group:
                            yield current, group  # type: ignore[misc]
                        current, group = external_id, []
                    group.append(Change(external_id, cohort_id, name, op, bool(send)))
            if group:
                yield current, group  # type: ignore[misc]
        finally:
            reader.close()

    def changes_by_cohort(self, batch: int = 5000) -> Iterator[tuple[str, int, list[str]]]:
        """Yield ``(cohort_id, op, external_ids)`` groups of the last plan (partner mode)."""
        reader = sqlite3.connect(self._staging)
        try:
            cur = reader.execute(
                "SELECT cohort_id, op, external_id FROM changes "
                "ORDER BY cohort_id, op DESC, external_id"
            )
            key: tuple[str, int] | None = None
            ids: list[str] = []
            while rows := cur.fetchmany(batch):
                for cohort_id, op, external_id in rows:
                    if (cohort_id, op) != key:
                        if ids and key:
                            yield key[0], key[1], ids
                        key, ids = (cohort_id, op), []
                    ids.append(external_id)
            if ids and key:
                yield key[0], key[1], ids
        finally:
            reader.close()

    def users_over(self, limit: int) -> int:
        """Number of users whose snapshot holds more than ``limit`` distinct cohort names."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM (SELECT external_id FROM snap GROUP BY external_id "
            "HAVING COUNT(DISTINCT name) > ?)",
            (limit,),
        ).fetchone()
        return int(row[0])

    # -- confirmed changes ------------------------------------------------------------------

    def apply(self, ns: int, changes: Iterable[Change]) -> None:
        """Record changes Braze confirmed (one transaction)."""
        if self.read_only:
            return
        adds: list[tuple[int, str, str, str]] = []
        removes: list[tuple[int, str, str, str]] = []
        for c in changes:
            row = (ns, c.external_id, c.cohort_id, c.name)
            (adds if c.op == ADD else removes).append(row)
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "DELETE FROM ledger.members WHERE ns=? AND external_id=? AND cohort_id=? "
                "AND name=?",
                removes,
            )
            self.db.executemany("INSERT OR IGNORE INTO ledger.members VALUES (?,?,?,?)", adds)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def partner_name(self, ns: int, cohort_id: str) -> str | None:
        """The cohort name last confirmed by the partner name endpoint."""
        row = self.db.execute(
            "SELECT name FROM ledger.partner_names WHERE ns=? AND cohort_id=?", (ns, cohort_id)
        ).fetchone()
        return row[0] if row else None

    def set_partner_name(self, ns: int, cohort_id: str, name: str) -> None:
        """Record a cohort name the partner endpoint confirmed."""
        if not self.read_only:
            self.db.execute(
                "INSERT OR REPLACE INTO ledger.partner_names VALUES (?, ?, ?)",
                (ns, cohort_id, name),
            )

    def members(self, ns: int) -> set[tuple[str, str, str]]:
        """Every ledger row of ``ns`` as ``(external_id, cohort_id, name)`` (tests, small data)."""
        rows = self.db.execute(
            "SELECT external_id, cohort_id, name FROM ledger.members WHERE ns=?", (ns,)
        )
        return {(r[0], r[1], r[2]) for r in rows}

    def close(self) -> None:
        """Close both files and delete the staging directory."""
        self.db.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)
