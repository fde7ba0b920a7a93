"""Every benchmark, one table (``make bench``).

    .venv/bin/python bench/run_all.py            # full: >= 1M events, median of 3 runs
    .venv/bin/python bench/run_all.py --quick    # smoke check: small sizes, 1 run
    .venv/bin/python bench/run_all.py --only compare pipeline

Benchmarks (data from the project's generator, cached under bench/out/; local emulators):
  tap       tap-braze-currents beside a bare fastavro loop over the same Avro files
  compare   target-mixpanel vs mixpanel-import (npm) vs mixpanel-utils (PyPI), same events,
            same /import emulator (bench/mixpanel_compare.py)
  pipeline  ``meltano run currents-to-mixpanel`` at two sizes (bench/pipeline_bench.py)
  braze     target-braze's diff of a 1M-member cohort (bench/target_braze_bench.py)
The table is also written to bench/out/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from common import OUT, REPO, Row, measure, median, print_table
from dataset import currents_export, prepare
from mixpanel_compare import compare
from pipeline_bench import pipeline_rows
from tap_braze_currents_bench import bare_loop, tap_run

BENCHMARKS = ("tap", "compare", "pipeline", "braze")


def goal(value: float, *, at_least: float | None = None, at_most: float | None = None) -> str:
    """'goal >= x: met' / 'goal <= x: MISSED'."""
    if at_least is not None:
        return f"goal >= {at_least:,g}: {'met' if value >= at_least else 'MISSED'}"
    assert at_most is not None
    return f"goal <= {at_most:,g}: {'met' if value <= at_most else 'MISSED'}"


def tap_rows(events: int, runs: int) -> list[Row]:
    """tap-braze-currents as a share of a bare fastavro loop over the same files."""
    root = currents_export(events)
    files = sorted(root.rglob("*.avro"))
    bare = [bare_loop(files) for _ in range(runs)]
    records = bare[0][0]
    taps = [tap_run(root) for _ in range(runs)]
    bare_rate = records / median([seconds for _, seconds in bare])
    tap_rate = records / median([seconds for seconds, _ in taps])
    share = tap_rate / bare_rate
    return [
        Row("bare fastavro loop (same files)", bare_rate, "records/s"),
        Row("tap-braze-currents full sync", tap_rate, "records/s", f"{share:.0%} of bare loop"),
        Row("tap / bare fastavro loop", share * 100, "%", goal(share * 100, at_least=40)),
        Row("tap-braze-currents peak RSS", max(mb for _, mb in taps), "MB"),
    ]


def compare_rows(events: int, runs: int) -> list[Row]:
    """The side-by-side Mixpanel import, with the goals on target-mixpanel's figures."""
    data = prepare(events)
    rows = compare(data, runs, None, None)
    by_name = {r.name: r for r in rows}
    ours = by_name["target-mixpanel: per client CPU-s"]
    ours.note = goal(ours.figure, at_least=30_000) + " (one core)"
    mpi = by_name.get("mixpanel-import (npm " + _mpi_version() + "): wall clock")
    if mpi is not None:
        ratio = by_name["target-mixpanel: wall clock"].figure / mpi.figure
        mpi.note += "; " + goal(ratio, at_least=1.5)
    source = f"built from {data.currents_events:,} generated Currents events"
    return [
        Row("compare data set (same for all three)", data.mixpanel_events, "events", source),
        *rows,
    ]


def _mpi_version() -> str:
    from comparison_tools import MPI_PACKAGE

    return json.loads(MPI_PACKAGE.read_text())["version"] if MPI_PACKAGE.exists() else "?"


def braze_rows(members: int, runs: int) -> list[Row]:
    """target-braze: first sync and 5%/5% churn diff of one cohort (each run a fresh process)."""
    script = [sys.executable, str(REPO / "bench" / "target_braze_bench.py")]
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
    for name in args.only:
        print(f"== {name} ...", flush=True)
        if name == "tap":
            rows += tap_rows(events, runs)
        elif name == "compare":
            rows += compare_rows(events, runs)
        elif name == "pipeline":
            rows += pipeline_rows(sizes, runs)
        else:
            rows += braze_rows(members, runs)
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
