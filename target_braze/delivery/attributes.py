"""Mode ``attributes``: cohort names in an array custom attribute, and plain attribute upserts.

Both go to ``/users/track`` as attribute objects, one per user, packed ``objects_per_request``
to a request by the :class:`~target_braze.delivery.sender.TrackSender`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from target_braze.delivery.sender import TrackBatch, TrackSender, pack
from target_braze.ledger import ADD, REMOVE, Change, Ledger
from target_braze.report import WarnOnce
from target_braze.run import StreamRun, UpsertCounts
from target_braze.settings import Settings


class AttributeSync:
    """Sends attribute objects and records in the ledger what Braze confirmed.

    Args:
        settings: validated settings.
        ledger: the run's ledger (its last plan is what :meth:`send_memberships` sends).
        sender: delivers the packed requests.
        warn_once: logs a warning once per kind.
    """

    def __init__(
        self, settings: Settings, ledger: Ledger, sender: TrackSender, warn_once: WarnOnce
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.sender = sender
        self.warn_once = warn_once

    def send_memberships(self, run: StreamRun) -> None:
        """Send the planned changes of ``run``: one object per user with its adds and removes."""
        s = self.settings
        self.sender.send(
            pack(run.stream, self._membership_objects(run), s.objects_per_request),
            lambda batch, accepted: self._confirm_memberships(run, batch, accepted),
        )

    def _membership_objects(self, run: StreamRun) -> Iterator[tuple[dict[str, Any], list[Change]]]:
        s = self.settings
        for user, changes in self.ledger.changes_by_user():
            adds = list(dict.fromkeys(c.name for c in changes if c.op == ADD))
            removes = [
                n
                for n in dict.fromkeys(c.name for c in changes if c.op == REMOVE and c.send)
                if n not in adds
            ]
            if not adds and not removes:
                # Only a ledger row to drop: another cohort keeps the name in Braze.
                if not s.dry_run:
                    self.ledger.apply(run.ns, changes)
                continue
            ops: dict[str, list[str]] = {}
            if adds:
                ops["add"] = adds
            if removes:
                ops["remove"] = removes
            obj: dict[str, Any] = {"external_id": user, s.cohort_attribute: ops}
            if s.update_existing_only:
                obj["_update_existing_only"] = True
            yield obj, changes

    def _confirm_memberships(self, run: StreamRun, batch: TrackBatch, accepted: list[int]) -> None:
        accepted_set = set(accepted)
        rows: list[Change] = []
        for index, changes in enumerate(batch.items):
            if index in accepted_set:
                rows.extend(changes)
                for c in changes:
                    counts = run.cohort(c.cohort_id)
                    if c.op == ADD:
                        counts.added += 1
                    else:
                        counts.removed += 1
            else:
                for cohort_id in {c.cohort_id for c in changes}:
                    run.cohort(cohort_id).rejected += 1
        self.ledger.apply(run.ns, rows)

    def upsert(self, stream: str, records: list[dict[str, Any]], counts: UpsertCounts) -> None:
        """Send each record as the attributes of the user named by ``user_id_field``."""

        def confirmed(batch: TrackBatch, accepted: list[int]) -> None:
            counts.sent += len(accepted)
            counts.rejected += len(batch.objects) - len(accepted)

        objects = self._upsert_objects(stream, records, counts)
        self.sender.send(pack(stream, objects, self.settings.objects_per_request), confirmed)

    def _upsert_objects(
        self, stream: str, records: list[dict[str, Any]], counts: UpsertCounts
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        s = self.settings
        for record in records:
            user = record.get(s.user_id_field)
            if user is None or user == "":
                counts.skipped += 1
                self.warn_once(
                    f"nouser:{stream}",
                    "Stream '%s' has records without '%s'; they are skipped.",
                    stream,
                    s.user_id_field,
                )
                continue
            obj = {
                k: v
                for k, v in record.items()
                if v is not None and k != s.user_id_field and not k.startswith("_sdc_")
            }
            obj["external_id"] = str(user)
            if s.update_existing_only:
                obj["_update_existing_only"] = True
            yield obj, record
