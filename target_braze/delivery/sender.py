"""Concurrent delivery of packed ``/users/track`` requests, with dead letters and dry runs."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from braze_mixpanel_common.deadletter import REJECTED, DeadLetter, DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter
from target_braze.client import TRACK_PATH, BrazeClient, Outcome
from target_braze.delivery import datapoints
from target_braze.report import UsersProgress


@dataclass
class TrackBatch:
    """One ``/users/track`` request: attribute objects and, per object, what it stands for.

    An item that is an input record (a plain attribute upsert) is written as the dead letter's
    ``record`` when Braze rejects its object.
    """

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


class TrackSender:
    """Sends batches on a thread pool; the caller's thread records confirmations.

    ``on_confirmed(batch, indexes)`` runs on the calling thread (so the SQLite ledger is written
    from one thread) with the indexes Braze accepted; rejected objects go to the dead-letter
    file with Braze's message. In a dry run, each request is written to ``dry_run`` instead.

    ``guard`` runs before each request and stops the sending by raising (the ledger's lease can
    no longer be proven); requests in flight still settle.

    Adds to the client's counters ``users`` (attribute objects Braze accepted, or a dry run
    would send) and ``data_points`` (:mod:`target_braze.delivery.datapoints`), and logs progress
    every few seconds, checked once per request.
    """

    def __init__(
        self,
        client: BrazeClient,
        *,
        dead_letters: DeadLetterFile,
        dry_run: DryRunWriter | None,
        max_concurrency: int,
        logger: logging.Logger,
        guard: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.guard = guard
        self.dead_letters = dead_letters
        self.dry_run = dry_run
        self.max_concurrency = max_concurrency
        self.logger = logger
        self.progress = UsersProgress(
            client.counters, client.clock, logger, dry_run=dry_run is not None
        )

    def send(
        self,
        batches: Iterable[TrackBatch],
        on_confirmed: Callable[[TrackBatch, list[int]], None],
    ) -> None:
        """Deliver every batch; re-raises the first fatal error after in-flight work settles."""
        if self.dry_run is not None:
            for request in batches:
                body = {"attributes": request.objects}
                self.dry_run.write(self.client.dry_run_line(TRACK_PATH, body))
                self._count(request.objects)
            return
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
                    in_flight[pool.submit(self._track, batch.objects)] = batch
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
            close = getattr(batches, "close", None)  # an unfinished generator: end it here
            if close is not None:
                close()
            raise error

    def _track(self, objects: list[dict[str, Any]]) -> Outcome:
        """One request, sent only while the guard allows (checked as it goes out)."""
        self.guard()
        return self.client.users_track(objects)

    def _settle(
        self,
        batch: TrackBatch,
        outcome: Outcome,
        on_confirmed: Callable[[TrackBatch, list[int]], None],
    ) -> None:
        for index, message in sorted(outcome.rejected.items()):
            if 0 <= index < len(batch.objects):
                item = batch.items[index]
                self.dead_letters.write(
                    DeadLetter(
                        stream=batch.stream,
                        reason=REJECTED,
                        message=message,
                        status=outcome.status,
                        endpoint=TRACK_PATH,
                        record=item if isinstance(item, Mapping) else None,
                        payload=batch.objects[index],
                    )
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
        self._count([batch.objects[i] for i in accepted])
        on_confirmed(batch, accepted)

    def _count(self, objects: list[dict[str, Any]]) -> None:
        """Count the users and data points of objects sent (or planned)."""
        self.progress.count(len(objects), datapoints.total(objects))
