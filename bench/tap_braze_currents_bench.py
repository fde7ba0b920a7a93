"""Throughput of tap-braze-currents beside a bare fastavro loop over the same files.

    .venv/bin/python -m bench.tap_braze_currents_bench --case files-15000 file-600000 --runs 3

Each case is 600,000 generated Currents events (cached under bench/out/): ``files-15000`` in 40
files of 15,000 events (Braze's file size), ``file-600000`` in one file. Both sides are timed as
whole processes, one after the other: (a) a bare ``fastavro.reader`` loop over every file, in a
fresh interpreter, and (b) the tap's full sync writing Singer messages to /dev/null. Figures
are medians of ``--runs``; the ratio is given on the wall clock and on each process's own CPU
time (user + sys, from wait4), which other work on the machine disturbs far less.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import OUT, REPO, VENV_BIN, Run, measure, median

MODULE = "bench.tap_braze_currents_bench"  # run as python -m, also for its own child processes

CUSTOM_EVENT = "users.behaviors.CustomEvent"
# name -> generate_export arguments; 600,000 events each.
CASES: dict[str, dict[str, object]] = {
    "files-15000": {"hours": 5, "files_per_hour": 1, "events_per_file": 15_000},
    "file-600000": {
        "event_types": (CUSTOM_EVENT,),
        "hours": 1,
        "files_per_hour": 1,
        "events_per_file": 600_000,
    },
}
CASE_LABELS = {
    "files-15000": "40 files of 15,000 events",
    "file-600000": "one file of 600,000 events",
}


@dataclass
class TapResult:
    """Medians of one case: the bare loop and the tap, wall and CPU seconds."""

    case: str
    records: int
    bare: Run
    tap: Run

    @property
    def wall_share(self) -> float:
        """Tap rate / bare-loop rate on the wall clock."""
        return self.bare.wall / self.tap.wall

    @property
    def cpu_share(self) -> float:
        """Tap rate / bare-loop rate per CPU-second of each process."""
        return self.bare.cpu / self.tap.cpu


def export_root(events: int, hours: int, files_per_hour: int) -> Path:
    """The mixed export of the pipeline and compare benchmarks (8 event types)."""
    from sandbox.loop.currents_gen import DEFAULT_EVENT_TYPES

    per_file = max(1, events // (len(DEFAULT_EVENT_TYPES) * hours * files_per_hour))
    return _generate(
        OUT / f"currents-{events}-{hours}x{files_per_hour}",
        {"hours": hours, "files_per_hour": files_per_hour, "events_per_file": per_file},
    )


def case_root(case: str) -> Path:
    """The export of one tap case, generated once."""
    return _generate(OUT / f"tap-{case}", CASES[case])


def _generate(root: Path, arguments: dict[str, object]) -> Path:
    from sandbox.loop.currents_gen import generate_export

    marker = root / "done.json"
    if not marker.exists():
        export = generate_export(root, seed=1, corrupt=False, duplicates=0.0, **arguments)  # type: ignore[arg-type]
        marker.write_text(json.dumps({"events": len(export.events), "files": len(export.files)}))
    return root


def bare_loop(root: Path) -> int:
    """Decode every record of every file under ``root`` with fastavro, nothing else."""
    import fastavro

    count = 0
    for path in sorted(root.rglob("*.avro")):
        with path.open("rb") as handle:
            for _ in fastavro.reader(handle):
                count += 1
    return count


def bare_process(root: Path) -> tuple[Run, int]:
    """The bare loop as a whole process (a fresh interpreter, as the tap is)."""
    run = measure([sys.executable, "-m", __spec__.name, "--bare-loop", str(root)], capture=True)
    return run, int(run.stdout.strip())


def tap_process(root: Path) -> Run:
    """A full sync of ``root`` by tap-braze-currents, its messages written to /dev/null."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump({"storage_url": str(root / "currents")}, config)
    try:
        return measure([str(VENV_BIN / "tap-braze-currents"), "--config", config.name])
    finally:
        Path(config.name).unlink()


def run_case(case: str, runs: int) -> TapResult:
    """Alternate bare-loop and tap runs over one case's files; medians of each."""
    root = case_root(case)
    bares, taps, records = [], [], 0
    for _ in range(runs):
        bare, records = bare_process(root)
        bares.append(bare)
        taps.append(tap_process(root))
    return TapResult(case, records, _median_run(bares), _median_run(taps))


def _median_run(runs: list[Run]) -> Run:
    return Run(
        wall=median([r.wall for r in runs]),
        cpu=median([r.cpu for r in runs]),
        rss_mb=max(r.rss_mb for r in runs),
    )


def tap_code() -> str:
    """Where the tap's subprocesses import ``tap_braze_currents`` from (the tree measured)."""
    command = [sys.executable, "-c", "import tap_braze_currents as t; print(t.__file__)"]
    run = subprocess.run(command, capture_output=True, text=True, check=True, cwd="/")
    return run.stdout.strip()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--case", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bare-loop", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate-case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hours", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--files-per-hour", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        print(bare_loop(args.bare_loop))
        return
    if args.generate_case:
        case_root(args.generate_case)
        return
    if args.generate_only:  # the mixed export of dataset.py, generated in a child process
        export_root(args.events, args.hours, args.files_per_hour)
        return
    print(f"tap code: {tap_code()}")
    for case in args.case:
        # Generated in a child process: a forked child would report this one's memory as its
        # peak RSS.
        command = [sys.executable, "-m", __spec__.name, "--generate-case", case]
        subprocess.run(command, check=True, cwd=REPO)
        res = run_case(case, args.runs)
        print(f"{CASE_LABELS[case]} ({res.records:,} records), median of {args.runs}:")
        for name, run in (("bare fastavro loop", res.bare), ("tap-braze-currents", res.tap)):
            print(
                f"  {name:<20} wall {run.wall:6.1f} s ({res.records / run.wall:8,.0f} rec/s)  "
                f"CPU {run.cpu:6.1f} s ({res.records / run.cpu:8,.0f} rec/CPU-s)  "
                f"peak RSS {run.rss_mb:5.0f} MB"
            )
        print(
            f"  tap / bare loop: {res.wall_share:.1%} wall, {res.cpu_share:.1%} CPU (goal >= 60%)"
        )


if __name__ == "__main__":
    main()
