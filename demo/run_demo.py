"""The closed-loop demo: Currents -> Mixpanel -> cohorts -> Braze (query, then webhook path).

Run by ``make demo`` (which installs the project and Meltano first)::

    .venv/bin/python -m demo.run_demo --meltano .venv-meltano/bin/meltano
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from demo.reconcile_round import print_reconcile_report, run_cohort_reconciliation
from demo.reconciliation import print_export_reconciliation, run_export_reconciliation
from demo.report import print_report
from demo.webhook_round import print_webhook_report, run_webhook_rounds
from sandbox.loop.stack import (
    Sandbox,
    cohort_changes,
    external_ids,
    generate_round,
    open_sandbox,
    skipped_reasons,
    tap_summary,
)


@dataclass
class Round:
    """What one round sent and what each system held afterwards."""

    number: int
    events_written: int
    files_written: int
    tap_summary: str
    skipped: Counter[str]
    imported_by_name: Counter[str]
    cohort_sizes: dict[str, int]
    braze_changes: dict[str, tuple[int, int]]
    braze_users: dict[str, list[str]]
    seconds: dict[str, float] = field(default_factory=dict)


def run_round(box: Sandbox, number: int, events: int) -> Round:
    """Deliver a Currents batch, import it, rebuild cohorts and sync them to Braze."""
    export = generate_round(box.work, number, events)
    box.seed_braze_users(external_ids(export))
    print(f"  round {number}: {len(export.events)} Currents events in {len(export.files)} files")
    seconds = {}
    logs = {}
    for job in ("currents-to-mixpanel", "cohorts-to-braze"):
        started = time.monotonic()
        logs[job] = box.run("run", job, log_name=f"round{number}-{job}")
        seconds[job] = time.monotonic() - started
        print(f"  round {number}: meltano run {job} ok ({seconds[job]:.1f} s)")
    currents_log, cohorts_log = logs["currents-to-mixpanel"], logs["cohorts-to-braze"]
    return Round(
        number=number,
        events_written=len(export.events),
        files_written=len(export.files),
        tap_summary=tap_summary(currents_log),
        skipped=skipped_reasons(currents_log),
        imported_by_name=Counter(e["event"] for e in box.loop.importer.events),
        cohort_sizes={c.name: len(c.members) for c in box.loop.cohorts()},
        braze_changes=cohort_changes(cohorts_log),
        braze_users=box.braze_cohorts(),
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> int:
    """Run two rounds of the loop against the local emulators and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meltano", default=".venv-meltano/bin/meltano")
    parser.add_argument("--events", type=int, default=4000, help="events in round 1")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from CI or a process manager) unwinds like Ctrl-C: runs and emulators stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    print("Closed-loop demo: starting the Mixpanel and Braze emulators on 127.0.0.1")
    try:
        with open_sandbox(args.meltano) as box:
            print(
                f"  Mixpanel /import {box.loop.import_url}, query API {box.loop.query_url}, "
                f"Braze {box.braze.url}"
            )
            first = run_round(box, 1, args.events)
            second = run_round(box, 2, args.events // 3)
            webhook = run_webhook_rounds(box, args.events // 3)
            export_check = run_export_reconciliation(box)
            cohort_check = run_cohort_reconciliation(box)
            stats = dict(box.loop.importer.stats)
            work = box.work
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print("Emulators stopped.\n")
    print_report([first, second], stats, work, time.monotonic() - started)
    print_webhook_report(webhook)
    print_export_reconciliation(export_check)
    print_reconcile_report(cohort_check)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
