"""One run of target-braze: stage snapshots, diff them against the ledger, send, summarise.

The sinks hand records to :class:`BrazeSync`; at the end of the input it computes, per
membership stream, what Braze must add and remove, sends it (``/users/track`` or the partner
cohort API), records in the ledger only what Braze confirmed, and logs a summary.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from braze_mixpanel_common.deadletter import DeadLetterFile
from braze_mixpanel_common.errors import ConfigurationError, DestinationError
from braze_mixpanel_common.retry import Clock, SystemClock
from target_braze.client import BrazeClient
from target_braze.ledger import ADD, REMOVE, Change, Ledger, Plan
from target_braze.ratelimit import RateLimiter
from target_braze.sender import DryRunWriter, TrackBatch, TrackSender, pack
from target_braze.settings import MAX_IDS_PER_PARTNER_REQUEST, Settings

STAGE_CHUNK = 20_000


class RemovalGuardError(DestinationError):
    """Removals were withheld for at least one cohort; everything else was synced."""


@dataclass
class CohortCounts:
    """Confirmed and skipped figures of one cohort in one run."""

    name: str = ""
    added: int = 0
    removed: int = 0
    rejected: int = 0
    skipped: int = 0


@dataclass
class StreamRun:
    """A membership stream's state within the run."""

    stream: str
    ns: int
    complete: bool = False
    records: int = 0
    buffer: list[tuple[str, str, str]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    counts: dict[str, CohortCounts] = field(default_factory=dict)
    plan: Plan | None = None

    def cohort(self, cohort_id: str) -> CohortCounts:
        """Counters of ``cohort_id`` (created on first use)."""
        counts = self.counts.get(cohort_id)
        if counts is None:
            counts = self.counts[cohort_id] = CohortCounts(self.names.get(cohort_id, ""))
        return counts


@dataclass
class UpsertCounts:
    """Figures of a stream upserted as plain attributes."""

    sent: int = 0
    rejected: int = 0
    skipped: int = 0


class BrazeSync:
    """Coordinates one run; owns the ledger, the HTTP client and the dead-letter file.

    Args:
        settings: Validated settings.
        logger: Where progress, warnings and the summary go.
        clock: Time source for rate limiting and backoff (a fake one in tests).
    """

    def __init__(
        self, settings: Settings, logger: logging.Logger, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.clock = clock or SystemClock()
        self.ledger = Ledger(settings.ledger_path, read_only=settings.dry_run)
        self.limiter = RateLimiter(settings.max_requests, settings.rate_window, self.clock)
        self.client = BrazeClient(
            settings.rest_endpoint,
            settings.api_key,
            limiter=self.limiter,
            secrets=settings.secrets,
            clock=self.clock,
            timeout=settings.request_timeout,
        )
        self.dead_letters = DeadLetterFile(settings.dead_letter_path)
        self.dry_run = (
            DryRunWriter(settings.dry_run_path, settings.secrets) if settings.dry_run else None
        )
        self.sender = TrackSender(
            self.client,
            dead_letters=self.dead_letters,
            dry_run=self.dry_run,
            max_concurrency=settings.max_concurrency,
            logger=logger,
        )
        self.streams: dict[str, StreamRun] = {}
        self.upserts: dict[str, UpsertCounts] = {}
        self.listing_seen = False
        self._warned: set[str] = set()

    # -- input ------------------------------------------------------------------------------

    def membership(self, stream: str) -> StreamRun:
        """The run state of membership stream ``stream``."""
        run = self.streams.get(stream)
        if run is None:
            ns = self.ledger.namespace(f"{self.settings.namespace_prefix()}|{stream}")
            run = self.streams[stream] = StreamRun(stream, ns)
        return run

    def add_member(self, stream: str, record: dict[str, Any]) -> None:
        """Stage one membership record; any record after ACTIVATE_VERSION reopens the stream."""
        s = self.settings
        run = self.membership(stream)
        run.complete = False
        run.records += 1
        raw_id = record.get(s.cohort_id_field)
        if raw_id is None or raw_id == "":
            self._warn_once(
                f"noid:{stream}",
                "Stream '%s' has records without '%s'; they are skipped (setting "
                "'cohort_id_field').",
                stream,
                s.cohort_id_field,
            )
            return
        cohort_id = str(raw_id)
        name = record.get(s.cohort_name_field)
        if name not in (None, ""):
            run.names[cohort_id] = str(name)
        elif cohort_id not in run.names:
            listed = self.ledger.listed(cohort_id)
            run.names[cohort_id] = (listed and listed[0]) or cohort_id
        user = record.get(s.user_id_field)
        if user is None or user == "":
            run.cohort(cohort_id).skipped += 1
            return
        member_name = "" if s.mode == "partner_cohorts" else run.names[cohort_id]
        run.buffer.append((str(user), cohort_id, member_name))
        if len(run.buffer) >= STAGE_CHUNK:
            self._flush(run)

    def snapshot_complete(self, stream: str) -> None:
        """ACTIVATE_VERSION arrived: the snapshot of ``stream`` is complete so far."""
        self.membership(stream).complete = True

    def list_cohort(self, record: dict[str, Any]) -> None:
        """Stage a record of the ``cohorts`` stream (the cohort exists upstream)."""
        cohort_id = record.get("id", record.get(self.settings.cohort_id_field))
        if cohort_id is None:
            return
        self.listing_seen = True
        created = record.get("created")
        if isinstance(created, dt.datetime | dt.date):
            created = created.isoformat()
        name = record.get("name")
        self.ledger.stage_listed(
            str(cohort_id), None if name is None else str(name), created and str(created)
        )

    def _flush(self, run: StreamRun) -> None:
        if run.buffer:
            self.ledger.stage_members(run.ns, run.buffer)
            run.buffer = []
        for cohort_id, name in run.names.items():
            self.ledger.stage_cohort(run.ns, cohort_id, name)

    # -- plain attribute upserts ------------------------------------------------------------

    def check_upsert_possible(self, stream: str) -> None:
        """Fail early when a stream would need ``/users/track`` but no ``api_key`` is set."""
        if not self.settings.api_key:
            raise ConfigurationError(
                f"Stream '{stream}' upserts user attributes through /users/track, which needs "
                "setting 'api_key'."
            )

    def upsert(self, stream: str, records: list[dict[str, Any]]) -> None:
        """Send each record as an attribute object of user ``user_id_field``."""
        s = self.settings
        counts = self.upserts.setdefault(stream, UpsertCounts())

        def objects() -> Iterator[tuple[dict[str, Any], None]]:
            for record in records:
                user = record.get(s.user_id_field)
                if user is None or user == "":
                    counts.skipped += 1
                    self._warn_once(
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
                yield obj, None

        def confirmed(batch: TrackBatch, accepted: list[int]) -> None:
            counts.sent += len(accepted)
            counts.rejected += len(batch.objects) - len(accepted)

        self.sender.send(pack(stream, objects(), s.objects_per_request), confirmed)

    # -- end of run -------------------------------------------------------------------------

    def finish(self) -> None:
        """Diff and send every membership stream, log the summary, enforce the guard.

        Raises:
            RemovalGuardError: When removals were withheld for a cohort (after syncing the rest).
        """
        s = self.settings
        for run in self.streams.values():
            self._flush(run)
            if not run.complete:
                self.logger.warning(
                    "Stream '%s' ended without ACTIVATE_VERSION (an incomplete snapshot): "
                    "only additions are sent, removals wait for a complete run.",
                    run.stream,
                )
            run.plan = self.ledger.plan(
                run.ns,
                complete=run.complete,
                listing_seen=self.listing_seen,
                max_removal_fraction=s.max_removal_fraction,
                guard_min_members=s.removal_guard_min_members,
                per_name=s.mode == "attributes",
            )
            for cohort in run.plan.cohorts.values():
                run.cohort(cohort.cohort_id).name = cohort.name
            if s.mode == "attributes":
                self._send_attributes(run)
            else:
                self._send_partner(run)
        if self.streams and s.mode == "attributes":
            over = self.ledger.users_over(s.max_array_length)
            if over:
                self.logger.warning(
                    "%d users are in more than %d cohorts; Braze keeps at most "
                    "'max_array_length' (%d) values in '%s' unless the array limit is raised "
                    "in Braze (up to 100).",
                    over,
                    s.max_array_length,
                    s.max_array_length,
                    s.cohort_attribute,
                )
        self.log_summary()
        withheld = [
            (run, cohort)
            for run in self.streams.values()
            if run.plan
            for cohort in run.plan.withheld
        ]
        if withheld:
            parts = []
            for _run, cohort in withheld:
                needed = cohort.leavers / max(cohort.synced_members, 1)
                parts.append(
                    f"cohort '{cohort.name}' (id {cohort.cohort_id}) would lose "
                    f"{cohort.leavers} of {cohort.synced_members} members ({needed:.0%})"
                )
            raise RemovalGuardError(
                "Removals withheld by the removal guard: "
                + "; ".join(parts)
                + f". Everything else was synced. If these drops are real, rerun with setting "
                f"'max_removal_fraction' above {s.max_removal_fraction} (1 disables the guard)."
            )

    def _send_attributes(self, run: StreamRun) -> None:
        s = self.settings
        attribute = s.cohort_attribute

        def objects() -> Iterator[tuple[dict[str, Any], list[Change]]]:
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
                obj: dict[str, Any] = {"external_id": user, attribute: ops}
                if s.update_existing_only:
                    obj["_update_existing_only"] = True
                yield obj, changes

        def confirmed(batch: TrackBatch, accepted: list[int]) -> None:
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

        self.sender.send(pack(run.stream, objects(), s.objects_per_request), confirmed)

    def _send_partner(self, run: StreamRun) -> None:
        s = self.settings
        assert run.plan is not None
        base = f"/partners/{quote(s.partner_name or '', safe='')}/cohorts"
        auth = {"partner_api_key": s.partner_api_key, "client_secret": s.data_import_key}
        unnamed: set[str] = set()
        for cohort in run.plan.cohorts.values():
            if cohort.snapshot_members == 0 and cohort.cohort_id not in run.names:
                continue
            if self.ledger.partner_name(run.ns, cohort.cohort_id) == cohort.name:
                continue
            listed = self.ledger.listed(cohort.cohort_id)
            created = (listed and listed[1]) or dt.datetime.now(dt.UTC).isoformat()
            body = {
                **auth,
                "cohort_id": cohort.cohort_id,
                "name": cohort.name,
                "created_at": created,
            }
            outcome = self._partner_post(f"{base}", body)
            if outcome is None:
                continue
            if outcome.ok:
                self.ledger.set_partner_name(run.ns, cohort.cohort_id, cohort.name)
            else:
                unnamed.add(cohort.cohort_id)
                self._dead_letter_partner(
                    run,
                    f"{base}",
                    outcome.status,
                    outcome.message,
                    {"cohort_id": cohort.cohort_id, "name": cohort.name},
                )
        for cohort_id, op, ids in self.ledger.changes_by_cohort():
            for start in range(0, len(ids), MAX_IDS_PER_PARTNER_REQUEST):
                chunk = ids[start : start + MAX_IDS_PER_PARTNER_REQUEST]
                change: dict[str, Any] = {"user_ids": chunk}
                if op == REMOVE:
                    change["should_remove"] = True
                body = {**auth, "cohort_id": cohort_id, "cohort_changes": [change]}
                outcome = self._partner_post(f"{base}/users", body)
                if outcome is None:
                    continue
                counts = run.cohort(cohort_id)
                if outcome.ok:
                    self.ledger.apply(run.ns, [Change(u, cohort_id, "", op) for u in chunk])
                    if op == ADD:
                        counts.added += len(chunk)
                    else:
                        counts.removed += len(chunk)
                else:
                    counts.rejected += len(chunk)
                    self._dead_letter_partner(
                        run,
                        f"{base}/users",
                        outcome.status,
                        outcome.message,
                        {"cohort_id": cohort_id, "cohort_changes": [change]},
                    )

    def _partner_post(self, path: str, body: dict[str, Any]) -> Any:
        if self.dry_run is not None:
            self.dry_run.write(self.client.base_url + path, body)
            return None
        return self.client.partner_post(path, body)

    def _dead_letter_partner(
        self, run: StreamRun, path: str, status: int, message: str, body: dict[str, Any]
    ) -> None:
        self.sender.rejected += 1
        self.dead_letters.write(
            {
                "time": dt.datetime.now(dt.UTC).isoformat(),
                "stream": run.stream,
                "endpoint": path,
                "status": status,
                "error": message,
                "object": body,
            }
        )
        self.logger.warning(
            "Braze rejected a request to %s (%s %s); it is in the dead-letter file %s.",
            path,
            status,
            message,
            self.dead_letters.path,
        )

    # -- reporting --------------------------------------------------------------------------

    def log_summary(self) -> None:
        """Log per-cohort adds/removes/skipped and the request figures."""
        verb = "planned (dry run)" if self.settings.dry_run else "confirmed"
        for run in self.streams.values():
            plan = run.plan
            for cohort_id, counts in sorted(run.counts.items()):
                cohort = plan.cohorts.get(cohort_id) if plan else None
                flags = []
                if cohort and cohort.withheld:
                    flags.append(f"removals withheld: {cohort.leavers}")
                if cohort and cohort.vanished:
                    flags.append("vanished upstream")
                added, removed = counts.added, counts.removed
                if self.settings.dry_run and cohort:
                    added, removed = cohort.planned_adds, cohort.planned_removes
                self.logger.info(
                    "Cohort '%s' (id %s, stream %s): %d added, %d removed %s, %d rejected, "
                    "%d skipped without '%s'%s.",
                    counts.name,
                    cohort_id,
                    run.stream,
                    added,
                    removed,
                    verb,
                    counts.rejected,
                    counts.skipped,
                    self.settings.user_id_field,
                    f" ({'; '.join(flags)})" if flags else "",
                )
            if plan and self.settings.dry_run:
                self.logger.info(
                    "Stream '%s': %d additions and %d removals planned (dry run, nothing sent).",
                    run.stream,
                    plan.adds,
                    plan.removes,
                )
        for stream, up in self.upserts.items():
            self.logger.info(
                "Stream '%s': %d users upserted, %d rejected, %d skipped without '%s'.",
                stream,
                up.sent,
                up.rejected,
                up.skipped,
                self.settings.user_id_field,
            )
        stats = self.client.stats
        self.logger.info(
            "Braze requests: %d (%d retries, %d rate-limited), dead letters: %d%s.",
            stats.requests,
            stats.retries,
            stats.rate_limited,
            self.sender.rejected,
            f" in {self.dead_letters.path}" if self.sender.rejected else "",
        )
        if self.dry_run is not None:
            self.logger.info("Dry run: %d request bodies written.", self.dry_run.count)

    def summary(self) -> dict[str, Any]:
        """The run's figures as a dict (tests and benchmarks)."""
        return {
            "cohorts": {
                (run.stream, cid): Counter(
                    added=c.added, removed=c.removed, rejected=c.rejected, skipped=c.skipped
                )
                for run in self.streams.values()
                for cid, c in run.counts.items()
            },
            "requests": self.client.stats.requests,
            "retries": self.client.stats.retries,
            "dead_letters": self.sender.rejected,
        }

    def close(self) -> None:
        """Release files."""
        self.dead_letters.close()
        if self.dry_run is not None:
            self.dry_run.close()
        self.ledger.close()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.logger.warning(message, *args)
