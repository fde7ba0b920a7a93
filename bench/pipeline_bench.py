"""End to end: ``meltano run currents-to-mixpanel`` from a generated export into the emulator.

    .venv/bin/python bench/pipeline_bench.py [--sizes 100000 1200000] [--runs 3]

Uses the project's Meltano install (``make meltano``: .venv-meltano and .meltano/) with the
``sandbox`` environment, redirected by environment variables to the generated export and to a
fresh emulator (``--keep count``) per run, and a throw-away system database (so every run is a
full sync). Without Meltano it times the same ``tap-braze-currents | target-mixpanel`` shell
pipeline from the dev venv, and says so. Reports Currents events per second (wall clock, the
whole run including Meltano's start-up) and the peak RSS of each process, sampled from /proc
every 50 ms, at each size (to show that memory stays flat).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    OUT,
    REPO,
    SA_SECRET,
    VENV_BIN,
    MixpanelEmulator,
    Row,
    Run,
    measure,
    median,
    print_table,
)
from dataset import currents_export

MELTANO = Path(os.environ.get("MELTANO", REPO / ".venv-meltano" / "bin" / "meltano"))


@dataclass
class PipelineResult:
    """Medians of one size."""

    events: int
    imported: int
    wall: float
    tap_mb: float
    target_mb: float
    total_mb: float
    runner: str
    cpu: float
    emulator_cpu: float
    stage_cpu: dict[str, float]

    @property
    def rate(self) -> float:
        """Currents events per wall-clock second."""
        return self.events / self.wall

    @property
    def cpu_rate(self) -> float:
        """Currents events per CPU-second of the pipeline's own processes (not the emulator)."""
        return self.events / self.cpu


def meltano_ready() -> bool:
    """Whether ``make meltano`` has installed Meltano and the plugins."""
    return MELTANO.exists() and (REPO / ".meltano" / "loaders" / "target-mixpanel").exists()


def batch_config(folder: Path) -> dict[str, Any]:
    """The SDK's ``batch_config`` for the tap: gzip JSONL files under ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": folder.as_uri()},
    }


def batch_project(folder: Path, batching: dict[str, Any]) -> Path:
    """A copy of the Meltano project whose tap has ``batch_config``, sharing REPO's .meltano.

    ``batch_config`` is not a declared setting of the tap in meltano.yml, and Meltano passes an
    undeclared setting only from the project file, so the copy carries it; meltano.yml itself
    stays as it is.
    """
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    for plugin in project["plugins"]["extractors"]:
        if plugin["name"] == "tap-braze-currents":
            plugin.setdefault("config", {})["batch_config"] = batching
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    link = folder / ".meltano"
    if not link.exists():
        link.symlink_to(REPO / ".meltano")
    return folder


def run_env(root: Path, emulator: MixpanelEmulator, work: Path) -> dict[str, str]:
    """The environment of one run: the export, the emulator, a fresh throw-away system database.

    The database is a copy of an empty, migrated one: no state (every run is a full sync), and
    no schema migration in the measured run, which a scheduled project's database never needs.
    """
    work.mkdir(parents=True, exist_ok=True)
    database = work / "meltano.db"
    database.unlink(missing_ok=True)
    if meltano_ready():
        shutil.copyfile(_migrated_database(work), database)
    return {
        **os.environ,
        "MELTANO_DATABASE_URI": f"sqlite:///{database}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_BRAZE_CURRENTS_STORAGE_URL": str(root / "currents"),
        "TARGET_MIXPANEL_API_URL": emulator.url,
        "TARGET_MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
        "TARGET_MIXPANEL_DEAD_LETTER_PATH": str(work / "dead-letters.jsonl"),
    }


def _migrated_database(work: Path) -> Path:
    """An empty Meltano system database with every migration applied (made once)."""
    template = work / "meltano-migrated.db"
    if not template.exists():
        partial = template.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        env = {
            **os.environ,
            "MELTANO_DATABASE_URI": f"sqlite:///{partial}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        command = [str(MELTANO), "--environment=sandbox", "state", "list"]
        subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True)
        partial.rename(template)
    return template


def pipe_command(
    root: Path, emulator: MixpanelEmulator, work: Path, batching: dict[str, Any] | None = None
) -> list[str]:
    """The bare ``tap-braze-currents | target-mixpanel`` pipe (the dev venv's executables)."""
    work.mkdir(parents=True, exist_ok=True)
    tap_config, target_config = work / "tap.json", work / "target.json"
    tap_settings: dict[str, Any] = {"storage_url": str(root / "currents")}
    if batching:
        tap_settings["batch_config"] = batching
    tap_config.write_text(json.dumps(tap_settings))
    target_config.write_text(
        json.dumps(
            {
                "api_url": emulator.url,
                "project_id": "12345",
                "service_account_username": "sa-user.mp-service-account",
                "service_account_secret": SA_SECRET,
                "dead_letter_path": str(work / "dead-letters.jsonl"),
            }
        )
    )
    tap = f"{VENV_BIN / 'tap-braze-currents'} --config {shlex.quote(str(tap_config))}"
    target = f"{VENV_BIN / 'target-mixpanel'} --config {target_config}"
    return ["bash", "-o", "pipefail", "-c", f"{tap} | {target} > /dev/null"]


def run_once(events: int, use_meltano: bool, batch: bool = False) -> tuple[Run, dict[str, Any]]:
    """One full sync of the export of ``events`` events into a fresh emulator.

    ``batch`` gives the tap the SDK's ``batch_config`` (BATCH messages instead of RECORDs).
    """
    root = currents_export(events)
    work = OUT / "pipeline"
    with MixpanelEmulator(keep="count") as emulator:
        env = run_env(root, emulator, work)
        batching = batch_config(work / "batches") if batch else None
        if use_meltano:
            if batching:  # an undeclared setting: only a project file can pass it
                env["MELTANO_PROJECT_ROOT"] = str(batch_project(work / "batch-project", batching))
            command = [str(MELTANO), "--environment=sandbox", "run", "currents-to-mixpanel"]
        else:
            command = pipe_command(root, emulator, work, batching)
        before = emulator.cpu_seconds()
        cwd = Path(env.get("MELTANO_PROJECT_ROOT", REPO))
        run = measure(command, env=env, sample_tree=True, cwd=cwd)
        stats = {**emulator.stats(), "emulator_cpu": emulator.cpu_seconds() - before}
    return run, stats


def bench_size(events: int, runs: int, use_meltano: bool, batch: bool = False) -> PipelineResult:
    """Median of ``runs`` syncs of ``events`` Currents events."""
    root = currents_export(events)
    generated = json.loads((root / "done.json").read_text())["events"]
    results = [run_once(events, use_meltano, batch) for _ in range(runs)]
    imported = {stats["imported"] for _, stats in results}
    if len(imported) != 1 or any(stats["rejected"] for _, stats in results):
        raise RuntimeError(f"pipeline runs disagree: {[stats for _, stats in results]}")
    return PipelineResult(
        events=generated,
        imported=imported.pop(),
        wall=median([r.wall for r, _ in results]),
        tap_mb=max(r.per_command_mb.get("tap-braze-currents", 0.0) for r, _ in results),
        target_mb=max(r.per_command_mb.get("target-mixpanel", 0.0) for r, _ in results),
        total_mb=max(r.tree_rss_mb for r, _ in results),
        runner=("meltano run" if use_meltano else "tap-to-target pipe, no Meltano")
        + (" with BATCH" if batch else ""),
        cpu=median([r.cpu for r, _ in results]),
        emulator_cpu=median([stats["emulator_cpu"] for _, stats in results]),
        stage_cpu={
            name: median([r.per_command_cpu.get(name, 0.0) for r, _ in results])
            for name in ("tap-braze-currents", "target-mixpanel", "meltano")
        },
    )


def pipeline_rows(
    sizes: list[int], runs: int, ratios: list[Row] | None = None, goal: float = 90.0
) -> list[Row]:
    """Table rows for each size (events/s and per-process peak RSS).

    With Meltano installed, the bare ``tap | target`` pipe runs too at the largest size, and
    ``ratios`` gets meltano run's throughput as a share of the pipe's.
    """
    use_meltano = meltano_ready()
    rows: list[Row] = []
    results = [bench_size(events, runs, use_meltano) for events in sizes]
    for res in results:
        rows += _rows(res)
    if use_meltano:  # the same pipe without Meltano in the middle, at the largest size
        pipe = bench_size(max(sizes), runs, False)
        rows += _rows(pipe)
        for use in (True, False):  # and both again with the tap's BATCH messages
            rows += _rows(bench_size(max(sizes), runs, use, batch=True))
        if ratios is not None:
            ours = results[sizes.index(max(sizes))]
            share, cpu = ours.rate / pipe.rate * 100, ours.cpu_rate / pipe.cpu_rate * 100
            met = "met" if share >= goal else "MISSED"
            ratios.append(
                Row(
                    f"meltano run / bare tap | target pipe, {ours.events:,} events",
                    share,
                    "% (wall)",
                    f"goal >= {goal:g}: {met}; per CPU-s of all processes {cpu:.1f}%",
                )
            )
    return rows


def _rows(res: PipelineResult) -> list[Row]:
    label = f"{res.runner}, {res.events:,} events"
    wall = f"{_goal(res.rate >= 30_000)} goal >= 30,000"
    cpu = f"emulator used {res.emulator_cpu / res.wall:.0%} of a core besides"
    stages = [
        Row(f"{label}: {name} alone", res.events / seconds, "events/CPU-s", "per-process CPU")
        for name, seconds in res.stage_cpu.items()
        if seconds
    ]
    return [
        Row(f"{label}: throughput", res.rate, "events/s", wall),
        Row(f"{label}: pipeline CPU", res.cpu_rate, "events/CPU-s", cpu),
        *stages,
        Row(f"{label}: tap peak RSS", res.tap_mb, "MB", f"{_goal(res.tap_mb <= 250)} <= 250"),
        Row(
            f"{label}: target peak RSS",
            res.target_mb,
            "MB",
            f"{_goal(res.target_mb <= 250)} <= 250",
        ),
        Row(f"{label}: all its processes", res.total_mb, "MB", "sum over the process tree"),
    ]


def _goal(met: bool) -> str:
    return "met:" if met else "MISSED:"


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_200_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ratios: list[Row] = []
    rows = pipeline_rows(args.sizes, args.runs, ratios)
    print_table(rows + ratios)


if __name__ == "__main__":
    main()
