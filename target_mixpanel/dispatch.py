"""Batching across streams, concurrent sending, dead letters and state checkpoints.

Every record read gets a sequence number. A record is *settled* once Mixpanel confirmed it, it
was dead-lettered, or it was deliberately skipped. A STATE message read after record ``n`` is
written out only when every record before ``n`` is settled, so a crash can re-send but never lose.

Batches are cut in input order, so the unsettled records always form: the batches in flight
(each a contiguous run of sequence numbers, skipped records aside) plus the batch being filled.
The *watermark* — the lowest unsettled sequence number — is therefore the smallest start among
those, or the next sequence number when there are none.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.deadletter import REJECTED, DeadLetter, DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter
from target_mixpanel.client import IMPORT_ENDPOINT, SendResult
from target_mixpanel.stats import RunStats

MAX_EVENTS_PER_REQUEST = 2000
DEFAULT_MAX_REQUEST_BYTES = 2_000_000  # Mixpanel's 413 text names 2 MiB; the prose says 10 MB


class Sender(Protocol):
    """Sends one batch of encoded events (the HTTP client, or the dry-run writer)."""

    def send(self, parts: list[bytes]) -> SendResult:
        """Deliver ``parts``; return what was imported and rejected."""
        ...

    def close(self) -> None:
        """Release the connections or the output file."""
        ...


class DryRunSender:
    """Writes each request's exact NDJSON body instead of sending it; every event counts as sent."""

    def __init__(self, writer: DryRunWriter) -> None:
        self.writer = writer

    def send(self, parts: list[bytes]) -> SendResult:  # noqa: D102
        self.writer.write(b"\n".join(parts))
        return SendResult(len(parts))

    def close(self) -> None:  # noqa: D102
        self.writer.close()


@dataclass
class _Batch:
    number: int
    start: int
    parts: list[bytes]
    sources: list[tuple[str, dict[str, Any]]]


class Dispatcher:
    """Batches events from all streams, sends them concurrently, checkpoints state.

    Sends on ``max_concurrency`` threads, writes dead letters, and emits the tap's STATE once
    everything before it is settled.
    """

    def __init__(
        self,
        sender: Sender,
        *,
        stats: RunStats,
        dead_letters: DeadLetterFile,
        emit_state: Callable[[dict[str, Any]], None] | None,
        batch_size: int = MAX_EVENTS_PER_REQUEST,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_concurrency: int = 10,
        checkpoint_interval: float = 1.0,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.sender = sender
        self.stats = stats
        self.dead_letters = dead_letters
        self.emit_state = emit_state
        self.batch_size = min(batch_size, MAX_EVENTS_PER_REQUEST)
        self.max_request_bytes = max_request_bytes
        self.checkpoint_interval = checkpoint_interval
        self.clock = clock or SystemClock()
        self.logger = logger or logging.getLogger("target-mixpanel")
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="mixpanel-import")
        # Batches queued or in flight; bounds memory and gives back-pressure to the reader.
        # Two spare slots keep every sender busy (a batch fills in ~40 ms, a request takes
        # longer); more only hold records in memory (2000 source records per batch).
        self._slots = threading.BoundedSemaphore(max_concurrency + 2)
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._seq = 0
        self._parts: list[bytes] = []
        self._sources: list[tuple[str, dict[str, Any]]] = []
        self._bytes = 0
        self._start: int | None = None
        self._inflight: dict[int, int] = {}
        self._states: deque[tuple[int, dict[str, Any]]] = deque()
        self._ready: dict[str, Any] | None = None
        self._ready_seq = 0
        self._after_state: deque[tuple[int, Callable[[], None]]] = deque()
        self._last_emitted: dict[str, Any] | None = None
        self._last_emit_at = float("-inf")
        self._error: BaseException | None = None
        self._closed = False

    # -- called by the reader thread ---------------------------------------------------------

    def add(self, part: bytes, stream: str, record: dict[str, Any]) -> None:
        """Queue one encoded event; sends a batch when it is full (count or bytes)."""
        size = len(part) + 1
        if self._parts and (
            len(self._parts) >= self.batch_size or self._bytes + size > self.max_request_bytes
        ):
            self.flush()
        if not self._parts:
            with self._lock:
                self._start = self._seq
        self._parts.append(part)
        self._sources.append((stream, record))
        self._bytes += size
        self._seq += 1

    def settled(self) -> None:
        """Count one record that needs no sending (skipped or dead-lettered locally)."""
        self._seq += 1

    def reject(
        self,
        stream: str,
        record: dict[str, Any],
        *,
        reason: str,
        field: str | None,
        message: str,
        payload: Any = None,
        status: int | None = None,
    ) -> None:
        """Write one record to the dead-letter file (any thread).

        ``payload`` is the Mixpanel event made of it, when there is one.
        """
        self.dead_letters.write(
            DeadLetter(
                stream=stream,
                reason=reason,
                message=message,
                status=status,
                field=field,
                endpoint=IMPORT_ENDPOINT,
                record=record,
                payload=payload,
            )
        )
        self.stats.sending.add(dead_lettered=1)

    def add_state(self, state: dict[str, Any]) -> None:
        """Remember a STATE message; it covers every record read before it."""
        with self._lock:
            self._states.append((self._seq, state))
        self.maybe_emit()

    def after_state(self, action: Callable[[], None]) -> None:
        """Run ``action`` once a STATE covering every record added so far has been written.

        Never in a dry run (no state is written); what never comes due is left to the caller.
        """
        with self._lock:
            self._after_state.append((self._seq, action))

    def flush(self) -> None:
        """Send the batch being filled (blocks while too many batches are in flight)."""
        if not self._parts:
            return
        self._raise_if_failed()
        while not self._slots.acquire(timeout=0.5):
            self.maybe_emit()
            self._raise_if_failed()
        with self._lock:
            batch = _Batch(next(self._numbers), self._start or 0, self._parts, self._sources)
            self._inflight[batch.number] = batch.start
            self._parts, self._sources, self._bytes, self._start = [], [], 0, None
        self._pool.submit(self._run, batch)
        self.stats.batch_sent(len(batch.parts))  # counts it; a progress line every few seconds
        self.maybe_emit()

    def close(self) -> None:
        """Send what is left, wait for every batch, and emit the final state.

        Raises:
            BaseException: the first fatal sending error (after the confirmed state is written).
        """
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._pool.shutdown(wait=True)
        self._raise_if_failed()
        self.maybe_emit(force=True)

    def abort(self) -> None:
        """Stop after the batches already in flight; emit the state they confirm."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.maybe_emit(force=True)

    # -- any thread --------------------------------------------------------------------------

    def maybe_emit(self, *, force: bool = False) -> None:
        """Write the newest state whose records are all settled (at most once per interval).

        Then run the :meth:`after_state` actions that state covers, outside the lock.
        """
        if self.emit_state is None:
            return
        due: list[Callable[[], None]] = []
        with self._lock:
            self._emit_ready(force, due)
        for action in due:
            action()

    def _emit_ready(self, force: bool, due: list[Callable[[], None]]) -> None:
        """Emit the newest settled state (lock held); collect the actions it makes due."""
        assert self.emit_state is not None  # checked by maybe_emit
        if self._inflight:
            watermark = min(self._inflight.values())
            if self._start is not None:
                watermark = min(watermark, self._start)
        elif self._start is not None:
            watermark = self._start
        else:
            watermark = self._seq
        while self._states and self._states[0][0] <= watermark:
            self._ready_seq, self._ready = self._states.popleft()
        if self._ready is None:
            return
        now = self.clock.monotonic()
        if not force and now - self._last_emit_at < self.checkpoint_interval:
            return
        state, self._ready = self._ready, None
        self._last_emit_at = now
        if state != self._last_emitted:
            self._last_emitted = state
            self.emit_state(state)
        while self._after_state and self._after_state[0][0] <= self._ready_seq:
            due.append(self._after_state.popleft()[1])

    # -- worker threads ----------------------------------------------------------------------

    def _run(self, batch: _Batch) -> None:
        try:
            if self._error is not None:
                return
            result = self.sender.send(batch.parts)
            for item in result.rejected:
                stream, record = batch.sources[item.index]
                self.reject(
                    stream,
                    record,
                    reason=REJECTED,
                    field=item.field,
                    message=item.message,
                    payload=msgspec.json.decode(batch.parts[item.index]),
                    status=item.status,
                )
            self.stats.sending.add(imported=result.imported)
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
            return
        finally:
            self._slots.release()
        with self._lock:
            del self._inflight[batch.number]
        self.maybe_emit()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._error
