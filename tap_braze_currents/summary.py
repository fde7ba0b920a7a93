"""What one sync did, and the end-of-run lines that say it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field


@dataclass
class SyncSummary:
    """Counts and bad files of one run, shared by every stream of the tap.

    Args:
        logger: the tap's logger, which writes the end-of-run lines.
    """

    logger: logging.Logger
    files_read: int = 0
    files_already_read: int = 0
    records: int = 0
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    drift: dict[str, set[str]] = field(default_factory=dict)
    logged: bool = False
    """Whether the end-of-run lines were written (they are written once)."""

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
        for path, reason in self.corrupt:
            self.logger.warning("Corrupt file skipped: %s: %s", path, reason)
        for path, reason in self.unreadable:
            self.logger.warning("Unreadable file, retried next run: %s: %s", path, reason)
