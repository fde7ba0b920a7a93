"""The demo's last step: the export-loop reconciliation over the hours the demo wrote.

It runs in-process against the emulators (the query emulator counts what ``/import`` stored) with
the same settings a production run takes (docs/reconciliation.md), and prints the JSON summary
without its rows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import timedelta
from typing import Any

from reconcile.export_loop.check import reconcile_export_loop
from reconcile.export_loop.settings import Settings
from reconcile.report import summary
from sandbox.emulators.mixpanel_query import DEFAULT_PROJECT_ID, DEFAULT_SERVICE_ACCOUNTS
from sandbox.loop.stack import SAMPLE_START, Sandbox

# The demo's Currents hours (rounds 1-3), with the hour before: the generator writes some events
# a minute before their partition's hour.
WINDOW_START = SAMPLE_START - timedelta(hours=1)
WINDOW_HOURS = 24


def run_export_reconciliation(box: Sandbox) -> dict[str, Any]:
    """Reconcile the demo's day of Currents with the Mixpanel emulator; the JSON summary."""
    (username, secret), *_ = DEFAULT_SERVICE_ACCOUNTS.items()
    config = {
        "storage_url": str(box.work / "currents"),
        "api_url": box.loop.query_url,
        "project_id": str(DEFAULT_PROJECT_ID),
        "service_account_username": username,
        "service_account_secret": os.environ.get(
            "TAP_MIXPANEL_COHORTS_SERVICE_ACCOUNT_SECRET", secret
        ),
    }
    logger = logging.getLogger("reconcile-export-loop")
    for name in (logger.name, "reconcile"):  # the demo prints the summary; warnings are in it
        logging.getLogger(name).setLevel(logging.ERROR)
    settings = Settings.from_config(config, logger)
    end = WINDOW_START + timedelta(hours=WINDOW_HOURS)
    started = time.monotonic()
    report = reconcile_export_loop(settings, WINDOW_START, end, logger=logger)
    result = summary(report, settings.threshold)
    result["seconds"] = round(time.monotonic() - started, 2)
    result["rows"] = len(result["rows"])
    result["queries_answered_by_emulator"] = box.loop.query.queries["events"]
    return result


def print_export_reconciliation(result: dict[str, Any]) -> None:
    """The summary, as ``reconcile-export-loop --summary`` writes it (rows counted, not listed)."""
    verdict = "clean" if result["passed"] and not result["drift"] else "DRIFT"
    print(
        f"\nExport-loop reconciliation ({verdict}): Currents files vs Mixpanel, per event and hour"
    )
    print(json.dumps(result, indent=2))
