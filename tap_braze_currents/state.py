"""Which Currents files were already read: a bounded ledger kept in the Singer state.

Per event type the state holds a ``floor`` partition and, for partitions at or above it, a short
fingerprint of each file read there::

    {"floor": "2026-11-26-09", "files": {"2026-11-28-08": ["9f2c4e1d0a7b3c55", ...], ...}}

Partitions below the floor count as fully read and are never listed again. After a complete sync
the floor moves to ``lookback_hours`` before the newest partition seen (Braze may still deliver
into an older partition for up to 48 hours), so the state holds only the files of that window,
however large the bucket grows. A file's fingerprint covers its path and size, so a file that
changes is read again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from tap_braze_currents.storage import CurrentsFile

HOUR_FORMAT = "%Y-%m-%d-%H"


def fingerprint(relative_path: str, size: int) -> str:
    """A 64-bit hex fingerprint of a file's path (relative to the root) and size."""
    return hashlib.blake2b(f"{relative_path}\0{size}".encode(), digest_size=8).hexdigest()


def shift_hour(hour: str, hours: int) -> str:
    """``hour`` (YYYY-MM-DD-HH) moved by ``hours``."""
    moved = datetime.strptime(hour, HOUR_FORMAT) + timedelta(hours=hours)
    return moved.strftime(HOUR_FORMAT)


class FileLedger:
    """The read-files ledger of one event type, stored inside ``state`` (mutated in place)."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self._files: dict[str, set[str]] = {
            hour: set(prints) for hour, prints in state.get("files", {}).items()
        }

    @property
    def floor(self) -> str | None:
        """Partitions below this hour are fully read."""
        return self.state.get("floor")

    def is_read(self, file: CurrentsFile, relative_path: str) -> bool:
        """Whether ``file`` was read by an earlier (or this) run."""
        if file.hour and self.floor and file.hour < self.floor:
            return True
        return fingerprint(relative_path, file.size) in self._files.get(file.hour, ())

    def mark_read(self, file: CurrentsFile, relative_path: str) -> None:
        """Record ``file`` as read; the caller emits the state afterwards."""
        self._files.setdefault(file.hour, set()).add(fingerprint(relative_path, file.size))
        self._store()

    def advance(self, lookback_hours: int, now_hour: str, pending: list[CurrentsFile]) -> None:
        """After a complete sync: move the floor and forget partitions below it.

        The floor is ``lookback_hours`` before the newest partition seen (never past the current
        hour, so a stray future partition cannot push it), and never above a file that is still
        pending (unreadable this run), so that file is tried again.
        """
        hours = [hour for hour in self._files if hour]
        if not hours:
            return
        newest = min(max(hours), now_hour)
        floor = shift_hour(newest, -lookback_hours)
        pending_hours = [file.hour for file in pending if file.hour]
        if pending_hours:
            floor = min(floor, *pending_hours)
        if self.floor and floor < self.floor:
            floor = self.floor
        self.state["floor"] = floor
        self._files = {hour: p for hour, p in self._files.items() if not hour or hour >= floor}
        self._store()

    def _store(self) -> None:
        self.state["files"] = {hour: sorted(p) for hour, p in sorted(self._files.items())}
