"""The lease: one run at a time works on a ledger, even across machines.

The lease is a small JSON object next to the ledger (``<ledger>.lease``) naming the run that holds
it, since when, and until when. It is created with a create-if-absent write, renewed and released
with replace/delete-if-unchanged writes (:mod:`braze_mixpanel_common.conditional`), so two runs
can never both believe they hold it. A run renews its lease every third of ``ledger_lease_s``
from a background thread; a run that was killed stops renewing, and once its lease has expired
the next run takes it over (with a warning naming the crashed run).

A run trusts its lease only while it can prove it: until ``ledger_lease_s`` minus a safety
margin (a quarter of it) after the start of its last successful write of the lease. Past that
point :meth:`Lease.check` fails, and the run sends and publishes nothing more, even if a renewal
is merely failing (the storage is unreachable): another run may already have taken over.

A holder that died is recognised before its lease expires only with evidence that holds across
containers: the lease records the kernel's boot id and the holder's PID namespace, and a run in
the same boot and the same PID namespace may test whether the holder's PID still exists. Runs in
other containers (even with the same host name, as with host networking) wait for the expiry.

Expiry compares wall clocks of different machines: keep them in sync (NTP), as every
lease-based scheduler requires.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.conditional import ConditionalStore
from braze_mixpanel_common.errors import DestinationError

POLL_SECONDS = 2.0
MARGIN = 0.25
"""The share of ``ledger_lease_s`` a run keeps in reserve: it stops trusting its lease that long
before the lease it last wrote expires (clock drift, a slow request)."""


class LeaseHeldError(DestinationError):
    """Another run holds the ledger's lease (and ``ledger_lock_wait_s`` ran out)."""


class LeaseLostError(DestinationError):
    """This run's lease was taken over, removed, or could not be renewed in time."""


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """This process's PID namespace (device and inode of ``/proc/self/ns/pid``); "" if unknown."""
    try:
        st = os.stat("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}"


@dataclass(frozen=True)
class Process:
    """Where a run's process lives: what proves, or disproves, that it still runs."""

    host: str
    pid: int
    boot_id: str
    pid_ns: str

    @classmethod
    def current(cls) -> Process:
        """This process."""
        return cls(
            socket.gethostname(),
            os.getpid(),
            _read_text("/proc/sys/kernel/random/boot_id"),
            _pid_namespace(),
        )

    def ended(self) -> bool:
        """True only when this process provably no longer exists.

        Proof needs the same kernel boot and the same PID namespace as the caller (a PID means
        nothing elsewhere); without it the answer is False and only the lease's expiry counts.
        """
        here = Process.current()
        if not (self.boot_id and self.pid_ns) or self.pid <= 0 or self.pid == here.pid:
            return False
        if (self.host, self.boot_id, self.pid_ns) != (here.host, here.boot_id, here.pid_ns):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # the process exists under another user
        return False


@dataclass(frozen=True)
class LeaseInfo:
    """What the lease object says: who holds it, since when, until when (epoch seconds).

    ``process`` is None for a lease that does not record where its holder runs.
    """

    holder: str
    since: float
    expires: float
    process: Process | None = None

    @classmethod
    def parse(cls, data: bytes) -> LeaseInfo | None:
        """The lease in ``data``; None when it is not a lease this module wrote."""
        try:
            raw = json.loads(data)
            found = raw.get("process")
            process = (
                Process(
                    str(found["host"]),
                    int(found["pid"]),
                    str(found["boot_id"]),
                    str(found["pid_ns"]),
                )
                if isinstance(found, dict)
                else None
            )
            return cls(str(raw["holder"]), float(raw["since"]), float(raw["expires"]), process)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def dump(self) -> bytes:
        """The lease as stored."""
        return json.dumps(asdict(self)).encode()


def run_id() -> str:
    """A name for this run that a person can trace: host, process id and a random suffix."""
    return f"{socket.gethostname()}/pid {os.getpid()}/{uuid.uuid4().hex[:8]}"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lease:
    """An exclusive, expiring lease on ``path``.

    Args:
        store: conditional writes of the ledger's storage.
        path: the lease object's path on that storage.
        ttl: seconds a lease lives without renewal (``ledger_lease_s``).
        wait: seconds to wait for a lease held by another run (``ledger_lock_wait_s``).
        clock: time source (wall clock for expiry, sleeping while waiting).
        logger: where takeovers and waits are reported.
        holder: this run's name (default :func:`run_id`).
    """

    def __init__(
        self,
        store: ConditionalStore,
        path: str,
        *,
        ttl: float,
        wait: float,
        clock: Clock,
        logger: logging.Logger,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.path = path
        self.ttl = ttl
        self.wait = wait
        self.clock = clock
        self.logger = logger
        self.holder = holder or run_id()
        self.process = Process.current()
        self.took_over = False
        """True when :meth:`acquire` took the lease over from a run that did not release it."""
        self._token: str | None = None
        self._since = 0.0
        self._lost = False
        self._trusted_until = 0.0  # time.monotonic()
        self._renew_error = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """True while this run holds the lease and can prove it (see :meth:`check`)."""
        return self._token is not None and not self._lost and time.monotonic() < self._trusted_until

    def _mine(self) -> bytes:
        now = self.clock.time()
        return LeaseInfo(self.holder, self._since or now, now + self.ttl, self.process).dump()

    def _write(self, token: str | None) -> str | None:
        """Write this run's lease over ``token``; on success the lease is trusted anew.

        Trust is measured on the real monotonic clock, as the renewals run in real time.
        """
        started = time.monotonic()
        written = self.store.write(self.path, self._mine(), token)
        if written is not None:
            self._token = written
            self._trusted_until = started + self.ttl * (1 - MARGIN)
        return written

    def acquire(self) -> None:
        """Take the lease, taking over an expired one; wait up to ``wait`` seconds for it.

        Raises:
            LeaseHeldError: another run holds a live lease and the wait ran out.
            StorageError: the storage refused (a missing bucket, a permission).
        """
        deadline = self.clock.monotonic() + self.wait
        announced = False
        while True:
            self._since = self.clock.time()
            current = self.store.read(self.path)
            if current is None:
                # Read first, then create-if-absent: the read spares a write when the lease is
                # held, the conditional create settles a race between two starting runs.
                if self._write(None) is not None:
                    break
                current = self.store.read(self.path)  # the run that won the race
            info = None if current is None else LeaseInfo.parse(current.data)
            if current is not None and self._stale(info) and self._write(current.token):
                self.took_over = True
                self.logger.warning(
                    "Took over the lease on the ledger %s%s.",
                    self.store.display(self.path),
                    ""
                    if info is None
                    else f" held by run {info.holder} since {_iso(info.since)} "
                    f"({self._why_stale(info)}: that run ended without releasing it)",
                )
                break
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise LeaseHeldError(self._held_message(info))
            if not announced and info is not None:
                self.logger.info(
                    "The ledger is in use by run %s since %s; waiting up to %.0f s "
                    "(ledger_lock_wait_s).",
                    info.holder,
                    _iso(info.since),
                    self.wait,
                )
                announced = True
            self.clock.sleep(min(POLL_SECONDS, remaining))
        self._renewer = threading.Thread(target=self._renew_loop, name="ledger-lease", daemon=True)
        self._renewer.start()

    def _held_message(self, info: LeaseInfo | None) -> str:
        where = self.store.display(self.path)
        if info is None:
            return (
                f"The lease on the ledger {where} is contested (other runs took it and let it "
                "go while this run tried); nothing was sent. Set 'ledger_lock_wait_s' to wait."
            )
        return (
            f"The ledger {where} is in use by run {info.holder} since {_iso(info.since)} (its "
            f"lease runs until {_iso(info.expires)} and is renewed while that run lives); "
            "nothing was sent. Wait for it, or set 'ledger_lock_wait_s' to wait up to that "
            "many seconds."
        )

    def _stale(self, info: LeaseInfo | None) -> bool:
        """True when the lease found may be taken over: unreadable, expired, or its holder died."""
        return (
            info is None
            or info.expires <= self.clock.time()
            or (info.process is not None and info.process.ended())
        )

    def _why_stale(self, info: LeaseInfo) -> str:
        if info.expires <= self.clock.time():
            return f"it expired at {_iso(info.expires)}"
        return "its process is gone (same boot, same PID namespace)"

    def renew(self) -> None:
        """Push the expiry forward; marks the lease lost when it is no longer ours."""
        with self._lock:
            if self._token is None or self._lost:
                return
            if self._write(self._token) is None:
                self._lost = True
                self.logger.error(
                    "The lease on the ledger %s was taken by another run: this run sends and "
                    "publishes nothing more.",
                    self.store.display(self.path),
                )

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
                self._renew_error = ""
            except Exception as exc:  # retried at the next tick; check() enforces the deadline
                self._renew_error = type(exc).__name__  # (its text may name the endpoint)
                self.logger.warning(
                    "Could not renew the ledger lease (%s); retrying.", self._renew_error
                )

    def check(self) -> None:
        """Raise unless this run can still prove that it holds the lease.

        Raises:
            LeaseLostError: another run took the lease over, someone removed it, or no renewal
                succeeded for ``ledger_lease_s`` minus the margin (the storage is unreachable,
                or this run stalled).
        """
        if self.held:
            return
        where = self.store.display(self.path)
        if self._lost:
            why = "another run took it over (this run stalled longer than 'ledger_lease_s')"
        else:
            why = (
                f"no renewal succeeded within {self.ttl * (1 - MARGIN):.0f} s of 'ledger_lease_s' "
                f"({self.ttl:.0f} s){': ' + self._renew_error if self._renew_error else ''}"
            )
        raise LeaseLostError(
            f"This run can no longer prove it holds the lease on the ledger {where}: {why}. It "
            "stopped before sending or publishing anything more; what Braze confirmed but the "
            "ledger does not record is recomputed (or removed again) by the next run."
        )

    def release(self) -> None:
        """Stop renewing and delete the lease (only if it is still ours).

        A renewal still retrying against a failing storage is not waited for beyond a third of
        the lease's lifetime: the lease is then left to expire by itself.
        """
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.ttl / 3)
            if self._renewer.is_alive():
                self.logger.warning(
                    "The lease on the ledger %s is left to expire by itself (a renewal is still "
                    "retrying).",
                    self.store.display(self.path),
                )
                return
        with self._lock:
            if self._token is not None and not self._lost:
                self.store.delete(self.path, self._token)  # False: no longer ours, nothing to do
            self._token = None
