"""Side by side into the same /import emulator: target-mixpanel, mixpanel-import, mixpanel-utils.

    .venv/bin/python -m bench.mixpanel_compare [--events 1200000] [--runs 3]

All three send the same Mixpanel events (``events.ndjson`` of :mod:`dataset`, which is what
target-mixpanel builds from the tap's records): target-mixpanel reads the tap's Singer messages
(so its figure includes the Currents -> Mixpanel mapping), the two tools read the NDJSON.

Each run starts a fresh emulator (``--keep count``: full validation, no stored events) pinned to
CPU 0 and the client pinned to CPU 1, so a client gets exactly one core and cannot steal the
emulator's. Figures: events/s on the wall clock, events per second of the client's own CPU time
and its CPU-µs per event (the emulator cannot bound those), the client's peak RSS, and the
emulator's own CPU: µs per event and its load (near 100% means the emulator, not the client,
set the wall-clock figure).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    CLIENT_CPU,
    OUT,
    PROJECT_ID,
    REPO,
    SA_SECRET,
    SA_USER,
    VENV_BIN,
    MixpanelEmulator,
    Row,
    Run,
    measure,
    median,
    pinned,
    print_table,
)
from bench.comparison_tools import ensure_mixpanel_import, mixpanel_utils_version, mpu_python
from bench.dataset import Dataset, prepare


@dataclass
class ToolResult:
    """Medians over the runs of one client."""

    name: str
    events: int
    wall: float
    cpu: float
    rss_mb: float
    emulator_load: float
    emulator_cpu: float

    @property
    def rate(self) -> float:
        """Events per wall-clock second."""
        return self.events / self.wall

    @property
    def cpu_rate(self) -> float:
        """Events per second of the client's own CPU time."""
        return self.events / self.cpu

    @property
    def cpu_us(self) -> float:
        """The client's CPU-µs per event."""
        return self.cpu / self.events * 1e6

    @property
    def emulator_us(self) -> float:
        """The emulator's CPU-µs per event."""
        return self.emulator_cpu / self.events * 1e6


def target_command(url: str, work: Path) -> list[str]:
    """target-mixpanel with its defaults (10 requests in flight, gzip, strict=1)."""
    config = work / "target-config.json"
    config.write_text(
        json.dumps(
            {
                "api_url": url,
                "project_id": PROJECT_ID,
                "service_account_username": SA_USER,
                "service_account_secret": SA_SECRET,
                "dead_letter_path": str(work / "dead-letters.jsonl"),
            }
        )
    )
    return [str(VENV_BIN / "target-mixpanel"), "--config", str(config)]


def run_client(name: str, data: Dataset, runs: int, workers: int | None) -> ToolResult:
    """Median of ``runs`` imports of the data set by client ``name``."""
    work = OUT / "compare"
    work.mkdir(parents=True, exist_ok=True)
    results: list[tuple[Run, float]] = []  # each run, and the emulator's CPU seconds
    for _ in range(runs):
        with MixpanelEmulator(keep="count") as emulator:
            stdin = None
            if name == "target-mixpanel":
                command, stdin = target_command(emulator.url, work), data.singer
            elif name == "mixpanel-import":
                command = ["node", str(REPO / "bench" / "mpi_driver.js"), emulator.url]
                command += [str(data.ndjson), *([str(workers)] if workers else [])]
            else:
                command = [str(mpu_python()), str(REPO / "bench" / "mpu_driver.py"), emulator.url]
                command += [str(data.ndjson), *([str(workers)] if workers else [])]
            before = emulator.cpu_seconds()
            run = measure(pinned(command, CLIENT_CPU), stdin=stdin, cwd=work)
            emulator_cpu = emulator.cpu_seconds() - before
            stats = emulator.stats()
        if stats["imported"] != data.mixpanel_events or stats["rejected"]:
            raise RuntimeError(f"{name}: emulator stats {stats}, expected {data.mixpanel_events}")
        results.append((run, emulator_cpu))
    return ToolResult(
        name,
        data.mixpanel_events,
        wall=median([r.wall for r, _ in results]),
        cpu=median([r.cpu for r, _ in results]),
        rss_mb=max(r.rss_mb for r, _ in results),
        emulator_load=median([cpu / r.wall for r, cpu in results]),
        emulator_cpu=median([cpu for _, cpu in results]),
    )


CLIENTS = ("target-mixpanel", "mixpanel-import", "mixpanel-utils")


def compare(
    data: Dataset,
    runs: int,
    mpi_workers: int | None,
    mpu_pool: int | None,
    only: tuple[str, ...] = CLIENTS,
) -> list[Row]:
    """Run the clients and return the table rows (ratios relative to target-mixpanel)."""
    clients: list[tuple[str, str, int | None]] = [("target-mixpanel", "", None)]
    mpi_version = ensure_mixpanel_import() if "mixpanel-import" in only else "skipped"
    if mpi_version and "mixpanel-import" in only:
        clients.append(("mixpanel-import", f"npm {mpi_version}", mpi_workers))
    if "mixpanel-utils" in only:
        clients.append(("mixpanel-utils", f"PyPI {mixpanel_utils_version()}", mpu_pool))
    results = {name: run_client(name, data, runs, workers) for name, _, workers in clients}
    ours = results["target-mixpanel"]
    rows: list[Row] = []
    for name, version, _ in clients:
        res = results[name]
        label = f"{name} ({version})" if version else name
        wall_ratio = f"{ours.rate / res.rate:.2f}x" if res is not ours else ""
        cpu_ratio = f"{ours.cpu_rate / res.cpu_rate:.2f}x" if res is not ours else ""
        load = f"emulator CPU {res.emulator_load:.0%}"
        cpu_us = f"{res.cpu_us:.1f} CPU-µs/event"
        rows += [
            Row(f"{label}: wall clock", res.rate, "events/s", _ours(wall_ratio), load),
            Row(
                f"{label}: per client CPU-s",
                res.cpu_rate,
                "events/CPU-s",
                _ours(cpu_ratio),
                cpu_us,
            ),
            Row(f"{label}: peak RSS", res.rss_mb, "MB"),
            Row(
                f"{label}: emulator's own CPU",
                res.emulator_us,
                "CPU-µs/event",
                "",
                f"{res.emulator_load:.0%} of its core",
            ),
        ]
    if not mpi_version:
        rows.append(Row("mixpanel-import: not run (no node/npm)", 0, "-"))
    return rows


def _ours(ratio: str) -> str:
    return f"target-mixpanel is {ratio}" if ratio else ""


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_200_000, help="Currents events generated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mpi-workers", type=int, default=None, help="default: its own (50)")
    parser.add_argument("--mpu-pool", type=int, default=None, help="default: its own (2 x CPUs)")
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=CLIENTS,
        default=list(CLIENTS),
        help="target-mixpanel always",
    )
    args = parser.parse_args()
    data = prepare(args.events)
    print(f"data: {data.mixpanel_events:,} Mixpanel events from {data.currents_events:,} Currents")
    only = tuple(args.clients)
    print_table(compare(data, args.runs, args.mpi_workers, args.mpu_pool, only))


if __name__ == "__main__":
    main()
