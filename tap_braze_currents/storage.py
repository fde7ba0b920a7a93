"""Listing a Currents export through fsspec: local folders, S3, GCS and Azure Blob alike.

Braze writes ``<prefix>/<integration>/event_type=<type>/date=<YYYY-MM-DD-HH>/<...>/<file>.avro``
where ``<...>`` has changed over the years (``<schema-id>/<zone>``, ``version=<n>/<env>``). Only the
``event_type=`` and ``date=`` segments are parsed; everything else is opaque and listed recursively.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from braze_mixpanel_common.storage import open_url, tls_downgrades

EVENT_TYPE_PREFIX = "event_type="
DATE_PREFIX = "date="
_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}$")
# How deep below the root the event_type= folders may sit (bucket prefix, integration folders).
_MAX_PREFIX_DEPTH = 4

logger = logging.getLogger(__name__)

__all__ = ["CurrentsFile", "CurrentsStorage", "tls_downgrades"]


@dataclass(frozen=True, order=True)
class CurrentsFile:
    """One export file. ``hour`` is the ``date=`` partition, or "" when the path has none."""

    hour: str
    path: str
    event_type: str
    size: int


class CurrentsStorage:
    """The export root, opened with fsspec from ``storage_url`` and ``storage_options``."""

    def __init__(self, storage_url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = storage_url
        self.fs, root = open_url(storage_url, storage_options)
        self.root = root.rstrip("/")
        self.ignored_files: set[str] = set()

    def display(self, path: str) -> str:
        """A path as the user would write it (with the protocol), for logs and records."""
        return self.fs.unstrip_protocol(path)

    def relative(self, path: str) -> str:
        """A file's path relative to the export root."""
        return path[len(self.root) :].lstrip("/")

    def event_type_folders(self) -> dict[str, list[str]]:
        """Every ``event_type=`` folder below the root, grouped by event type.

        Several integrations may share one prefix, so one event type can have several folders.
        """
        found: dict[str, list[str]] = {}
        self._collect_event_type_folders(self.root, 0, found)
        return found

    def _collect_event_type_folders(
        self, folder: str, depth: int, found: dict[str, list[str]]
    ) -> None:
        for entry in self.subfolders(folder):
            name = entry.rsplit("/", 1)[-1]
            if name.startswith(EVENT_TYPE_PREFIX):
                found.setdefault(name[len(EVENT_TYPE_PREFIX) :], []).append(entry)
            elif depth < _MAX_PREFIX_DEPTH and not name.startswith(DATE_PREFIX):
                self._collect_event_type_folders(entry, depth + 1, found)

    def files(
        self,
        event_type: str,
        folders: list[str],
        min_hour: str | None = None,
        end_hour: str | None = None,
    ) -> list[CurrentsFile]:
        """Files of one event type in partitions ``>= min_hour`` and ``< end_hour``, oldest first.

        Partitions outside that window are not listed at all, so listing cost follows the
        recent data, not the size of the bucket. Files that are not ``.avro`` are ignored (and
        counted); folders with a malformed ``date=`` are always listed.
        """
        result: list[CurrentsFile] = []
        for folder in folders:
            for entry in self._entries(folder):
                name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
                hour = name[len(DATE_PREFIX) :] if name.startswith(DATE_PREFIX) else ""
                if hour and not _HOUR.match(hour):
                    logger.warning("Unexpected partition name %s: reading it anyway.", name)
                    hour = ""
                if hour and ((min_hour and hour < min_hour) or (end_hour and hour >= end_hour)):
                    continue
                result.extend(self._files_below(entry, event_type, hour))
        result.sort()
        return result

    def _files_below(
        self, entry: dict[str, Any], event_type: str, hour: str
    ) -> Iterator[CurrentsFile]:
        if entry["type"] == "directory":
            found = self.fs.find(entry["name"], detail=True).values()
        else:
            found = [entry]
        for info in found:
            if info.get("type") == "directory":
                continue
            name = info["name"]
            if not name.endswith(".avro"):
                if name not in self.ignored_files:
                    self.ignored_files.add(name)
                    logger.info("Ignoring %s: not an .avro file.", self.display(name))
                continue
            yield CurrentsFile(hour, name, event_type, int(info.get("size") or 0))

    def _entries(self, folder: str) -> list[dict[str, Any]]:
        return self.fs.ls(folder, detail=True)

    def subfolders(self, folder: str) -> list[str]:
        """Full paths of the folders directly inside ``folder``."""
        return [e["name"].rstrip("/") for e in self._entries(folder) if e["type"] == "directory"]
