"""Shared helpers of the benchmarks: measured child processes, the emulator, the table.

A child process with its CPU time and peak RSS, the Mixpanel emulator as a subprocess, medians,
and the result table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procfs import TreeSampler, cpu_seconds

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
# The venv running the benchmark (its plugins' console scripts; PYTHONPATH picks the tree).
VENV_BIN = Path(sys.executable).parent
SA_USER, SA_SECRET, PROJECT_ID = "sa-user.mp-service-account", "sa-secret", "12345"
# Two-core machines: the emulator gets one core, the client under test the other.
EMULATOR_CPU, CLIENT_CPU = "0", "1"


@dataclass
class Run:
    """One measured child process: wall seconds, its own CPU seconds, peak RSS in MB."""

    wall: float
    cpu: float
    rss_mb: float
    tree_rss_mb: float = 0.0
    per_command_mb: dict[str, float] = field(default_factory=dict)
    per_command_cpu: dict[str, float] = field(default_factory=dict)
    stdout: str = ""


@dataclass
class Row:
    """One line of the result table."""

    name: str
    figure: float
    unit: str
    ratio: str = ""
    note: str = ""


def pinned(command: Sequence[str], cpu: str | None) -> list[str]:
    """Prefix ``command`` with ``taskset -c cpu`` when there are at least two CPUs."""
    if cpu is None or (os.cpu_count() or 1) < 2:
        return list(command)
    return ["taskset", "-c", cpu, *command]


def measure(
    command: Sequence[str],
    *,
    stdin: Path | None = None,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    sample_tree: bool = False,
    capture: bool = False,
    on_start: Callable[[int], None] | None = None,
) -> Run:
    """Run ``command`` to completion; its wall time, CPU time and peak RSS (from wait4).

    ``ru_maxrss`` of wait4 is the largest of the child and its waited-for descendants;
    ``sample_tree`` also samples the whole process tree (for pipelines); ``on_start`` is
    called with the child's pid as soon as it runs.
    """
    out_handle: Any
    if capture:
        out_handle = subprocess.PIPE
    elif stdout is not None:
        out_handle = stdout.open("wb")
    else:
        out_handle = subprocess.DEVNULL
    in_handle = stdin.open("rb") if stdin else subprocess.DEVNULL
    err_path = OUT / "last-stderr.log"
    err_path.parent.mkdir(parents=True, exist_ok=True)
    with err_path.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdin=in_handle, stdout=out_handle, stderr=err, env=env, cwd=cwd
        )
        if on_start is not None:
            on_start(process.pid)
        sampler = TreeSampler(process.pid) if sample_tree else None
        if sampler:
            sampler.start()
        text = process.stdout.read().decode() if capture and process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    if sampler:
        sampler.stop.set()
        sampler.join()
    for handle in (out_handle, in_handle):
        if hasattr(handle, "close"):
            handle.close()
    code = os.waitstatus_to_exitcode(status)
    if code:
        tail = err_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(map(str, command))} exited with {code}:\n{tail}")
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        tree_rss_mb=sampler.peak_total if sampler else 0.0,
        per_command_mb=dict(sampler.peaks) if sampler else {},
        per_command_cpu=dict(sampler.cpu) if sampler else {},
        stdout=text,
    )


class MixpanelEmulator:
    """``sandbox.emulators.mixpanel_import`` as a process (one core), keeping only counters."""

    def __init__(self, keep: str = "count", port: int = 0) -> None:
        self.keep = keep
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> MixpanelEmulator:
        command = [sys.executable, "-m", "sandbox.emulators.mixpanel_import"]
        command += ["--port", str(self.port), "--keep", self.keep]
        self.process = subprocess.Popen(
            pinned(command, EMULATOR_CPU), cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        return self

    def stats(self) -> dict[str, Any]:
        """The emulator's counters (requests, received, imported, duplicates, rejected, ...)."""
        with urllib.request.urlopen(f"{self.url}/_emulator/stats") as response:
            return json.load(response)

    def cpu_seconds(self) -> float:
        """CPU seconds the emulator process has used so far."""
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


def median(values: Sequence[float]) -> float:
    """statistics.median, kept here so every benchmark reports the same statistic."""
    return statistics.median(values)


def print_table(rows: list[Row], header: str = "") -> str:
    """Format the rows as one aligned table (also returned, for the README)."""
    lines = []
    if header:
        lines.append(header)
    name_w = max(len("benchmark"), *(len(r.name) for r in rows))
    lines.append(f"| {'benchmark':<{name_w}} | {'figure':>12} | {'unit':<16} | ratio / goal |")
    lines.append(f"|{'-' * (name_w + 2)}|{'-' * 14}:|{'-' * 18}|{'-' * 14}|")
    for r in rows:
        figure = f"{r.figure:,.0f}" if abs(r.figure) >= 100 else f"{r.figure:,.2f}"
        extra = " ".join(x for x in (r.ratio, r.note) if x)
        lines.append(f"| {r.name:<{name_w}} | {figure:>12} | {r.unit:<16} | {extra} |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text
