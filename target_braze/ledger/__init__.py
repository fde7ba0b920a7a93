"""The ledger: what Braze confirmed last, and this run's snapshot, diffed in SQLite.

Two SQLite files are involved:

* the **ledger** (``ledger_path``, kept between runs) holds one row per (namespace, user,
  cohort, name) that Braze confirmed, plus the cohort names sent to the partner API;
* a **staging** file (a temporary directory, deleted after the run) receives this run's
  snapshot and the computed changes.

A namespace is one membership stream sent to one destination (mode, instance, attribute or
partner), so changing ``cohort_attribute`` or ``rest_endpoint`` starts from an empty ledger
instead of trusting rows that describe another destination.

This package owns both files: their schema and every SQL statement. The diffs (a pair of
anti-joins, so memory stays flat for millions of members) are in :mod:`target_braze.ledger.diff`,
the additions in flight in :mod:`target_braze.ledger.pending`; the changes are read back ordered
by user so one attribute object carries all of a user's adds and removes. Where the file lives
between runs, and the lease on it, is :mod:`target_braze.ledger.store`'s business (it moves the
file, it runs no SQL).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from target_braze.ledger.mark import META_TABLE, LedgerMark

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
CREATE TABLE IF NOT EXISTS ledger.target_braze_pending (
    ns INTEGER NOT NULL, external_id TEXT NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, external_id, cohort_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger.target_braze_meta (
    key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

_STAGING_SCHEMA = """
CREATE TABLE snap (
    ns INTEGER NOT NULL, external_id TEXT NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, external_id, cohort_id)) WITHOUT ROWID;
CREATE TABLE snap_cohorts (
    ns INTEGER NOT NULL, cohort_id TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (ns, cohort_id)) WITHOUT ROWID;
CREATE TABLE listed (cohort_id TEXT PRIMARY KEY, name TEXT, created TEXT) WITHOUT ROWID;
CREATE TABLE delta (
    ns INTEGER NOT NULL, seq INTEGER NOT NULL, external_id TEXT NOT NULL,
    cohort_id TEXT NOT NULL, name TEXT NOT NULL, op INTEGER NOT NULL, session TEXT NOT NULL,
    PRIMARY KEY (ns, seq)) WITHOUT ROWID;
"""
"""This run's input: membership snapshots, their cohorts, the ``cohorts`` listing, change records.
The diff adds its own working tables (:mod:`target_braze.ledger.diff`)."""


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

    def stage_changes(self, ns: int, rows: Iterable[tuple[int, str, str, str, int, str]]) -> None:
        """Add change rows ``(seq, external_id, cohort_id, name, op, session)`` of ``ns``."""
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT INTO delta VALUES ({int(ns)}, ?, ?, ?, ?, ?, ?)", rows)
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

    # -- the plan's changes, read back ----------------------------------------------------

    def changes_by_user(self, batch: int = 5000) -> Iterator[tuple[str, list[Change]]]:
        """Yield ``(external_id, changes)`` for every user in the last plan, ordered by user.

        A second connection reads the staging file so ledger writes can interleave.
        """
        reader = sqlite3.connect(self._staging, check_same_thread=False)  # closed where it ends
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
        reader = sqlite3.connect(self._staging, check_same_thread=False)  # closed where it ends
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

    # -- the published file -----------------------------------------------------------------

    def memberships(self) -> int:
        """Rows in the ledger (every namespace)."""
        return int(self.db.execute("SELECT COUNT(*) FROM ledger.members").fetchone()[0])

    def publish_id(self) -> str | None:
        """The publish id of the ledger as opened (a new one with every publish); None if none."""
        has_meta = self.db.execute(
            "SELECT 1 FROM ledger.sqlite_master WHERE type='table' AND name=?", (META_TABLE,)
        ).fetchone()
        if not has_meta:
            return None
        row = self.db.execute(
            f"SELECT value FROM ledger.{META_TABLE} WHERE key='publish_id'"
        ).fetchone()
        return None if row is None else str(row[0])

    def stamp(self, values: Mapping[str, object] | None = None) -> None:
        """Write ``values`` and a new publish id into the meta table (see :func:`stamp`)."""
        _stamp(self.db, "ledger", values)

    def backup(self, path: Path) -> None:
        """Copy the ledger, consistent, to the new file ``path``."""
        target = sqlite3.connect(path)
        try:
            self.db.backup(target, name="ledger")
        finally:
            target.close()

    def close(self) -> None:
        """Close both files and delete the staging directory."""
        self.db.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def _stamp(db: sqlite3.Connection, schema: str, values: Mapping[str, object] | None) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.{META_TABLE} "
        "(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
    )
    rows = {**(values or {}), "publish_id": uuid.uuid4().hex}
    db.executemany(
        f"INSERT OR REPLACE INTO {schema}.{META_TABLE} VALUES (?, ?)",
        [(k, str(v)) for k, v in rows.items()],
    )


def stamp(path: Path) -> None:
    """Give the ledger file ``path`` (created when missing) a new publish id.

    Every upload of a ledger carries a new publish id, so its bytes are unique: a writer whose
    reply was lost recognises its own object by them (:mod:`braze_mixpanel_common.conditional`).
    """
    db = sqlite3.connect(path)
    try:
        _stamp(db, "main", None)
        db.commit()
    finally:
        db.close()


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def read_mark(path: Path) -> LedgerMark | None:
    """The mark stored in the ledger file ``path``; None when the file does not exist.

    A ledger written before marks existed reads as generation 0 without an identity.
    """
    if not path.exists():
        return None
    db = _read_only(path)
    try:
        has_meta = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (META_TABLE,)
        ).fetchone()
        meta = dict(db.execute(f"SELECT key, value FROM {META_TABLE}")) if has_meta else {}
    finally:
        db.close()
    return LedgerMark.from_meta(meta)


def has_members(path: Path) -> bool:
    """True when the ledger file ``path`` exists and holds at least one membership."""
    if not path.exists():
        return False
    db = _read_only(path)
    try:
        return db.execute("SELECT 1 FROM members LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
