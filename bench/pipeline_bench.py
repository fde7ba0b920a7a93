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
from dataclasses import dataclass

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

MELTANO = REPO / ".venv-meltano" / "bin" / "meltano"


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

    @property
    def rate(self) -> float:
        """Currents events per wall-clock second."""
        return self.events / self.wall


def meltano_ready() -> bool:
    """Whether ``make meltano`` has installed Meltano and the plugins."""
    return MELTANO.exists() and (REPO / ".meltano" / "loaders" / "target-mixpanel").exists()


def run_once(events: int, use_meltano: bool) -> tuple[Run, dict]:
    """One full sync of the export of ``events`` events into a fresh emulator."""
    root = currents_export(events)
    work = OUT / "pipeline"
    work.mkdir(parents=True, exist_ok=True)
    database = work / "meltano.db"
    database.unlink(missing_ok=True)
    with MixpanelEmulator(keep="count") as emulator:
        env = {
            **os.environ,
            "MELTANO_DATABASE_URI": f"sqlite:///{database}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_BRAZE_CURRENTS_STORAGE_URL": str(root / "currents"),
            "TARGET_MIXPANEL_API_URL": emulator.url,
            "TARGET_MIXPANEL_SERVICE_ACCOUNT_SECRET": SA_SECRET,
            "TARGET_MIXPANEL_DEAD_LETTER_PATH": str(work / "dead-letters.jsonl"),
        }
        if use_meltano:
            command = [str(MELTANO), "--environment=sandbox", "run", "currents-to-mixpanel"]
        else:
            tap_config, target_config = work / "tap.json", work / "target.json"
            tap_config.write_text(json.dumps({"storage_url": str(root / "currents")}))
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
            command = ["bash", "-o", "pipefail", "-c", f"{tap} | {target} > /dev/null"]
        run = measure(command, env=env, sample_tree=True)
        stats = emulator.stats()
    return run, stats


def bench_size(events: int, runs: int, use_meltano: bool) -> PipelineResult:
    """Median of ``runs`` syncs of ``events`` Currents events."""
    root = currents_export(events)
    generated = json.loads((root / "done.json").read_text())["events"]
    results = [run_once(events, use_meltano) for _ in range(runs)]
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
        runner="meltano run" if use_meltano else "tap | target (no Meltano)",
    )


def pipeline_rows(sizes: list[int], runs: int) -> list[Row]:
    """Table rows for each size (events/s and per-process peak RSS)."""
    use_meltano = meltano_ready()
    rows: list[Row] = []
    for events in sizes:
        res = bench_size(events, runs, use_meltano)
        label = f"{res.runner} currents-to-mixpanel, {res.events:,} events"
        rows += [
            Row(f"{label}: throughput", res.rate, "events/s", "goal >= 30,000"),
            Row(f"{label}: tap peak RSS", res.tap_mb, "MB", "goal <= 250"),
            Row(f"{label}: target peak RSS", res.target_mb, "MB", "goal <= 250"),
            Row(f"{label}: all processes", res.total_mb, "MB", "sum incl. meltano"),
        ]
    return rows


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_200_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print_table(pipeline_rows(args.sizes, args.runs))


if __name__ == "__main__":
    main()
