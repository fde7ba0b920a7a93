"""What the cohort-loop reconciliation reads from the ledger, and the one correction it writes.

The reconciliation (:mod:`reconcile.cohort_loop`) samples users of each synced cohort and
compares the ledger with Mixpanel and Braze. It reads through these functions so every SQL
statement stays in this package. Its ``repair`` first makes the ledger say what Braze was seen to
hold for the drifted users (:func:`record_observed`), inside a normal target-braze run that then
diffs, sends and publishes as any run does.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from target_braze.ledger import Ledger

_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


@dataclass(frozen=True)
class SyncedCohort:
    """A cohort the ledger holds members of: its id, the name it was last sent as, its size."""

    cohort_id: str
    name: str
    members: int


def synced_cohorts(ledger: Ledger, ns: int) -> list[SyncedCohort]:
    """Every cohort with ledger rows in namespace ``ns``, by id.

    A cohort renamed mid-sync may hold two names for a while; the one most members hold wins.
    """
    rows = ledger.db.execute(
        "SELECT cohort_id, name, COUNT(*) FROM ledger.members WHERE ns=? "
        "GROUP BY cohort_id, name ORDER BY cohort_id, COUNT(*) DESC, name",
        (ns,),
    ).fetchall()
    found: dict[str, SyncedCohort] = {}
    for cohort_id, name, count in rows:
        previous = found.get(cohort_id)
        total = int(count) + (previous.members if previous else 0)
        found[cohort_id] = SyncedCohort(cohort_id, previous.name if previous else name, total)
    return list(found.values())


def sample_members(
    ledger: Ledger, ns: int, cohort_id: str, size: int, rng: random.Random
) -> list[str]:
    """A uniform random sample of ``size`` users the ledger holds in the cohort (reservoir).

    One pass over the cohort's rows, ``size`` ids in memory; ``rng`` makes it repeatable.
    """
    cursor = ledger.db.execute(
        "SELECT DISTINCT external_id FROM ledger.members WHERE ns=? AND cohort_id=? "
        "ORDER BY external_id",
        (ns, cohort_id),
    )
    reservoir: list[str] = []
    seen = 0
    while rows := cursor.fetchmany(5000):
        for (external_id,) in rows:
            seen += 1
            if len(reservoir) < size:
                reservoir.append(external_id)
            else:
                slot = rng.randrange(seen)
                if slot < size:
                    reservoir[slot] = external_id
    return reservoir


def held_names(
    ledger: Ledger, ns: int, cohort_id: str, external_ids: Iterable[str]
) -> dict[str, set[str]]:
    """For each of ``external_ids`` the ledger holds in the cohort: the names it recorded."""
    ids = list(dict.fromkeys(external_ids))
    held: dict[str, set[str]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = ledger.db.execute(
            "SELECT external_id, name FROM ledger.members WHERE ns=? AND cohort_id=? "
            f"AND external_id IN ({marks})",
            (ns, cohort_id, *chunk),
        )
        for external_id, name in rows:
            held.setdefault(external_id, set()).add(name)
    return held


def record_observed(
    ledger: Ledger, ns: int, cohort_id: str, observed: Mapping[str, str | None]
) -> int:
    """Make the ledger say what Braze was seen to hold; returns the rows changed.

    ``observed`` maps a user to the cohort's name Braze holds for them (None: none).

    Only the repair of a reconciliation calls this, inside a target-braze run that holds the
    lease and publishes the ledger afterwards.
    """
    if ledger.read_only or not observed:
        return 0
    changed = 0
    ledger.db.execute("BEGIN")
    try:
        for external_id, name in observed.items():
            cur = ledger.db.execute(
                "DELETE FROM ledger.members WHERE ns=? AND cohort_id=? AND external_id=? "
                "AND name IS NOT ?",
                (ns, cohort_id, external_id, name),
            )
            changed += cur.rowcount
            if name is not None:
                cur = ledger.db.execute(
                    "INSERT OR IGNORE INTO ledger.members VALUES (?, ?, ?, ?)",
                    (ns, external_id, cohort_id, name),
                )
                changed += cur.rowcount
        ledger.db.execute("COMMIT")
    except BaseException:
        ledger.db.execute("ROLLBACK")
        raise
    return changed
