"""Concurrent delivery of packed ``/users/track`` requests, dead letters and dry-run output."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from braze_mixpanel_common.deadletter import DeadLetterFile
from braze_mixpanel_common.secrets import REDACTED, redact
from target_braze.client import TRACK_PATH, BrazeClient, Outcome, dumps


@dataclass
class TrackBatch:
    """One ``/users/track`` request: attribute objects and, per object, what it stands for."""

    stream: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


def pack(
    stream: str, objects: Iterable[tuple[dict[str, Any], Any]], size: int
) -> Iterator[TrackBatch]:
    """Group ``(attribute object, what it stands for)`` pairs into requests of ``size`` objects."""
    batch = TrackBatch(stream)
    for obj, item in objects:
        batch.objects.append(obj)
        batch.items.append(item)
        if len(batch.objects) >= size:
            yield batch
            batch = TrackBatch(stream)
    if batch.objects:
        yield batch


class DryRunWriter:
    """Writes request bodies as JSON lines, secrets replaced, to a file or standard error."""

    def __init__(self, path: str | None, secrets: Iterable[str]) -> None:
        self._path = path
        self._secrets = [s for s in secrets if s]
        self._lock = threading.Lock()
        self._handle: TextIO | None = None
        self.count = 0

    def write(self, url: str, body: dict[str, Any]) -> None:
        """Record one request that would have been sent."""
        clean = {
            k: (REDACTED if k in ("partner_api_key", "client_secret") else v)
            for k, v in body.items()
        }
        line = redact(dumps({"method": "POST", "url": url, "body": clean}), self._secrets)
        with self._lock:
            if self._handle is None:
                self._handle = (
                    open(self._path, "a", encoding="utf-8")  # noqa: SIM115
                    if self._path
                    else sys.stderr
                )
            self._handle.write(line + "\n")
            self._handle.flush()
            self.count += 1

    def close(self) -> None:
        """Close the output file (never standard error)."""
        if self._handle is not None and self._handle is not sys.stderr:
            self._handle.close()
        self._handle = None


class TrackSender:
    """Sends batches on a thread pool; the caller's thread records confirmations.

    ``on_confirmed(batch, indexes)`` runs on the calling thread (so the SQLite ledger is written
    from one thread) with the indexes Braze accepted; rejected objects go to the dead-letter
    file with Braze's message.
    """

    def __init__(
        self,
        client: BrazeClient | None,
        *,
        dead_letters: DeadLetterFile,
        dry_run: DryRunWriter | None,
        max_concurrency: int,
        logger: logging.Logger,
    ) -> None:
        self.client = client
        self.dead_letters = dead_letters
        self.dry_run = dry_run
        self.max_concurrency = max_concurrency
        self.logger = logger
        self.rejected = 0

    def send(
        self,
        batches: Iterable[TrackBatch],
        on_confirmed: Callable[[TrackBatch, list[int]], None],
    ) -> None:
        """Deliver every batch; re-raises the first fatal error after in-flight work settles."""
        if self.dry_run is not None:
            url = (self.client.base_url if self.client else "") + TRACK_PATH
            for batch in batches:
                self.dry_run.write(url, {"attributes": batch.objects})
            return
        assert self.client is not None
        in_flight: dict[cf.Future[Outcome], TrackBatch] = {}
        limit = self.max_concurrency * 2
        error: BaseException | None = None
        with cf.ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="braze") as pool:
            iterator = iter(batches)
            exhausted = False
            while in_flight or not exhausted:
                while not exhausted and error is None and len(in_flight) < limit:
                    batch = next(iterator, None)
                    if batch is None:
                        exhausted = True
                        break
                    in_flight[pool.submit(self.client.users_track, batch.objects)] = batch
                if error is not None:
                    exhausted = True
                if not in_flight:
                    break
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except BaseException as exc:
                        error = error or exc
                        continue
                    self._settle(batch, outcome, on_confirmed)
        if error is not None:
            raise error

    def _settle(
        self,
        batch: TrackBatch,
        outcome: Outcome,
        on_confirmed: Callable[[TrackBatch, list[int]], None],
    ) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        for index, message in sorted(outcome.rejected.items()):
            if 0 <= index < len(batch.objects):
                self.rejected += 1
                self.dead_letters.write(
                    {
                        "time": now,
                        "stream": batch.stream,
                        "endpoint": TRACK_PATH,
                        "status": outcome.status,
                        "error": message,
                        "object": json.loads(dumps(batch.objects[index])),
                    }
                )
        accepted = [i for i in range(len(batch.objects)) if i not in outcome.rejected]
        if outcome.rejected:
            self.logger.warning(
                "Braze rejected %d of %d attribute objects (%s); they are in the dead-letter "
                "file %s.",
                len(outcome.rejected),
                len(batch.objects),
                next(iter(outcome.rejected.values())),
                self.dead_letters.path,
            )
        on_confirmed(batch, accepted)
