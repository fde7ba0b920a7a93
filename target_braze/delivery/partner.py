"""Mode ``partner_cohorts``: Braze's partner cohort-import API.

A cohort is named (or renamed) through ``/partners/<partner>/cohorts`` when Braze does not have
its current name yet, then its joins and leaves go to ``/partners/<partner>/cohorts/users`` at
most 1000 ids to a request. Requests are sent one at a time; what Braze confirms is recorded in
the ledger, what it rejects goes to the dead-letter file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from braze_mixpanel_common.deadletter import REJECTED, DeadLetter, DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter
from target_braze.client import BrazeClient, Outcome
from target_braze.ledger import ADD, REMOVE, Change, Ledger
from target_braze.report import UsersProgress
from target_braze.run import StreamRun
from target_braze.settings import MAX_IDS_PER_PARTNER_REQUEST, Settings


class PartnerSync:
    """Sends one membership stream's plan through the partner cohort-import API.

    Args:
        settings: validated settings (partner credentials included).
        ledger: the run's ledger (its last plan is what :meth:`send` sends).
        client: the Braze client.
        dead_letters: where rejected requests go.
        dry_run: in a dry run, where request lines go instead of Braze.
        logger: where rejections are reported.
        guard: runs before each request; raises to stop the sending (the lease is gone).
    """

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        *,
        client: BrazeClient,
        dead_letters: DeadLetterFile,
        dry_run: DryRunWriter | None,
        logger: logging.Logger,
        guard: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.ledger = ledger
        self.client = client
        self.dead_letters = dead_letters
        self.dry_run = dry_run
        self.logger = logger
        self.progress = UsersProgress(
            client.counters, client.clock, logger, dry_run=dry_run is not None
        )
        self.base = f"/partners/{quote(settings.partner_name or '', safe='')}/cohorts"
        self._auth = {
            "partner_api_key": settings.partner_api_key,
            "client_secret": settings.data_import_key,
        }

    def send(self, run: StreamRun) -> None:
        """Name new or renamed cohorts, then send every join and leave of ``run``'s plan."""
        self._send_names(run)
        self._send_changes(run)

    def _send_names(self, run: StreamRun) -> None:
        assert run.plan is not None
        for cohort in run.plan.cohorts.values():
            if cohort.snapshot_members == 0 and cohort.cohort_id not in run.names:
                continue
            if self.ledger.partner_name(run.ns, cohort.cohort_id) == cohort.name:
                continue
            listed = self.ledger.listed(cohort.cohort_id)
            created = (listed and listed[1]) or dt.datetime.now(dt.UTC).isoformat()
            body = {
                **self._auth,
                "cohort_id": cohort.cohort_id,
                "name": cohort.name,
                "created_at": created,
            }
            outcome = self._post(self.base, body)
            if outcome is None:
                continue
            if outcome.ok:
                self.ledger.set_partner_name(run.ns, cohort.cohort_id, cohort.name)
            else:
                self._dead_letter(
                    run,
                    self.base,
                    outcome,
                    {"cohort_id": cohort.cohort_id, "name": cohort.name},
                )

    def _send_changes(self, run: StreamRun) -> None:
        path = f"{self.base}/users"
        for cohort_id, op, ids in self.ledger.changes_by_cohort():
            for start in range(0, len(ids), MAX_IDS_PER_PARTNER_REQUEST):
                chunk = ids[start : start + MAX_IDS_PER_PARTNER_REQUEST]
                change: dict[str, Any] = {"user_ids": chunk}
                if op == REMOVE:
                    change["should_remove"] = True
                body = {**self._auth, "cohort_id": cohort_id, "cohort_changes": [change]}
                outcome = self._post(path, body)
                if outcome is None:
                    self.progress.count(len(chunk))  # planned (dry run)
                    continue
                counts = run.cohort(cohort_id)
                if outcome.ok:
                    self.progress.count(len(chunk))
                    self.ledger.apply(run.ns, [Change(u, cohort_id, "", op) for u in chunk])
                    if op == ADD:
                        counts.added += len(chunk)
                    else:
                        counts.removed += len(chunk)
                else:
                    counts.rejected += len(chunk)
                    self._dead_letter(
                        run, path, outcome, {"cohort_id": cohort_id, "cohort_changes": [change]}
                    )

    def _post(self, path: str, body: dict[str, Any]) -> Outcome | None:
        """Braze's answer, or None in a dry run (the request is written instead)."""
        if self.dry_run is not None:
            self.dry_run.write(self.client.dry_run_line(path, body))
            return None
        self.guard()
        return self.client.partner_post(path, body)

    def _dead_letter(
        self, run: StreamRun, path: str, outcome: Outcome, payload: dict[str, Any]
    ) -> None:
        self.dead_letters.write(
            DeadLetter(
                stream=run.stream,
                reason=REJECTED,
                message=outcome.message,
                status=outcome.status,
                endpoint=path,
                payload=payload,
            )
        )
        self.logger.warning(
            "Braze rejected a request to %s (%s %s); it is in the dead-letter file %s.",
            path,
            outcome.status,
            outcome.message,
            self.dead_letters.path,
        )
