"""Dead-letter files: one JSON object per line for every record a destination rejected.

The files hold personal data (ids, emails), so they are created owner-only (0600).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class DeadLetterFile:
    """Appends rejected records to a JSONL file, created lazily with owner-only permissions."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.count = 0
        self._lock = threading.Lock()
        self._handle: Any = None

    def write(self, entry: dict[str, Any]) -> None:
        """Append one entry (thread-safe) and flush it to disk."""
        line = json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":"))
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
