"""The demo's closing report: plain text, a screen or two."""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

SAMPLE_USERS = 6


def _width(text: str) -> int:
    """Terminal columns of ``text`` (CJK and emoji take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> str:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell + " " * (width - _width(cell)) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def print_report(rounds: list[Any], stats: dict[str, Any], work: Path, seconds: float) -> None:
    """Print events per Mixpanel event name, skips, cohorts and the Braze users.

    Args:
        rounds: The demo rounds (``demo.run_demo.Round``), in order.
        stats: The Mixpanel emulator's counters after the last round.
        work: Work directory holding the logs.
        seconds: Wall time of the whole demo.
    """
    first, last = rounds[0], rounds[-1]
    labels = [f"round {r.number}" for r in rounds]
    print("=" * 72)
    print(f"CLOSED-LOOP DEMO REPORT ({seconds:.0f} s, logs in {work / 'logs'})")
    print("=" * 72)

    print("\n1. Currents -> Mixpanel (meltano run currents-to-mixpanel)")
    for r in rounds:
        print(f"  round {r.number}: tap: {r.tap_summary}")
    names = sorted(last.imported_by_name, key=lambda n: (-last.imported_by_name[n], n))
    rows = [("Mixpanel event (stored, cumulative)", *labels)]
    rows += [(n, *(str(r.imported_by_name.get(n, 0)) for r in rounds)) for n in names]
    rows.append(("total", *(str(sum(r.imported_by_name.values())) for r in rounds)))
    print(_table(rows))
    print(
        f"  Mixpanel dropped {stats.get('duplicates', 0)} at-least-once duplicates on "
        f"$insert_id and rejected {stats.get('rejected', 0)}."
    )
    reasons = sorted(set().union(*(r.skipped for r in rounds)))
    if reasons:
        rows = [("skipped by target-mixpanel, reason", *labels)]
        rows += [(reason, *(str(r.skipped.get(reason, 0)) for r in rounds)) for reason in reasons]
        print(_table(rows))

    print("\n2. Mixpanel cohorts (built by the emulated project from the imported events)")
    rows = [("cohort", *(f"{label} size" for label in labels), "added", "removed")]
    for name in last.cohort_sizes:
        added, removed = last.braze_changes.get(name, (0, 0))
        sizes = [str(r.cohort_sizes.get(name, 0)) for r in rounds]
        rows.append((name, *sizes, str(added), str(removed)))
    print(_table(rows))
    print("  (added/removed: what target-braze sent in the last round)")

    print("\n3. Braze users' mixpanel_cohorts (meltano run cohorts-to-braze)")
    users = last.braze_users
    holders = Counter(name for cohorts in users.values() for name in cohorts)
    with_any = sum(1 for cohorts in users.values() if cohorts)
    print(f"  {len(users)} Braze users, {with_any} in at least one cohort:")
    print(_table([(name, str(count)) for name, count in holders.most_common()], indent="    "))
    print("  sample users (one per combination of cohorts):")
    examples: dict[tuple[str, ...], str] = {}
    for uid in sorted(users):
        examples.setdefault(tuple(sorted(users[uid])), uid)
    for combination in sorted(examples, key=lambda c: (-len(c), c))[:SAMPLE_USERS]:
        print(f"    {examples[combination]}: {users[examples[combination]]}")
    _print_removals(first.braze_users, last.braze_users)


def _print_removals(before: dict[str, list[str]], after: dict[str, list[str]]) -> None:
    losses = {
        uid: sorted(set(before[uid]) - set(after.get(uid, [])))
        for uid in before
        if set(before[uid]) - set(after.get(uid, []))
    }
    print(f"  removals in round 2: {len(losses)} users left a cohort, e.g.")
    for uid in sorted(losses)[:SAMPLE_USERS]:
        print(f"    {uid}: {before[uid]} -> {after.get(uid, [])}")
