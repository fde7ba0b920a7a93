"""Where ``meltano run currents-to-mixpanel`` spends Meltano's own CPU, phase by phase.

    .venv/bin/python -m bench.meltano_split [--events 120000] [--runs 1] [--env NAME=VALUE ...]
                                            [--cprofile OUT.prof | --py-spy OUT.json] [--pipe]

Runs the job as bench/pipeline_bench.py does (sandbox environment, a fresh emulator and a
throw-away system database per run) and samples ``/proc`` every 10 ms: the CPU seconds (user +
sys) of the Meltano process at each moment one of its children starts or ends, and each
child's own CPU. Meltano's CPU is split into

  start-up   until its first child starts (imports, project, settings, plugin invocation);
  per-run    from there until the tap that syncs starts (``--discover`` runs, state look-up,
             config files, the target's start);
  relay      while the syncing tap runs (Meltano copies each of its lines to the target);
  shutdown   from the tap's end to Meltano's exit (the target's last lines, state, clean-up).

``--cprofile`` runs Meltano under cProfile timed in CPU seconds (it inflates the relay several
times over); ``--py-spy`` records Meltano's stacks (speedscope, 100 Hz, ``--nonblocking``; on a
busy machine it also counts time spent runnable, so read it for *what*, not *how much*).
``--pipe`` measures the bare ``tap | target`` pipe instead (the same processes without Meltano).
``--env`` tries a lever without editing meltano.yml, e.g. ``--env MELTANO_CLI_LOG_LEVEL=warning``
or ``--env TAP_BRAZE_CURRENTS__CATALOG=/path/catalog.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procfs
from bench.common import OUT, REPO, MixpanelEmulator, measure, median
from bench.dataset import currents_export
from bench.pipeline_bench import MELTANO, pipe_command, run_env

# py-spy comes with the mixpanel-utils venv of bench/comparison_tools.py.
PY_SPY = Path(os.environ.get("PY_SPY", REPO / "bench" / ".venv-mpu" / "bin" / "py-spy")).absolute()


@dataclass
class Child:
    """One process below the runner: its label, arguments and CPU as last sampled."""

    pid: int
    label: str
    argv: list[str]
    started: float  # Meltano's CPU when it was first seen
    ended: float = 0.0  # Meltano's CPU when it was last seen
    cpu: float = 0.0
    seen_at: float = 0.0  # wall seconds since the runner started
    gone_at: float = 0.0

    @property
    def kind(self) -> str:
        """discover, about, sync (the tap that syncs), target, or the label."""
        if "--discover" in self.argv:
            return f"{self.label} --discover"
        if "--about" in self.argv:
            return f"{self.label} --about"
        return self.label


@dataclass
class Timeline:
    """What the sampler saw."""

    meltano_cpu: float = 0.0
    children: dict[int, Child] = field(default_factory=dict)


def _is_meltano(argv: list[str]) -> bool:
    """Meltano itself: its script run directly or by its Python (not py-spy running it)."""
    first = Path(argv[0]).name if argv else ""
    return first.startswith(("meltano", "python")) and procfs.label(argv) == "meltano"


class Sampler(threading.Thread):
    """Follows the process tree below ``root`` every 10 ms, reading only the tree's /proc files."""

    def __init__(self, root: int, root_is_meltano: bool = False) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.timeline = Timeline()
        self.tree = {root}
        self.meltano = root if root_is_meltano else 0
        self.seen: set[str] = set(os.listdir("/proc"))
        self.t0 = time.perf_counter()

    def run(self) -> None:
        """Sample until :attr:`stop` is set."""
        while not self.stop.wait(0.01):
            entries = os.listdir("/proc")
            for name in entries:  # new processes: are they in the tree?
                if name in self.seen or not name.isdigit():
                    continue
                self.seen.add(name)
                stat = procfs.stat(name)
                if stat and stat.ppid in self.tree:
                    pid = int(name)
                    self.tree.add(pid)
                    argv = procfs.argv(pid)
                    label = procfs.label(argv)
                    if _is_meltano(argv) and not self.meltano:
                        self.meltano = pid
                    else:
                        self.timeline.children[pid] = Child(
                            pid,
                            label,
                            argv,
                            started=self.timeline.meltano_cpu,
                            seen_at=time.perf_counter() - self.t0,
                        )
            if not self.meltano and _is_meltano(procfs.argv(self.root)):
                self.meltano = self.root
            if self.meltano:
                stat = procfs.stat(self.meltano)
                if stat:
                    self.timeline.meltano_cpu = stat.cpu
            for child in self.timeline.children.values():
                if child.label in ("meltano", "?", "python", "python3"):  # forked, not yet exec'd
                    child.argv = procfs.argv(child.pid) or child.argv
                    child.label = procfs.label(child.argv)
                stat = procfs.stat(child.pid)
                if stat:
                    child.cpu, child.ended = stat.cpu, self.timeline.meltano_cpu
                    child.gone_at = time.perf_counter() - self.t0


def split(timeline: Timeline) -> dict[str, float]:
    """Meltano's CPU per phase, and each kind of child's CPU."""
    kids = list(timeline.children.values())
    syncs = [c for c in kids if c.kind.startswith("tap-") and " --" not in c.kind]
    total = timeline.meltano_cpu
    first = min((c.started for c in kids), default=total)
    sync_start = syncs[0].started if syncs else total
    sync_end = syncs[0].ended if syncs else total
    result = {
        "meltano: start-up": first,
        "meltano: per-run (discovery, state, config)": sync_start - first,
        "meltano: relay (while the tap runs)": sync_end - sync_start,
        "meltano: shutdown": total - sync_end,
        "meltano: total": total,
    }
    for child in kids:
        key = f"child {child.kind}"
        result[key] = result.get(key, 0.0) + child.cpu
    result["all processes"] = total + sum(c.cpu for c in kids)
    for child in kids:
        print(
            f"  pid {child.pid} {child.kind}: {child.cpu:.2f} CPU-s, {child.seen_at:.1f} -> "
            f"{child.gone_at:.1f} s, Meltano at {child.started:.2f} -> {child.ended:.2f} CPU-s"
        )
    return result


def run_once(events: int, extra_env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    """One measured sync of ``events`` Currents events into a fresh emulator."""
    root = currents_export(events)
    work = OUT / "pipeline"
    with MixpanelEmulator(keep="count") as emulator:
        env = {**run_env(root, emulator, work), **extra_env}
        if args.pipe:
            command = pipe_command(root, emulator, work)
        else:
            command = [str(MELTANO), "--environment=sandbox", "run", "currents-to-mixpanel"]
            if args.cprofile:  # Meltano under cProfile, timed in CPU seconds (process_time)
                code = (
                    "import cProfile, sys, time\n"
                    "p = cProfile.Profile(time.process_time); out = sys.argv.pop(1)\n"
                    "sys.argv[0] = 'meltano'; p.enable()\n"
                    "try:\n    from meltano.cli import main; main()\n"
                    "finally:\n    p.disable(); p.dump_stats(out)"
                )
                command = [str(MELTANO.parent / "python"), "-c", code, str(args.cprofile)]
                command += ["--environment=sandbox", "run", "currents-to-mixpanel"]
            if args.py_spy:
                spy = [
                    str(PY_SPY),
                    "record",
                    "--format",
                    "speedscope",
                    "--rate",
                    "100",
                    "--nonblocking",
                ]
                spy += ["--output", str(args.py_spy), "--", str(MELTANO.parent / "python")]
                command = spy + command
        holder: dict[str, Sampler] = {}
        start = time.perf_counter()
        run = measure(
            command,
            env=env,
            cwd=REPO,
            on_start=lambda pid: _sample(pid, holder, root_is_meltano=bool(args.cprofile)),
        )
        sampler = holder["sampler"]
        sampler.stop.set()
        sampler.join()
        stats = emulator.stats()
    result = split(sampler.timeline)
    if args.pipe:  # the pipe's shell is no Meltano
        result = {k: v for k, v in result.items() if not k.startswith("meltano")}
    result["wait4: all processes"] = run.cpu
    result["wall (meaningless on a busy machine)"] = time.perf_counter() - start
    result["imported"] = stats["imported"]
    return result


def _sample(pid: int, holder: dict[str, Sampler], root_is_meltano: bool) -> None:
    holder["sampler"] = Sampler(pid, root_is_meltano)
    holder["sampler"].start()


def _absolute(value: str) -> Path:
    return Path(value).absolute()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for Meltano")
    # Output paths made absolute once: Meltano may run in another working directory.
    parser.add_argument("--py-spy", type=_absolute, help="record Meltano's stacks to this file")
    parser.add_argument("--cprofile", type=_absolute, help="profile Meltano (CPU s) to this file")
    parser.add_argument("--pipe", action="store_true", help="the bare tap | target pipe")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    results = [run_once(args.events, extra, args) for _ in range(args.runs)]
    keys = list(dict.fromkeys(k for r in results for k in r))
    summary = {k: median([r.get(k, 0.0) for r in results]) for k in keys}
    for key, value in summary.items():
        print(f"{key:<48} {value:10.2f}")
    (OUT / "meltano-split-last.json").write_text(json.dumps({"runs": results}))


if __name__ == "__main__":
    main()
