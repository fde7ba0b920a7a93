"""End to end: ``meltano run currents-to-mixpanel`` from a generated export into the emulator.

    .venv/bin/python -m bench.pipeline_bench [--sizes 100000 1200000] [--runs 3]

Uses the project's Meltano install (``make meltano``: .venv-meltano and .meltano/) with the
``sandbox`` environment, redirected by environment variables to the generated export and to a
fresh emulator (``--keep count``) per run, and a throw-away system database (so every run is a
full sync). meltano.yml sends the tap's records as BATCH files; at the largest size the bare
``tap-braze-currents | target-mixpanel`` shell pipeline from the dev venv runs too, with the
plugins' defaults (RECORD messages), and both runners again with the other kind of message.
Reports Currents events per second (wall clock, the whole run including Meltano's start-up),
CPU per process and the peak RSS of each process, sampled from /proc every 50 ms, at each size
(to show that memory stays flat). Without Meltano only the pipe runs, and the table says so.
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

from bench.common import (
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
from bench.dataset import currents_export

# Made absolute here, once: the runs start Meltano from other working directories.
MELTANO = Path(os.environ.get("MELTANO", REPO / ".venv-meltano" / "bin" / "meltano")).absolute()


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
    """The tap's ``batch_config`` as meltano.yml sets it: plain JSONL files under ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": folder.as_uri()},
    }


def record_project(folder: Path) -> Path:
    """A copy of the Meltano project whose tap sends RECORD messages, sharing REPO's .meltano.

    meltano.yml gives the tap ``batch_config`` (and target-mixpanel ``batch_delete_after_load``);
    an environment variable cannot unset a setting, so the copy drops both.
    """
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    for kind, name, setting in (
        ("extractors", "tap-braze-currents", "batch_config"),
        ("loaders", "target-mixpanel", "batch_delete_after_load"),
    ):
        for plugin in project["plugins"][kind]:
            if plugin["name"] == name:
                plugin.get("config", {}).pop(setting, None)
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    link = folder / ".meltano"
    if link.is_symlink():  # perhaps to another checkout's project
        link.unlink()
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
    target_settings: dict[str, Any] = {
        "api_url": emulator.url,
        "project_id": "12345",
        "service_account_username": "sa-user.mp-service-account",
        "service_account_secret": SA_SECRET,
        "dead_letter_path": str(work / "dead-letters.jsonl"),
    }
    if batching:
        target_settings["batch_delete_after_load"] = True  # as meltano.yml sets it
    target_config.write_text(json.dumps(target_settings))
    tap = f"{VENV_BIN / 'tap-braze-currents'} --config {shlex.quote(str(tap_config))}"
    target = f"{VENV_BIN / 'target-mixpanel'} --config {target_config}"
    return ["bash", "-o", "pipefail", "-c", f"{tap} | {target} > /dev/null"]


def run_once(events: int, use_meltano: bool, batch: bool) -> tuple[Run, dict[str, Any]]:
    """One full sync of the export of ``events`` events into a fresh emulator.

    ``batch``: the tap sends BATCH messages (as meltano.yml configures it) or RECORDs (the
    plugins' defaults).
    """
    root = currents_export(events)
    work = OUT / "pipeline"
    with MixpanelEmulator(keep="count") as emulator:
        env = run_env(root, emulator, work)
        if use_meltano:
            if not batch:
                env["MELTANO_PROJECT_ROOT"] = str(record_project(work / "record-project"))
            command = [str(MELTANO), "--environment=sandbox", "run", "currents-to-mixpanel"]
        else:
            batching = batch_config(work / "batches") if batch else None
            command = pipe_command(root, emulator, work, batching)
        before = emulator.cpu_seconds()
        cwd = Path(env.get("MELTANO_PROJECT_ROOT", REPO))
        run = measure(command, env=env, sample_tree=True, cwd=cwd)
        stats = {**emulator.stats(), "emulator_cpu": emulator.cpu_seconds() - before}
    return run, stats


def bench_size(events: int, runs: int, use_meltano: bool, batch: bool) -> PipelineResult:
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
        + (" with BATCH" if batch else " with RECORDs"),
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

    ``meltano run currents-to-mixpanel`` runs as meltano.yml configures it (BATCH between the
    tap and the target) at every size. With Meltano installed, at the largest size, the bare
    ``tap | target`` pipe runs with the plugins' defaults (RECORD messages), and both again
    with the other kind of message; ``ratios`` gets meltano run's throughput as a share of the
    bare pipe's, with the like-for-like shares beside it.
    """
    use_meltano = meltano_ready()
    rows: list[Row] = []
    results = [bench_size(events, runs, use_meltano, batch=use_meltano) for events in sizes]
    for res in results:
        rows += _rows(res)
    if use_meltano:
        largest = max(sizes)
        pipe = bench_size(largest, runs, False, batch=False)
        pipe_batch = bench_size(largest, runs, False, batch=True)
        meltano_records = bench_size(largest, runs, True, batch=False)
        for res in (pipe, pipe_batch, meltano_records):
            rows += _rows(res)
        if ratios is not None:
            ours = results[sizes.index(largest)]
            share, cpu = ours.rate / pipe.rate * 100, ours.cpu_rate / pipe.cpu_rate * 100
            met = "met" if share >= goal else "MISSED"
            ratios.append(
                Row(
                    f"meltano run (BATCH, as shipped) / bare pipe (RECORDs, defaults), "
                    f"{ours.events:,} events",
                    share,
                    "% (wall)",
                    f"goal >= {goal:g}: {met}; per CPU-s of all processes {cpu:.1f}%; "
                    f"like for like: BATCH {ours.rate / pipe_batch.rate:.0%}, RECORDs "
                    f"{meltano_records.rate / pipe.rate:.0%}",
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
