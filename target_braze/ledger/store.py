"""Where the ledger lives between runs: a local file, or an object in S3, GCS or Azure Blob.

A run takes the ledger's lease (:mod:`target_braze.ledger.lease`), then works on a local file: the
ledger itself when ``ledger_path`` is local (SQLite transactions keep it consistent), or a working
copy downloaded from object storage. After Braze confirmed the run's changes the ledger is
*published*: its generation goes up by one and, for object storage, the copy is uploaded in one
conditional write that succeeds only if nobody replaced the ledger since the download. A crash at
any point before that write leaves the previously published ledger in place; the additions a run
planned are published as pending before it sends (:mod:`target_braze.ledger.pending`), so the next
run can remove them when they are no longer wanted. A run that took over an expired lease first
rewrites the ledger object (:meth:`LedgerStore._fence`), so the stale holder cannot publish.

The store moves the file and holds the lease; every SQL statement is in :mod:`target_braze.ledger`.

Every published ledger carries an identity (a random id given at its first publish) and its
generation, and the target records both in its Singer state (:mod:`target_braze.ledger.mark`:
inside ``bookmarks``, which SDK taps keep and re-emit). A run whose state says a ledger existed, but
finds none, another one, or an older generation, stops before sending anything
(:class:`LostLedgerError`): without the ledger the users who left a cohort cannot be known.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.conditional import StorageError, conditional_store
from braze_mixpanel_common.errors import ConfigurationError, DestinationError, PluginError
from braze_mixpanel_common.secrets import redact
from braze_mixpanel_common.storage import open_url, tls_downgrades
from target_braze import ledger as ledger_file
from target_braze.ledger import Ledger, pending
from target_braze.ledger.lease import Lease
from target_braze.ledger.mark import LedgerMark
from target_braze.run import StreamRun
from target_braze.settings import Settings


class LostLedgerError(DestinationError):
    """The state records a ledger that is missing, another one, or newer than the one found."""


class LedgerStorageError(StorageError):
    """The ledger's storage failed (network, permissions, a missing bucket)."""


class LedgerConflictError(DestinationError):
    """Another run published the ledger while this run worked on its copy."""


class LedgerStore:
    """The ledger's place between runs, its lease, and the check against the recorded state.

    Args:
        settings: ``ledger_path``, ``ledger_options``, the lease settings, ``dry_run``.
        logger: where the lease, rebuild and TLS warnings go.
        clock: time source of the lease.
    """

    def __init__(self, settings: Settings, logger: logging.Logger, clock: Clock) -> None:
        self.logger = logger
        self.clock = clock
        self.secrets = settings.secrets
        self.read_only = settings.dry_run
        self.remote = "://" in settings.ledger_path
        options = settings.ledger_options if self.remote else None
        weakened = tls_downgrades(options)
        if weakened:
            logger.warning(
                "ledger_options turns off TLS protection (%s): the ledger and the storage "
                "credentials travel without a verified TLS connection.",
                ", ".join(weakened),
            )
        try:
            fs, self.path = open_url(settings.ledger_path, options)
        except (ImportError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"Setting 'ledger_path' ({settings.ledger_path!r}) cannot be opened: "
                f"{type(exc).__name__}: {exc}. s3:// needs the [s3] extra, gs:// [gcs], az:// "
                "and abfs:// [azure]; check 'ledger_options'."
            ) from None
        self.store = conditional_store(fs)
        self.display = self.store.display(self.path) if self.remote else self.path
        self.lease = (
            None
            if self.read_only
            else Lease(
                self.store,
                f"{self.path}.lease",
                ttl=settings.ledger_lease_s,
                wait=settings.ledger_lock_wait_s,
                clock=clock,
                logger=logger,
            )
        )
        self.found: LedgerMark | None = None
        self.lost: LedgerMark | None = None
        self._token: str | None = None
        self._workdir: Path | None = None
        self._working: Path | None = None
        self._published = False
        self.ledger: Ledger | None = None

    @contextlib.contextmanager
    def _storage(self, what: str) -> Iterator[None]:
        """Turn a storage failure into one error line naming the ledger (secrets redacted)."""
        try:
            yield
        except PluginError:
            raise
        except Exception as exc:
            detail = redact(f"{type(exc).__name__}: {exc}", self.secrets).splitlines()[0]
            raise LedgerStorageError(
                f"Could not {what} the ledger {self.display} ({detail}); check 'ledger_path', "
                "'ledger_options' and the storage's permissions. Nothing was recorded."
            ) from None

    def open(self) -> Ledger:
        """Take the lease, fetch the ledger and open it; the run's :class:`Ledger`."""
        if self.lease is not None:
            with self._storage("take the lease on"):
                self.lease.acquire()
        try:
            if self.remote:
                self._workdir = Path(tempfile.mkdtemp(prefix="target-braze-ledger-"))
                self._working = self._workdir / "ledger.sqlite3"
                with self._storage("download"):
                    self._token = self.store.download(self.path, self._working)
                self.found = ledger_file.read_mark(self._working)
                if self.lease is not None and self.lease.took_over:
                    self._fence()
            else:
                self._working = Path(self.path)
                self.found = ledger_file.read_mark(self._working)
        except BaseException:
            self.close()
            raise
        self.logger.info(
            "Ledger %s: %s.",
            self.display,
            "none yet"
            if self.found is None
            else f"generation {self.found.generation} ({self.found.memberships} memberships)",
        )
        self.ledger = Ledger(self._working, read_only=self.read_only)
        return self.ledger

    def _fence(self) -> None:
        """After a takeover: rewrite the ledger object before this run sends anything.

        The run that lost the lease may still be running; its publish is conditional on the
        version it downloaded. Writing the ledger again (with a new publish id, so even S3's
        content-derived ETag changes) moves the storage's version on, so that publish fails.
        """
        assert self._working is not None and self._workdir is not None
        fence = self._workdir / "fence.sqlite3"
        for _ in range(3):
            if self._token is None:
                self._working.unlink(missing_ok=True)
            ledger_file.stamp(self._working)
            shutil.copyfile(self._working, fence)
            with self._storage("fence"):
                token = self.store.write(self.path, fence, self._token)
            fence.unlink(missing_ok=True)
            if token is not None:
                self._token = token
                return
            # the previous holder published in between: start from its ledger
            with self._storage("download"):
                self._working.unlink(missing_ok=True)
                self._token = self.store.download(self.path, self._working)
            self.found = ledger_file.read_mark(self._working)
        raise LedgerConflictError(
            f"The ledger {self.display} kept changing while this run took over its lease; "
            "nothing was sent. Check that every run uses the same 'ledger_path'."
        )

    def check_lease(self) -> None:
        """Raise :class:`~target_braze.ledger.lease.LeaseLostError` unless the lease is ours."""
        if self.lease is not None:
            self.lease.check()

    def verify(self, state: dict[str, Any] | None, *, rebuild: bool) -> None:
        """Compare the ledger found with the one ``state`` records; call before sending.

        Raises:
            LostLedgerError: the state records a ledger that is missing, another one, or newer
                than the one found, and ``rebuild`` is false.
        """
        recorded = LedgerMark.from_state(state)
        problem = self._problem(recorded)
        if problem is None or recorded is None:
            return
        if not rebuild:
            raise LostLedgerError(
                f"Removals cannot be computed: {problem}. Nothing was sent. Restore the ledger "
                "(or point 'ledger_path' and 'ledger_options' at it), or set "
                "'rebuild_ledger: true' to sync additions only and start a new ledger."
            )
        self.lost = recorded
        self.logger.warning(
            "Rebuilding the ledger (rebuild_ledger is true): %s. Additions are synced; removals "
            "are computed only against the ledger found.",
            problem,
        )

    def _problem(self, recorded: LedgerMark | None) -> str | None:
        if recorded is None:
            return None
        found = self.found
        if found is None:
            return (
                f"the ledger {self.display} does not exist, but this pipeline's state records "
                f"{recorded.describe()}"
            )
        if found.ledger_id != recorded.ledger_id:
            return (
                f"the ledger {self.display} is not the one this pipeline's state records (found "
                f"ledger {found.ledger_id or 'without an identity'} generation "
                f"{found.generation}; the state records {recorded.describe()})"
            )
        if found.generation < recorded.generation:
            return (
                f"the ledger {self.display} is older than this pipeline's state records (found "
                f"generation {found.generation}; the state records {recorded.describe()})"
            )
        return None

    def protect(self, run: StreamRun, *, per_name: bool) -> None:
        """Before a stream's changes are sent: settle and record additions in flight.

        Pending additions of an earlier run that crashed get a ``remove`` when this stream's
        input says they are gone; this run's planned additions are recorded as pending and, for
        a ledger in object storage, published (same generation) before anything is sent
        (:mod:`target_braze.ledger.pending`). Every kind of input is protected.
        """
        ledger = self.ledger
        if self.read_only or ledger is None:
            return
        uncertain = pending.add_uncertain_removals(ledger, run, per_name=per_name)
        if uncertain:
            self.logger.warning(
                "Stream '%s': %d additions of an earlier run that ended before publishing the "
                "ledger are no longer in the snapshot: removing them (Braze ignores a remove "
                "of a value it never got).",
                run.stream,
                uncertain,
            )
        planned = pending.record_planned_additions(ledger, run)
        if planned and self.remote:
            self._upload(ledger)

    def settle(self, run: StreamRun) -> None:
        """After a stream's sends ended: forget the pending additions its input settled."""
        if not self.read_only and self.ledger is not None:
            pending.settle(self.ledger, run)

    def publish(self) -> LedgerMark | None:
        """Record the run's confirmed changes as the next generation; None in a dry run.

        Raises:
            LeaseLostError: the lease expired and another run took it over.
            LedgerConflictError: the ledger in storage changed since this run downloaded it.
        """
        ledger = self.ledger
        if self.read_only or ledger is None:
            return None
        if self.lease is not None:
            self.lease.check()
        memberships = ledger.memberships()
        found = self.found
        mark = LedgerMark(
            (found and found.ledger_id) or uuid.uuid4().hex,
            (found.generation if found else 0) + 1,
            memberships,
            dt.datetime.fromtimestamp(self.clock.time(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        pending.forget_confirmed(ledger)
        ledger.stamp(mark.to_state())
        if self.remote:
            self._upload(ledger)
        self.found = mark
        self._published = True
        self.logger.info(
            "Ledger %s published: generation %d, %d memberships.",
            self.display,
            mark.generation,
            memberships,
        )
        if self.lost is not None:
            self._report_rebuild(self.lost, mark)
        return mark

    def _upload(self, ledger: Ledger) -> None:
        assert self._workdir is not None
        snapshot = self._workdir / "publish.sqlite3"
        snapshot.unlink(missing_ok=True)
        ledger.stamp()
        ledger.backup(snapshot)
        if self.lease is not None:
            self.lease.check()
        with self._storage("publish"):
            token = self.store.write(self.path, snapshot, self._token)
        snapshot.unlink(missing_ok=True)
        if token is None:
            raise LedgerConflictError(
                f"The ledger {self.display} was replaced by another run while this run worked "
                "on it; this run's changes were sent to Braze but are not recorded, and the "
                "next run recomputes them. Check that every run uses the lease (same "
                "'ledger_path') and that 'ledger_lease_s' outlasts a stalled run."
            )
        self._token = token

    def _report_rebuild(self, lost: LedgerMark, mark: LedgerMark) -> None:
        unknown = max(lost.memberships - mark.memberships, 0)
        self.logger.warning(
            "Ledger rebuilt as %s. The lost %s: removals for at least %d and at most %d of "
            "those memberships could not be computed; users who left a cohort since then keep "
            "its name in Braze until it is removed there.",
            mark.describe(),
            lost.describe(),
            unknown,
            lost.memberships,
        )

    def close(self) -> None:
        """Close the ledger, release the lease and delete the working copy."""
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None
        try:
            if (
                not self.remote
                and not self._published
                and self.found is None
                and self._working is not None
                and not self.read_only
                and not ledger_file.has_members(self._working)
            ):
                # A local ledger this run created but never published (the run stopped before
                # sending): leave no empty file that would later pass for a ledger.
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self._working}{suffix}").unlink(missing_ok=True)
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            if self.lease is not None:
                try:
                    self.lease.release()
                except Exception as exc:  # it expires on its own; never hide the run's outcome
                    self.logger.warning(
                        "Could not release the lease on the ledger %s (%s); it expires by "
                        "itself after 'ledger_lease_s'.",
                        self.display,
                        type(exc).__name__,
                    )
