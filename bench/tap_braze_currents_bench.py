"""Throughput of tap-braze-currents beside a bare fastavro loop over the same files.

    .venv/bin/python bench/tap_braze_currents_bench.py --events 500000 --runs 3

Generates a Currents export with the project's generator (cached under bench/out/), then times
(a) a bare ``fastavro.reader`` loop over every file and (b) the tap's full sync, as a subprocess
writing Singer messages to /dev/null. Prints the median of ``--runs`` runs, records/s, the ratio,
and the tap's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastavro

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.currents_gen import DEFAULT_EVENT_TYPES, generate_export  # noqa: E402


def export_root(events: int, hours: int, files_per_hour: int) -> Path:
    root = REPO / "bench" / "out" / f"currents-{events}-{hours}x{files_per_hour}"
    marker = root / "done.json"
    if marker.exists():
        return root
    per_file = max(1, events // (len(DEFAULT_EVENT_TYPES) * hours * files_per_hour))
    export = generate_export(
        root,
        seed=1,
        hours=hours,
        files_per_hour=files_per_hour,
        events_per_file=per_file,
        corrupt=False,
        duplicates=0.0,
    )
    marker.write_text(json.dumps({"events": len(export.events), "files": len(export.files)}))
    return root


def bare_loop(files: list[Path]) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for path in files:
        with path.open("rb") as handle:
            for _ in fastavro.reader(handle):
                count += 1
    return count, time.perf_counter() - start


def tap_run(root: Path) -> tuple[float, int]:
    """Seconds for a full sync, and the tap's peak RSS in MB."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump({"storage_url": str(root / "currents")}, config)
    command = [str(REPO / ".venv" / "bin" / "tap-braze-currents"), "--config", config.name]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    Path(config.name).unlink()
    if process.returncode:
        raise SystemExit(f"tap-braze-currents failed with exit code {process.returncode}")
    return elapsed, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hours", type=int, default=4, help="date= partitions per event type")
    parser.add_argument("--files-per-hour", type=int, default=5, help="fewer = bigger files")
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        export_root(args.events, args.hours, args.files_per_hour)
        return
    # Generate in a child process: a forked tap would otherwise inherit (and report in its
    # peak RSS) the generator's memory.
    subprocess.run([sys.executable, __file__, "--generate-only", *sys.argv[1:]], check=True)
    root = export_root(args.events, args.hours, args.files_per_hour)
    files = sorted(root.rglob("*.avro"))
    meta = json.loads((root / "done.json").read_text())

    bare = [bare_loop(files) for _ in range(args.runs)]
    records = bare[0][0]
    bare_rate = records / statistics.median(seconds for _, seconds in bare)
    taps = [tap_run(root) for _ in range(args.runs)]
    tap_rate = records / statistics.median(seconds for seconds, _ in taps)
    peak = max(mb for _, mb in taps)

    per_file = meta["events"] // meta["files"]
    print(f"export: {meta['events']} events in {meta['files']} files of ~{per_file} ({root})")
    print(f"{'benchmark':<40} {'figure':>12}  unit")
    print(f"{'bare fastavro loop':<40} {bare_rate:>12,.0f}  records/s")
    print(f"{'tap-braze-currents (full sync)':<40} {tap_rate:>12,.0f}  records/s")
    print(f"{'tap / bare loop':<40} {tap_rate / bare_rate:>12.1%}  (goal >= 40%)")
    print(f"{'tap peak RSS':<40} {peak:>12,}  MB")


if __name__ == "__main__":
    main()
