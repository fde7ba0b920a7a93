"""The dry-run writer: what a target would have sent, one line per request, nothing sent.

A target in dry-run mode formats each request its own way (target-mixpanel: the NDJSON body;
target-braze: method, URL and JSON body) with secrets already removed, and hands it here.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import IO, Literal


class DryRunWriter:
    """Writes request lines to a file, or to a standard stream when no file is named.

    Args:
        path: the output file; None or ``"-"`` writes to the ``fallback`` stream.
        fallback: ``"stdout"`` or ``"stderr"``, looked up at the first write (so a stream
            replaced meanwhile, e.g. by a test, is the one written); never closed.
        append: keep what the file holds (else the first write empties it).
    """

    def __init__(
        self,
        path: str | None,
        fallback: Literal["stdout", "stderr"],
        *,
        append: bool = False,
    ) -> None:
        self._path = None if path in (None, "", "-") else Path(path)
        self._fallback = fallback
        self._mode = "ab" if append else "wb"
        self._lock = threading.Lock()
        self._handle: IO[bytes] | None = None
        self.count = 0
        """Requests written."""

    def write(self, text: str | bytes) -> None:
        """Write one request (one or more lines; a final newline is added). Thread-safe."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        with self._lock:
            if self._handle is None:
                self._handle = (
                    open(self._path, self._mode)  # noqa: SIM115
                    if self._path
                    else getattr(sys, self._fallback).buffer
                )
            self._handle.write(data + b"\n")
            self._handle.flush()
            self.count += 1

    def close(self) -> None:
        """Close the output file (a standard stream stays open)."""
        with self._lock:
            if self._handle is not None and self._path is not None:
                self._handle.close()
            self._handle = None
