"""What every reconciliation check reports: rows, a JSON summary and an exit code.

A check (the export loop, the cohort loop) builds a :class:`Report` out of :class:`Row` objects and
hands it to :func:`finish`, which writes the JSON summary, prints the table and returns the process
exit code. The API, for every check:

- ``Row(key, counts, drift, examples={})``: one line of the report. ``key`` names what the row is
  about (``{"event": "Purchase", "hour": "2026-05-01T13"}``, ``{"cohort_id": "42"}``), ``counts``
  holds the check's figures under its own names (``expected`` / ``found`` / ``difference``, or
  ``sampled`` / ``agree`` / ``missing_in_braze``...), ``drift`` is how many units this row is off
  (>= 0; 0 means the row agrees), ``examples`` lists a few ids per kind of drift.
- ``Report(check, checked, rows, details={})``: ``checked`` is the denominator (events expected,
  users sampled), ``details`` any extra JSON-able facts (window, queries used).
- ``Threshold(max_drift=0, max_ratio=None)``: the report passes while its total drift is at most
  ``max_drift`` or, when ``max_ratio`` is set, its drift / checked ratio is at most ``max_ratio``.
- ``summary(report, threshold) -> dict``, ``write_summary(report, threshold, path)``,
  ``render_table(report, columns, only_drifted=False) -> str`` and
  ``finish(report, threshold, columns, *, summary_path=None, out=None, only_drifted=False)``,
  which prints the table and the verdict, writes the summary and returns the exit code.

Exit codes: :data:`EXIT_CLEAN` (0) within the threshold, :data:`EXIT_DRIFT` (1) past it; checks
use :data:`EXIT_ERROR` (2) when they could not run at all (bad settings, the API refused).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

EXIT_CLEAN = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2


@dataclass(frozen=True)
class Row:
    """One line of a report: what it is about, its figures and how far off it is."""

    key: Mapping[str, str]
    counts: Mapping[str, int]
    drift: int
    examples: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row as the JSON summary writes it (key fields first, then counts)."""
        out: dict[str, Any] = {**self.key, **self.counts, "drift": self.drift}
        if self.examples:
            out["examples"] = {kind: list(ids) for kind, ids in self.examples.items()}
        return out


@dataclass(frozen=True)
class Threshold:
    """How much drift a report may show and still pass."""

    max_drift: int = 0
    max_ratio: float | None = None

    def passed_by(self, drift: int, checked: int) -> bool:
        """True when ``drift`` out of ``checked`` is within this threshold."""
        if self.max_ratio is not None:
            return drift <= self.max_drift or (checked > 0 and drift / checked <= self.max_ratio)
        return drift <= self.max_drift


@dataclass
class Report:
    """The outcome of one check run."""

    check: str
    checked: int
    rows: list[Row]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def drift(self) -> int:
        """The total drift over all rows."""
        return sum(row.drift for row in self.rows)

    @property
    def drifted_rows(self) -> list[Row]:
        """Only the rows that are off."""
        return [row for row in self.rows if row.drift]


def summary(report: Report, threshold: Threshold) -> dict[str, Any]:
    """The JSON summary: totals, the verdict, the drifted rows first, then every row."""
    drift = report.drift
    return {
        "check": report.check,
        "passed": threshold.passed_by(drift, report.checked),
        "checked": report.checked,
        "drift": drift,
        "drift_ratio": round(drift / report.checked, 6) if report.checked else 0.0,
        "threshold": {"max_drift": threshold.max_drift, "max_ratio": threshold.max_ratio},
        "rows_drifted": len(report.drifted_rows),
        **report.details,
        "rows": [row.as_json() for row in report.rows],
    }


def write_summary(report: Report, threshold: Threshold, path: str | os.PathLike[str]) -> None:
    """Write the JSON summary to ``path`` (atomically: a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(summary(report, threshold), indent=2) + "\n", encoding="utf-8")
    partial.replace(target)


def render_table(report: Report, columns: Sequence[str], only_drifted: bool = False) -> str:
    """A plain-text table of the rows: key fields, then ``columns`` from the counts."""
    rows = report.drifted_rows if only_drifted else report.rows
    if not rows:
        return ""
    keys = list(rows[0].key)
    header = [*keys, *columns]
    lines = [header] + [
        [str(row.key.get(k, "")) for k in keys] + [str(row.counts.get(c, "")) for c in columns]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i < len(keys) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def finish(
    report: Report,
    threshold: Threshold,
    columns: Sequence[str],
    *,
    summary_path: str | os.PathLike[str] | None = None,
    out: TextIO | None = None,
    only_drifted: bool = False,
) -> int:
    """Print the table and the verdict, write the JSON summary, return the exit code."""
    stream = out if out is not None else sys.stdout
    table = render_table(report, columns, only_drifted=only_drifted)
    if table:
        print(table, file=stream)
    result = summary(report, threshold)
    verdict = "within threshold" if result["passed"] else "PAST THRESHOLD"
    print(
        f"{report.check}: {report.checked} checked, drift {result['drift']} "
        f"in {result['rows_drifted']} row(s), {verdict}",
        file=stream,
    )
    if summary_path is not None:
        write_summary(report, threshold, summary_path)
    return EXIT_CLEAN if result["passed"] else EXIT_DRIFT
