"""Dead-letter files: one JSON object per line for every record a destination did not take.

Both targets write the same line shape (documented in docs/reliability.md):

``at``        when the record was dead-lettered (ISO 8601, UTC)
``plugin``    the plugin that wrote the line
``stream``    the Singer stream the record came from
``reason``    a short code: ``rejected`` (the destination refused it), ``invalid_record`` (it
              cannot become a valid request), ``too_large`` (over the destination's size limit)
``status``    the destination's HTTP status, or null when nothing was sent
``field``     the field the destination or the plugin objected to, or null
``message``   the destination's (or the plugin's) explanation, secrets redacted
``endpoint``  the API path the payload was (or would have been) sent to, or null
``record``    the input record, or null when the payload stands for several records
``payload``   what was (or would have been) sent for it, or null

The files hold personal data (ids, emails), so they are created owner-only (0600).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from pathlib import Path
from typing import IO, Any

from braze_mixpanel_common.encoding import dumps

REJECTED = "rejected"
"""The destination answered and refused this record (its message says why)."""
INVALID_RECORD = "invalid_record"
"""The record cannot become a valid request (a field the plugin needs is missing or malformed)."""
TOO_LARGE = "too_large"
"""The record, as sent, is over the destination's size limit."""


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One record (or request object) that a destination did not take, and why."""

    stream: str
    reason: str
    message: str
    status: int | None = None
    field: str | None = None
    endpoint: str | None = None
    record: Any = None
    payload: Any = None


class DeadLetterFile:
    """Appends :class:`DeadLetter` lines to a JSONL file, created lazily, owner-only (0600).

    Args:
        path: the file; its folder is created on the first line.
        plugin: the plugin name written on every line.
    """

    def __init__(self, path: str | os.PathLike[str], plugin: str) -> None:
        self.path = Path(path)
        self.plugin = plugin
        self.count = 0
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None

    def write(self, letter: DeadLetter) -> None:
        """Append one line (thread-safe) and flush it to disk."""
        at = dt.datetime.now(dt.UTC).isoformat()
        line = dumps({"at": at, "plugin": self.plugin, **dataclasses.asdict(letter)}, lenient=True)
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.chmod(self.path, 0o600)
                self._handle = os.fdopen(fd, "a", encoding="utf-8")
            self._handle.write(line + "\n")
            self._handle.flush()
            self.count += 1

    def close(self) -> None:
        """Close the file if it was opened."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
