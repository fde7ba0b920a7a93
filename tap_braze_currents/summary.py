"""What one sync did, and the end-of-run lines that say it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from braze_mixpanel_common.progress import Progress, log_summary_json

PLUGIN = "tap-braze-currents"


@dataclass
class SyncSummary:
    """Counts and bad files of one run, shared by every stream of the tap.

    Args:
        logger: the tap's logger, which writes the progress and end-of-run lines.
        progress: the throttled progress line (one is made on the real clock if not given).
    """

    logger: logging.Logger
    progress: Progress | None = None
    files_read: int = 0
    files_already_read: int = 0
    records: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    drift: dict[str, set[str]] = field(default_factory=dict)
    logged: bool = False
    """Whether the end-of-run lines were written (they are written once)."""

    def __post_init__(self) -> None:
        self._progress = self.progress or Progress(self.logger, PLUGIN)

    def file_done(self, stream: str, done: int, total: int) -> None:
        """Count one file of ``stream`` settled (read, skipped or bad) and maybe log progress."""
        self._progress.update(
            self.records,
            lambda rate: (
                f"{stream}: {done}/{total} files done; run: {self.files_read} files read, "
                f"{self.records} events, {rate:.0f} events/s"
            ),
        )

    def figures(self, ignored_files: int) -> dict[str, Any]:
        """The run's figures (the JSON summary's fields)."""
        elapsed = self._progress.elapsed()
        return {
            "files_read": self.files_read,
            "records": self.records,
            "files_already_read": self.files_already_read,
            "corrupt_files": len(self.corrupt),
            "unreadable_files": len(self.unreadable),
            "ignored_files": ignored_files,
            "streams_with_new_fields": sorted(self.drift),
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(self.records / max(elapsed, 1e-9), 1),
        }

    def log_once(self, ignored_files: int) -> None:
        """Log the summary line and one warning per bad file; later calls do nothing.

        Args:
            ignored_files: how many non-``.avro`` files the listing ignored.
        """
        if self.logged:
            return
        self.logged = True
        self.logger.info(
            "Currents sync summary: %d files read, %d records, %d files already read, "
            "%d corrupt, %d unreadable, %d non-.avro files ignored.",
            self.files_read,
            self.records,
            self.files_already_read,
            len(self.corrupt),
            len(self.unreadable),
            ignored_files,
        )
        log_summary_json(self.logger, PLUGIN, self.figures(ignored_files))
        for path, reason in self.corrupt:
            self.logger.warning("Corrupt file skipped: %s: %s", path, reason)
        for path, reason in self.unreadable:
            self.logger.warning("Unreadable file, retried next run: %s: %s", path, reason)
