"""The lease: one run at a time works on a ledger, even across machines.

The lease is a small JSON object next to the ledger (``<ledger>.lease``) naming the run that holds
it, since when, and until when. It is created with a create-if-absent write, renewed and released
with replace/delete-if-unchanged writes (:mod:`braze_mixpanel_common.conditional`), so two runs
can never both believe they hold it. A run renews its lease every third of ``ledger_lease_s``
from a background thread; a run that was killed stops renewing, and once its lease has expired
the next run takes it over (with a warning naming the crashed run).

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
import uuid
from dataclasses import asdict, dataclass

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.conditional import ConditionalStore
from braze_mixpanel_common.errors import DestinationError

POLL_SECONDS = 2.0


class LeaseHeldError(DestinationError):
    """Another run holds the ledger's lease (and ``ledger_lock_wait_s`` ran out)."""


class LeaseLostError(DestinationError):
    """This run's lease was taken over or removed while it ran."""


@dataclass(frozen=True)
class LeaseInfo:
    """What the lease object says: who holds it, since when, until when (epoch seconds)."""

    holder: str
    since: float
    expires: float

    @classmethod
    def parse(cls, data: bytes) -> LeaseInfo | None:
        """The lease in ``data``; None when it is not a lease this module wrote."""
        try:
            raw = json.loads(data)
            return cls(str(raw["holder"]), float(raw["since"]), float(raw["expires"]))
        except (ValueError, KeyError, TypeError):
            return None

    def dump(self) -> bytes:
        """The lease as stored."""
        return json.dumps(asdict(self)).encode()


def run_id() -> str:
    """A name for this run that a person can trace: host, process id and a random suffix."""
    return f"{socket.gethostname()}/pid {os.getpid()}/{uuid.uuid4().hex[:8]}"


def _ended_here(holder: str) -> bool:
    """True when ``holder`` (a :func:`run_id`) ran on this host and its process no longer exists.

    A run killed with ``kill -9`` on the same machine need not block the next one until its lease
    expires. Runs on other hosts (other containers) are judged by the expiry alone.
    """
    host, _, rest = holder.partition("/pid ")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # the process exists under another user
    return False


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
        self._token: str | None = None
        self._since = 0.0
        self._lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """True while this run holds the lease."""
        return self._token is not None and not self._lost

    def _mine(self) -> bytes:
        now = self.clock.time()
        return LeaseInfo(self.holder, self._since or now, now + self.ttl).dump()

    def acquire(self) -> None:
        """Take the lease, taking over an expired one; wait up to ``wait`` seconds for it.

        Raises:
            LeaseHeldError: another run holds a live lease and the wait ran out.
        """
        deadline = self.clock.monotonic() + self.wait
        announced = False
        while True:
            self._since = self.clock.time()
            current = self.store.read(self.path)
            if current is None:
                # Read first, then create-if-absent: the read spares a write when the lease is
                # held, the conditional create settles a race between two starting runs.
                token = self.store.write(self.path, self._mine(), None)
                if token is not None:
                    self._token = token
                    break
                continue  # another run created it between our two calls: read it
            info = LeaseInfo.parse(current.data)
            if info is None or info.expires <= self.clock.time() or _ended_here(info.holder):
                token = self.store.write(self.path, self._mine(), current.token)
                if token is None:
                    continue  # someone else took it over first
                self._token = token
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
                raise LeaseHeldError(
                    f"The ledger {self.store.display(self.path)} is in use by run {info.holder} "
                    f"since {_iso(info.since)} (its lease runs until {_iso(info.expires)} and is "
                    "renewed while that run lives); nothing was sent. Wait for it, or set "
                    "'ledger_lock_wait_s' to wait up to that many seconds."
                )
            if not announced:
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

    def _why_stale(self, info: LeaseInfo) -> str:
        if info.expires <= self.clock.time():
            return f"it expired at {_iso(info.expires)}"
        return "its process on this host is gone"

    def renew(self) -> None:
        """Push the expiry forward; marks the lease lost when it is no longer ours."""
        with self._lock:
            if self._token is None or self._lost:
                return
            token = self.store.write(self.path, self._mine(), self._token)
            if token is None:
                self._lost = True
                self.logger.error(
                    "The lease on the ledger %s was taken by another run: this run will not "
                    "publish its ledger.",
                    self.store.display(self.path),
                )
            else:
                self._token = token

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except Exception as exc:  # a failed renewal is retried at the next tick
                self.logger.warning("Could not renew the ledger lease: %s", type(exc).__name__)

    def check(self) -> None:
        """Raise when the lease is no longer ours.

        Raises:
            LeaseLostError: it expired and another run took it (this run stalled longer than
                ``ledger_lease_s``), or someone removed it.
        """
        if not self.held:
            raise LeaseLostError(
                f"This run lost its lease on the ledger {self.store.display(self.path)} (it "
                "stalled longer than 'ledger_lease_s' and another run took over): its changes "
                "were sent but the ledger was not published; the next run recomputes them."
            )

    def release(self) -> None:
        """Stop renewing and delete the lease (only if it is still ours)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._lock:
            if self._token is not None and not self._lost:
                self.store.delete(self.path, self._token)
            self._token = None
