"""The demo's cohort-loop reconciliation: a clean audit, a drift made by hand, its repair.

After the webhook rounds, ``reconcile-cohorts`` audits every synced cohort (Mixpanel's query API
vs target-braze's ledger vs Braze's ``/users/export/ids``). Then one user's ``mixpanel_cohorts``
is edited in the Braze emulator as a person would in Braze's dashboard; the next audit names that
user, ``--repair`` sends the fix through target-braze's ledger, and the repair's own re-check and
a last audit are clean.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.cohort_loop.cli import build_parser, run
from sandbox.loop.stack import Sandbox

ATTRIBUTE = "mixpanel_cohorts"
SAMPLE = 1000  # more than any demo cohort holds: every synced user is checked


@dataclass
class Audit:
    """One ``reconcile-cohorts`` run: its exit code, printed table and JSON summary."""

    label: str
    code: int
    table: str
    summary: dict[str, Any]
    seconds: float


@dataclass
class ReconcileDemo:
    """The four audits and the user edited by hand."""

    edited_user: str
    removed_name: str
    audits: list[Audit]


def _configs(box: Sandbox) -> tuple[Path, Path]:
    """The two plugins' sandbox configs, as `meltano config --unsafe print` would write them."""
    folder = box.work / "reconcile"
    folder.mkdir(parents=True, exist_ok=True)
    tap = {
        "api_url": box.env["TAP_MIXPANEL_COHORTS_API_URL"],
        "project_id": 12345,
        "service_account_username": "sa-user.mp-service-account",
        "service_account_secret": box.env["TAP_MIXPANEL_COHORTS_SERVICE_ACCOUNT_SECRET"],
    }
    target = {
        "rest_endpoint": box.env["TARGET_BRAZE_REST_ENDPOINT"],
        "api_key": box.env["TARGET_BRAZE_API_KEY"],
        "ledger_path": box.env["TARGET_BRAZE_LEDGER_PATH"],
        "dead_letter_path": str(box.work / "reconcile" / "dead-letters.jsonl"),
    }
    paths = folder / "tap-mixpanel-cohorts.json", folder / "target-braze.json"
    for path, config in zip(paths, (tap, target), strict=True):
        path.write_text(json.dumps(config), encoding="utf-8")
        path.chmod(0o600)
    return paths


def _audit(box: Sandbox, label: str, *extra: str) -> Audit:
    tap, target = _configs(box)
    summary = box.work / "reconcile" / f"{label.replace(' ', '-')}.json"
    argv = ["--tap-config", str(tap), "--target-config", str(target)]
    argv += ["--sample-size", str(SAMPLE), "--seed", "1", "--summary", str(summary), *extra]
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = run(build_parser().parse_args(argv))
    seconds = time.monotonic() - started
    answer = json.loads(summary.read_text(encoding="utf-8"))
    result = Audit(label, code, out.getvalue(), answer, seconds)
    print(f"  reconcile-cohorts {' '.join(extra) or 'audit'}: exit {code} ({label})")
    return result


def run_cohort_reconciliation(box: Sandbox) -> ReconcileDemo:
    """Audit, edit one user in Braze by hand, audit, repair, audit."""
    audits = [_audit(box, "first audit")]
    users = box.braze_cohorts()
    user = next(uid for uid, names in users.items() if names)
    removed = users[user][0]
    with box.braze._state_lock:  # a person removes one value in Braze's dashboard
        box.braze.users[user][ATTRIBUTE] = [n for n in users[user] if n != removed]
    print(f"  Braze: removed '{removed}' from {user}'s {ATTRIBUTE} by hand")
    audits.append(_audit(box, "after the edit"))
    audits.append(_audit(box, "repair", "--repair"))
    audits.append(_audit(box, "last audit"))
    return ReconcileDemo(user, removed, audits)


def print_reconcile_report(demo: ReconcileDemo) -> None:
    """Section 5 of the report: the cohort-loop reconciliation."""
    print("\n5. Cohort-loop reconciliation (reconcile-cohorts: Mixpanel vs ledger vs Braze)")
    for audit in demo.audits:
        summary = audit.summary
        print(
            f"  {audit.label}: exit {audit.code}, {summary['checked']} users in "
            f"{summary['cohorts']} cohorts, drift {summary['drift']}, "
            f"{summary['mixpanel_queries']} Mixpanel queries, "
            f"{summary['braze_export_requests']} Braze export requests, {audit.seconds:.1f} s"
        )
        if audit.label == "after the edit":
            print("    " + audit.table.rstrip().replace("\n", "\n    "))
            for row in summary["rows"]:
                for kind, ids in row.get("examples", {}).items():
                    print(f"    {row['name']}: {kind} {', '.join(ids)}")
        if "repair" in summary:
            print(f"    repaired: {json.dumps(summary['repair'])}")
    print(
        f"  (the user edited by hand, {demo.edited_user}, lost '{demo.removed_name}'; the repair\n"
        "   re-adds it through target-braze, whose ledger records it as sent)"
    )
