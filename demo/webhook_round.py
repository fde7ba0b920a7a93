"""The demo's webhook path: Mixpanel's cohort sync -> receiver -> spool -> tap -> target-braze.

After the query-path rounds, the emulated Mixpanel project syncs its cohorts to a real
``mixpanel-cohort-webhook`` process the way Mixpanel's custom-webhook integration does: a
``members`` session per cohort first, then ``add_members``/``remove_members`` diffs. Each cycle
is followed by ``meltano run cohorts-webhook-to-braze``; then Braze is compared with Mixpanel.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from sandbox.emulators.mixpanel_cohort_sync import CohortSyncPusher
from sandbox.loop.stack import Sandbox, cohort_changes, external_ids, generate_round, webhook_path


@dataclass
class WebhookCycle:
    """One cohort-sync cycle and the run that applied it."""

    label: str
    sessions: Counter[str]  # action -> sessions delivered
    pages: int
    members: int
    changes: dict[str, tuple[int, int]]
    mirrors: bool
    seconds: float


def _cycle(box: Sandbox, pusher: CohortSyncPusher, label: str, log_name: str) -> WebhookCycle:
    reports = pusher.sync()
    failed = [r for r in reports if r.failed]
    if failed:
        raise RuntimeError(f"the receiver refused {len(failed)} cohort-sync sessions")
    started = time.monotonic()
    log = box.run("run", "cohorts-webhook-to-braze", log_name=log_name)
    seconds = time.monotonic() - started
    users = box.braze_cohorts()
    mirrors = all(
        {uid for uid, names in users.items() if cohort.name in names}
        == {str(uid) for uid in cohort.members}  # type: ignore[union-attr]
        for cohort in box.loop.cohorts()  # the loop's cohorts are explicit lists
    )
    cycle = WebhookCycle(
        label=label,
        sessions=Counter(r.action for r in reports),
        pages=sum(r.pages for r in reports),
        members=sum(r.members for r in reports),
        changes=cohort_changes(log),
        mirrors=mirrors,
        seconds=seconds,
    )
    sessions = ", ".join(f"{n} {action}" for action, n in sorted(cycle.sessions.items()))
    print(
        f"  webhook {label}: Mixpanel pushed {sessions} sessions ({cycle.pages} pages, "
        f"{cycle.members} members); meltano run cohorts-webhook-to-braze ok ({seconds:.1f} s)"
    )
    return cycle


def run_webhook_rounds(box: Sandbox, events: int) -> list[WebhookCycle]:
    """The first webhook sync of every cohort, then a new Currents hour and its diffs."""
    with webhook_path(box) as (receiver, pusher):
        print(f"  webhook: mixpanel-cohort-webhook on {receiver.url} (Basic auth), spool in .demo")
        first = _cycle(box, pusher, "first sync", "webhook1-cohorts")
        export = generate_round(box.work, 3, events)
        box.seed_braze_users(external_ids(export))
        box.run("run", "currents-to-mixpanel", log_name="round3-currents")
        print(f"  round 3: {len(export.events)} more Currents events imported")
        second = _cycle(box, pusher, "diffs", "webhook2-cohorts")
    return [first, second]


def print_webhook_report(cycles: list[WebhookCycle]) -> None:
    """Section 4 of the report: what each webhook cycle changed in Braze."""
    print("\n4. The webhook path (Mixpanel cohort sync -> mixpanel-cohort-webhook -> spool ->")
    print("   meltano run cohorts-webhook-to-braze)")
    for cycle in cycles:
        changed = ", ".join(
            f"{name}: +{added} -{removed}"
            for name, (added, removed) in sorted(cycle.changes.items())
        )
        verdict = "Braze matches Mixpanel" if cycle.mirrors else "Braze DIFFERS from Mixpanel"
        print(f"  {cycle.label}: {changed or 'no changes'}; {verdict}")
    print(
        "  (the first sync carries whole cohorts the query path already mirrored, so it changes\n"
        "   nothing; the diffs of round 3 carry only who entered or left)"
    )
