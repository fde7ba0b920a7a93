"""One run of target-braze: stage snapshots and changes, diff them against the ledger, send.

The sinks hand records to :class:`BrazeSync`; at the end of the input it computes, per
membership stream (snapshots first, then change streams), what Braze must add and remove
(:mod:`target_braze.ledger`), has it sent (:mod:`target_braze.delivery`: mode ``attributes`` or
``partner_cohorts``), records in the ledger only what Braze confirmed, publishes the ledger
(:mod:`target_braze.ledger.store`) and logs a summary (:mod:`target_braze.report`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.cohorts import (
    CHANGE,
    CHANGE_ADD,
    CHANGE_REMOVE,
    MEMBERS_SESSION_ID,
    MEMBERS_STREAM,
    SESSION_ID,
)
from braze_mixpanel_common.deadletter import DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter
from braze_mixpanel_common.errors import ConfigurationError, DestinationError
from braze_mixpanel_common.ratelimit import RateLimiter
from target_braze import report
from target_braze.client import BrazeClient
from target_braze.delivery.attributes import AttributeSync
from target_braze.delivery.partner import PartnerSync
from target_braze.delivery.sender import TrackSender
from target_braze.ledger import ADD, REMOVE
from target_braze.ledger.diff import Plan, plan_changes, plan_snapshot
from target_braze.ledger.mark import LedgerMark
from target_braze.ledger.store import LedgerStore
from target_braze.report import WarnOnce
from target_braze.run import StreamRun, UpsertCounts
from target_braze.settings import Settings

STAGE_CHUNK = 20_000
_OPS = {CHANGE_ADD: ADD, CHANGE_REMOVE: REMOVE}
PLUGIN = "target-braze"


class RemovalGuardError(DestinationError):
    """Removals were withheld for at least one cohort; everything else was synced."""


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
        self.store = LedgerStore(settings, logger, self.clock)
        try:
            self.ledger = self.store.open()
        except BaseException:
            self.store.close()
            raise
        self.mark: LedgerMark | None = None
        """The ledger this run published (recorded in the state the target writes)."""
        self.limiter = RateLimiter(
            settings.max_requests_per_window, settings.rate_window_seconds, clock=self.clock
        )
        self.client = BrazeClient(
            settings.rest_endpoint,
            settings.api_key,
            limiter=self.limiter,
            secrets=settings.secrets,
            clock=self.clock,
            retry_bounds=settings.retry_bounds,
            timeout=settings.request_timeout,
            pool_size=settings.max_concurrency,
            logger=logger,
        )
        self.dead_letters = DeadLetterFile(settings.dead_letter_path, PLUGIN)
        self.dry_run = (
            DryRunWriter(settings.dry_run_path, "stderr", append=True) if settings.dry_run else None
        )
        self.warn_once = WarnOnce(logger)
        sender = TrackSender(
            self.client,
            dead_letters=self.dead_letters,
            dry_run=self.dry_run,
            max_concurrency=settings.max_concurrency,
            logger=logger,
            guard=self.store.check_lease,
        )
        self.attributes = AttributeSync(settings, self.ledger, sender, self.warn_once)
        self.partner = PartnerSync(
            settings,
            self.ledger,
            client=self.client,
            dead_letters=self.dead_letters,
            dry_run=self.dry_run,
            logger=logger,
            guard=self.store.check_lease,
        )
        self.streams: dict[str, StreamRun] = {}
        self.upserts: dict[str, UpsertCounts] = {}
        self.listing_seen = False
        self.snapshot_listed: set[str] = set()
        """Cohorts the ``cohorts`` stream says this run's one-cohort snapshots cover."""

    # -- input ------------------------------------------------------------------------------

    def membership(self, stream: str) -> StreamRun:
        """The run state of membership stream ``stream``."""
        run = self.streams.get(stream)
        if run is None:
            ns = self.ledger.namespace(f"{self.settings.namespace_prefix()}|{stream}")
            run = self.streams[stream] = StreamRun(stream, ns)
        return run

    def change_run(self, stream: str) -> StreamRun:
        """The run state of change stream ``stream`` (it modifies ``cohort_members``' ledger)."""
        run = self.streams.get(stream)
        if run is None:
            ns = self.ledger.namespace(f"{self.settings.namespace_prefix()}|{MEMBERS_STREAM}")
            run = self.streams[stream] = StreamRun(stream, ns, change_records=True)
        return run

    def _member(self, run: StreamRun, record: dict[str, Any]) -> tuple[str, str, str] | None:
        """``(external_id, cohort_id, name as stored)`` of a membership or change record.

        None when the record is skipped (no cohort id: warned once; no user id: counted).
        """
        s = self.settings
        run.records += 1
        raw_id = record.get(s.cohort_id_field)
        if raw_id is None or raw_id == "":
            self.warn_once(
                f"noid:{run.stream}",
                "Stream '%s' has records without '%s'; they are skipped (setting "
                "'cohort_id_field').",
                run.stream,
                s.cohort_id_field,
            )
            return None
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
            return None
        member_name = "" if s.mode == "partner_cohorts" else run.names[cohort_id]
        return str(user), cohort_id, member_name

    def add_member(self, stream: str, record: dict[str, Any]) -> None:
        """Stage one membership record; any record after ACTIVATE_VERSION reopens the stream."""
        run = self.membership(stream)
        run.complete = False
        member = self._member(run, record)
        if member is None:
            return
        if run.scoped:
            run.open_cohorts.add(member[1])
        run.buffer.append(member)
        if len(run.buffer) >= STAGE_CHUNK:
            self._flush(run)

    def add_change(self, stream: str, record: dict[str, Any]) -> None:
        """Stage one change record (``change`` add or remove), in arrival order."""
        run = self.change_run(stream)
        member = self._member(run, record)
        if member is None:
            return
        op = _OPS.get(str(record.get(CHANGE)))
        if op is None:
            run.cohort(member[1]).skipped += 1
            self.warn_once(
                f"nochange:{stream}",
                "Stream '%s' has records whose '%s' is neither 'add' nor 'remove'; they are "
                "skipped and counted.",
                stream,
                CHANGE,
            )
            return
        session = str(record.get(SESSION_ID) or "")
        run.delta.append((run.records, *member, op, session))
        if len(run.delta) >= STAGE_CHUNK:
            self._flush(run)

    def snapshot_complete(self, stream: str) -> None:
        """ACTIVATE_VERSION arrived: the snapshot of ``stream`` is complete so far.

        Scoped (one-cohort snapshots): the cohorts sent since the previous one are complete.
        """
        run = self.membership(stream)
        run.complete = True
        run.complete_cohorts |= run.open_cohorts
        run.open_cohorts = set()

    def list_cohort(self, record: dict[str, Any]) -> None:
        """Stage a record of the ``cohorts`` stream (the cohort exists upstream)."""
        cohort_id = record.get("id", record.get(self.settings.cohort_id_field))
        if cohort_id is None:
            return
        self.listing_seen = True
        if record.get(MEMBERS_SESSION_ID):
            self.snapshot_listed.add(str(cohort_id))
        created = record.get("created")
        if isinstance(created, dt.datetime | dt.date):
            created = created.isoformat()
        name = record.get("name")
        self.ledger.stage_listed(
            str(cohort_id), None if name is None else str(name), created and str(created)
        )

    def _flush(self, run: StreamRun) -> None:
        if run.change_records:
            if run.delta:
                self.ledger.stage_changes(run.ns, run.delta)
                run.delta = []
            return
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
        self.attributes.upsert(stream, records, self.upserts.setdefault(stream, UpsertCounts()))

    # -- end of run -------------------------------------------------------------------------

    def finish(self, state: dict[str, Any] | None = None) -> None:
        """Diff and send every membership stream, publish the ledger, summarise, enforce the guard.

        Args:
            state: the latest Singer state the tap sent (it records the last published ledger).

        Raises:
            LostLedgerError: the state records a ledger that is gone (nothing is sent).
            RemovalGuardError: When removals were withheld for a cohort (after syncing the rest).
        """
        s = self.settings
        if self.streams:
            self.store.verify(state, rebuild=s.rebuild_ledger)
        try:
            self._send_memberships()
        finally:
            if self.streams:
                self.mark = self.store.publish()
        if self.streams and s.mode == "attributes":
            self._warn_array_length()
        self.log_summary()
        self._enforce_removal_guard()

    def _send_memberships(self) -> None:
        s = self.settings
        # Snapshots first: a change record is newer than any snapshot of the same input.
        for run in sorted(self.streams.values(), key=lambda r: r.change_records):
            self._flush(run)
            if run.change_records:
                run.plan = plan_changes(
                    self.ledger,
                    run.ns,
                    max_removal_fraction=s.max_removal_fraction,
                    guard_min_members=s.removal_guard_min_members,
                    per_name=s.mode == "attributes",
                    names=run.names,
                )
            elif run.scoped and not run.records and not self.snapshot_listed:
                continue  # one-cohort snapshots, none this run: nothing to diff
            else:
                run.plan = self._plan_snapshot(run)
            for cohort in run.plan.cohorts.values():
                run.cohort(cohort.cohort_id).name = cohort.name
            # Whatever the input, the next run's need not replay this one: record the additions
            # in flight before sending (and settle those of a run that died).
            self.store.protect(run, per_name=s.mode == "attributes")
            if s.mode == "attributes":
                self.attributes.send_memberships(run)
            else:
                self.partner.send(run)
            self.store.settle(run)

    def _plan_snapshot(self, run: StreamRun) -> Plan:
        """Diff a snapshot stream against the ledger (scoped: only the cohorts it covers)."""
        s = self.settings
        scope: set[str] | None = None
        if run.scoped:
            scope = (run.complete_cohorts | self.snapshot_listed) - run.open_cohorts
            complete = bool(scope)
            unfinished = sorted(run.open_cohorts)
        else:
            complete = run.complete
            unfinished = [] if complete else ["all"]
        if unfinished:
            self.logger.warning(
                "Stream '%s' ended without ACTIVATE_VERSION after %s (an incomplete "
                "snapshot): only additions are sent there, removals wait for a complete run.",
                run.stream,
                "its records" if not run.scoped else "cohort(s) " + ", ".join(unfinished),
            )
        return plan_snapshot(
            self.ledger,
            run.ns,
            complete=complete,
            listing_seen=self.listing_seen,
            max_removal_fraction=s.max_removal_fraction,
            guard_min_members=s.removal_guard_min_members,
            per_name=s.mode == "attributes",
            scope=scope,
        )

    def _warn_array_length(self) -> None:
        s = self.settings
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

    def _enforce_removal_guard(self) -> None:
        withheld = [c for run in self.streams.values() if run.plan for c in run.plan.withheld]
        if not withheld:
            return
        parts = [
            f"cohort '{c.name}' (id {c.cohort_id}) would lose {c.leavers} of "
            f"{c.synced_members} members ({c.leavers / max(c.synced_members, 1):.0%})"
            for c in withheld
        ]
        raise RemovalGuardError(
            "Removals withheld by the removal guard: "
            + "; ".join(parts)
            + ". Everything else was synced. If these drops are real, rerun with setting "
            f"'max_removal_fraction' above {self.settings.max_removal_fraction} "
            "(1 disables the guard)."
        )

    # -- reporting --------------------------------------------------------------------------

    def log_summary(self) -> None:
        """Log per-cohort adds/removes/skipped and the request figures."""
        report.log_summary(
            self.logger,
            self.settings,
            streams=self.streams,
            upserts=self.upserts,
            counters=self.client.counters,
            dead_letters=self.dead_letters,
            dry_run=self.dry_run,
        )

    def summary(self) -> dict[str, Any]:
        """The run's figures as a dict (tests and benchmarks)."""
        return report.summary(self.streams, self.client.counters, self.dead_letters)

    def close(self) -> None:
        """Release files and connections."""
        self.dead_letters.close()
        if self.dry_run is not None:
            self.dry_run.close()
        self.client.close()
        self.store.close()
