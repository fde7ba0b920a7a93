"""Process figures from Linux's /proc: parent, CPU seconds, resident memory, command line.

The one place the benchmarks parse ``/proc/<pid>/stat`` (proc(5)): the fields after the command
name in parentheses, which may itself hold spaces and parentheses.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
# Positions in the fields after ") ": state is 0, so proc(5)'s field n is at n - 3.
_PPID, _UTIME, _STIME, _RSS = 1, 11, 12, 21


@dataclass(frozen=True)
class Stat:
    """What one read of ``/proc/<pid>/stat`` says about a process."""

    ppid: int
    cpu: float
    """User + system CPU seconds so far."""
    rss_mb: float


def stat(pid: int | str) -> Stat | None:
    """The process's figures now, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return Stat(
        ppid=int(fields[_PPID]),
        cpu=(int(fields[_UTIME]) + int(fields[_STIME])) / TICK,
        rss_mb=int(fields[_RSS]) * PAGE_MB,
    )


def cpu_seconds(pid: int) -> float:
    """CPU seconds a running process has used so far (ProcessLookupError once it is gone)."""
    figures = stat(pid)
    if figures is None:
        raise ProcessLookupError(pid)
    return figures.cpu


def argv(pid: int | str) -> list[str]:
    """The process's command line ([] when it is gone or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def label(command: list[str]) -> str:
    """A short name for a process: the plugin executable or module it runs."""
    words = [Path(a).name for a in command]
    for word in words:
        if word.startswith(("tap-", "target-", "meltano")):
            return word
    if "-m" in words:
        return words[words.index("-m") + 1]
    return words[0] if words else "?"


def tree(root: int) -> Iterator[tuple[int, str, Stat]]:
    """(pid, label, figures) of ``root`` and of each of its descendants."""
    children: dict[int, list[int]] = {}
    found: dict[int, tuple[str, Stat]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        figures = stat(entry.name)
        if figures is None:
            continue
        pid = int(entry.name)
        children.setdefault(figures.ppid, []).append(pid)
        found[pid] = (label(argv(pid)), figures)
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in found:
            yield pid, *found[pid]
        stack.extend(children.get(pid, []))


class TreeSampler(threading.Thread):
    """Samples the RSS and CPU of a process and all its descendants every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.peak_total = 0.0
        self.peaks: dict[str, float] = {}
        """Peak RSS in MB per process label."""
        self.cpu: dict[str, float] = {}
        """CPU seconds per process label, as last sampled."""

    def run(self) -> None:
        """Sample until :attr:`stop` is set."""
        while not self.stop.wait(0.05):
            total = 0.0
            for _pid, name, figures in tree(self.pid):
                total += figures.rss_mb
                self.peaks[name] = max(self.peaks.get(name, 0.0), figures.rss_mb)
                self.cpu[name] = max(self.cpu.get(name, 0.0), figures.cpu)
            self.peak_total = max(self.peak_total, total)
