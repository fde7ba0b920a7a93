"""What Mixpanel should hold: the Currents files' events per Mixpanel event name and hour.

Each file is listed and decoded with tap-braze-currents' own code, each record mapped with
target-mixpanel's own :class:`~target_mixpanel.mapping.CurrentsMapper`, so the skip rules (no
``external_user_id``, before ``min_event_time``), rejected records and event names are the
loop's. Events are counted once per Mixpanel duplicate identity (event, distinct_id, time,
``$insert_id`` from the Currents ``id``), as Mixpanel de-duplicates at import: a Currents event
delivered twice is expected once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from braze_mixpanel_common.errors import SourceError
from tap_braze_currents.reader import (
    CorruptFileError,
    UnreadableFileError,
    check_structure,
    decode_blocks,
    open_local,
)
from tap_braze_currents.state import HOUR_FORMAT
from tap_braze_currents.storage import CurrentsFile, CurrentsStorage
from target_mixpanel.mapping import CurrentsMapper, RejectRecord, SkipRecord, parse_event_time
from target_mixpanel.stats import RunStats

MIXPANEL_HOUR = "%Y-%m-%d %H:00:00"
"""How Aggregate Event Counts names an hour (in the project's timezone)."""

logger = logging.getLogger(__name__)


@dataclass
class Expected:
    """Events expected in Mixpanel per (event name, hour key), and what was left out and why."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    files: int = 0
    records: int = 0
    duplicates: int = 0
    outside_window: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    bad_files: list[tuple[str, str]] = field(default_factory=list)

    def details(self) -> dict[str, object]:
        """The figures for the JSON summary."""
        return {
            "files_read": self.files,
            "records_read": self.records,
            "duplicates": self.duplicates,
            "outside_window": self.outside_window,
            "skipped": dict(self.skipped),
            "rejected": self.rejected,
            "bad_files": [{"file": f, "reason": r} for f, r in self.bad_files],
        }


def hour_keys(start: datetime, end: datetime, timezone: tzinfo) -> list[str]:
    """Mixpanel's names of the hours in ``[start, end)`` (UTC hours), in the project timezone."""
    keys = []
    moment = start
    while moment < end:
        keys.append(moment.astimezone(timezone).strftime(MIXPANEL_HOUR))
        moment += timedelta(hours=1)
    return keys


def _dedupe_digest(event: str, props: dict[str, object]) -> bytes:
    """A 16-byte digest of Mixpanel's duplicate identity (small enough to keep millions)."""
    _, seconds = parse_event_time(props["time"])
    identity = f"{event}\x00{props['distinct_id']}\x00{round(seconds * 1000)}\x00"
    return hashlib.blake2b(
        (identity + str(props["$insert_id"])).encode("utf-8"), digest_size=16
    ).digest()


def _records(storage: CurrentsStorage, file: CurrentsFile) -> Iterator[list[dict[str, object]]]:
    source = storage.display(file.path)
    with open_local(storage.fs, file.path) as handle:
        check_structure(handle, source)
        yield from decode_blocks(handle, source)


def count_expected(
    storage: CurrentsStorage,
    start: datetime,
    end: datetime,
    *,
    timezone: tzinfo,
    min_event_time: float,
    late_hours: int,
    event_types: tuple[str, ...] | None = None,
) -> Expected:
    """Count the events of ``[start, end)`` (UTC, whole hours) in the Currents export.

    Partitions ``date=`` from ``start`` to ``late_hours`` after ``end`` are read (Braze writes an
    event into the partition of the hour it queued it, never before it happened). A corrupt file
    is named in :attr:`Expected.bad_files`: the tap skips it too, so its events are not expected.

    Raises:
        SourceError: a file the storage would not give (the tap retries it later; no verdict).
    """
    expected = Expected()
    seen: set[bytes] = set()
    stats = RunStats()
    low, high = start.timestamp(), end.timestamp()
    folders = storage.event_type_folders()
    wanted = event_types if event_types is not None else tuple(sorted(folders))
    min_hour = start.astimezone(UTC).strftime(HOUR_FORMAT)
    end_hour = (end + timedelta(hours=late_hours)).astimezone(UTC).strftime(HOUR_FORMAT)
    for event_type in wanted:
        if event_type not in folders:
            continue
        mapper = CurrentsMapper(
            event_type.replace(".", "_").lower(),
            stats,
            min_time=min_event_time,
            ip=None,
            event_type=event_type,
        )
        for file in storage.files(event_type, folders[event_type], min_hour, end_hour):
            try:
                blocks = list(_records(storage, file))
            except CorruptFileError as exc:
                expected.bad_files.append((storage.display(file.path), exc.reason))
                logger.warning("Not counting %s: %s", storage.display(file.path), exc.reason)
                continue
            except UnreadableFileError as exc:
                # The tap retries such a file on its next run: no verdict without it.
                raise SourceError(
                    f"Cannot read {storage.display(file.path)} ({exc}); the storage refused or "
                    "failed. Check 'storage_url' and 'storage_options'."
                ) from None
            expected.files += 1
            for records in blocks:
                for record in records:
                    expected.records += 1
                    try:
                        event = mapper.map(record)
                    except SkipRecord as skip:
                        expected.skipped[skip.reason] += 1
                        continue
                    except RejectRecord:
                        expected.rejected += 1
                        continue
                    props = event["properties"]
                    _, seconds = parse_event_time(props["time"])
                    if not low <= seconds < high:
                        expected.outside_window += 1
                        continue
                    digest = _dedupe_digest(event["event"], props)
                    if digest in seen:
                        expected.duplicates += 1
                        continue
                    seen.add(digest)
                    hour = datetime.fromtimestamp(seconds, timezone).strftime(MIXPANEL_HOUR)
                    expected.counts[event["event"], hour] += 1
    return expected
