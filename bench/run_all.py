"""Every benchmark, one table (``make bench``).

    .venv/bin/python -m bench.run_all            # full: >= 1M events, median of 3 runs
    .venv/bin/python -m bench.run_all --quick    # smoke check: small sizes, 1 run
    .venv/bin/python -m bench.run_all --only compare pipeline

Benchmarks (data from the project's generator, cached under bench/out/; local emulators):
  tap       tap-braze-currents beside a bare fastavro loop over the same Avro files, both timed
            as whole processes, on 600,000 events in 15,000-event files and in one file
  compare   target-mixpanel vs mixpanel-import (npm) vs mixpanel-utils (PyPI), same events,
            same /import emulator (bench/mixpanel_compare.py)
  pipeline  ``meltano run currents-to-mixpanel`` at two sizes, and the bare ``tap | target``
            pipe on the largest (bench/pipeline_bench.py)
  braze     target-braze's diff of a 1M-member cohort (bench/target_braze_bench.py)
The table ends with the issue's three ratios and their goals. It is also written to
bench/out/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from bench.common import OUT, Row, measure, median, print_table
from bench.dataset import prepare
from bench.mixpanel_compare import compare
from bench.pipeline_bench import pipeline_rows
from bench.tap_braze_currents_bench import CASE_LABELS, CASES, run_case

BENCHMARKS = ("tap", "compare", "pipeline", "braze")


def goal(value: float, *, at_least: float | None = None, at_most: float | None = None) -> str:
    """'goal >= x: met' / 'goal <= x: MISSED'."""
    if at_least is not None:
        return f"goal >= {at_least:,g}: {'met' if value >= at_least else 'MISSED'}"
    assert at_most is not None
    return f"goal <= {at_most:,g}: {'met' if value <= at_most else 'MISSED'}"


# The goals, each a ratio measured in one run.
TAP_GOAL = 60.0  # % of a bare fastavro loop, whole processes, at any file size
TARGET_GOAL, TARGET_STRETCH = 2.0, 2.5  # x mixpanel-import on the wall clock
PIPELINE_GOAL = 90.0  # % of the bare tap | target pipe


def tap_rows(runs: int, ratios: list[Row]) -> list[Row]:
    """tap-braze-currents as a share of a bare fastavro loop, per case (whole processes)."""
    rows: list[Row] = []
    for case in CASES:
        res = run_case(case, runs)
        label = CASE_LABELS[case]
        wall, cpu = res.wall_share * 100, res.cpu_share * 100
        rows += [
            Row(f"bare fastavro loop, {label}", res.records / res.bare.wall, "records/s"),
            Row(
                f"tap-braze-currents, {label}",
                res.records / res.tap.wall,
                "records/s",
                f"{res.records / res.tap.cpu:,.0f} records/CPU-s; bare loop "
                f"{res.records / res.bare.cpu:,.0f}",
            ),
            Row(f"tap-braze-currents peak RSS, {label}", res.tap.rss_mb, "MB"),
        ]
        ratios.append(
            Row(
                f"tap / bare fastavro loop, {label}",
                wall,
                "% (wall)",
                f"{goal(wall, at_least=TAP_GOAL)}; per CPU-s {cpu:.1f}%",
            )
        )
    return rows


def compare_rows(events: int, runs: int, ratios: list[Row]) -> list[Row]:
    """The side-by-side Mixpanel import, with the goals on target-mixpanel's figures."""
    data = prepare(events)
    rows = compare(data, runs, None, None)
    by_name = {r.name: r for r in rows}
    label = "mixpanel-import (npm " + _mpi_version() + ")"
    mpi = by_name.get(f"{label}: wall clock")
    if mpi is not None:
        ours = by_name["target-mixpanel: wall clock"]
        ratio = ours.figure / mpi.figure
        cpu = by_name["target-mixpanel: per client CPU-s"].figure / (
            by_name[f"{label}: per client CPU-s"].figure
        )
        emulator = [by_name[f"{name}: emulator's own CPU"] for name in ("target-mixpanel", label)]
        busy = " vs ".join(f"{r.note.split()[0]} ({r.figure:.1f} µs/event)" for r in emulator)
        ratios.append(
            Row(
                "target-mixpanel / mixpanel-import",
                ratio,
                "x (wall)",
                f"{goal(ratio, at_least=TARGET_GOAL)} (stretch {TARGET_STRETCH}); per CPU-s "
                f"{cpu:.2f}x; emulator CPU: {busy}",
            )
        )
    source = f"built from {data.currents_events:,} generated Currents events"
    return [
        Row("compare data set (same for all three)", data.mixpanel_events, "events", source),
        *rows,
    ]


def _mpi_version() -> str:
    from bench.comparison_tools import MPI_PACKAGE

    return json.loads(MPI_PACKAGE.read_text())["version"] if MPI_PACKAGE.exists() else "?"


def braze_rows(members: int, runs: int) -> list[Row]:
    """target-braze: first sync and 5%/5% churn diff of one cohort (each run a fresh process)."""
    script = [sys.executable, "-m", "bench.target_braze_bench"]
    results = []
    for _ in range(runs):
        run = measure([*script, "--members", str(members), "--json"], capture=True)
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
    first = median([r["first"] for r in results])
    second = median([r["second"] for r in results])
    rss = max(r["rss_mb"] for r in results)
    full = min(r["full"] for r in results) * 100
    label = f"target-braze {members:,}-member cohort"
    return [
        Row(f"{label}: first sync (all adds)", first, "s", goal(first, at_most=20)),
        Row(f"{label}: 5%/5% churn diff", second, "s", goal(second, at_most=20)),
        Row(f"{label}: peak RSS", rss, "MB", goal(rss, at_most=300)),
        Row(f"{label}: full /users/track requests", full, "%", goal(full, at_least=99)),
    ]


def main() -> None:
    """Run the selected benchmarks and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    events = 120_000 if args.quick else 1_200_000  # ~90% become Mixpanel events
    sizes = [20_000, 120_000] if args.quick else [100_000, 1_200_000]
    members = 100_000 if args.quick else 1_000_000
    started = time.perf_counter()
    rows: list[Row] = []
    ratios: list[Row] = []
    for name in args.only:
        print(f"== {name} ...", flush=True)
        if name == "tap":
            rows += tap_rows(runs, ratios)
        elif name == "compare":
            rows += compare_rows(events, runs, ratios)
        elif name == "pipeline":
            rows += pipeline_rows(sizes, runs, ratios, PIPELINE_GOAL)
        else:
            rows += braze_rows(members, runs)
    rows += ratios  # the three ratios, last
    header = (
        f"{'quick smoke check, ' if args.quick else ''}median of {runs} run(s); "
        f"{platform.processor() or platform.machine()}, {_cpus()} CPUs, Python "
        f"{platform.python_version()}; {time.perf_counter() - started:.0f} s in all"
    )
    print()
    table = print_table(rows, header)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ("results-quick.md" if args.quick else "results.md")).write_text(table + "\n")


def _cpus() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
