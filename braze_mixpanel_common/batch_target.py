"""The base class of both targets: BATCH messages are read record by record, never dropped.

The SDK hands a BATCH message's files to ``Sink.process_batch_files``, which a ``RecordSink``
silently ignores (its ``process_batch`` does nothing), so the records were lost while the
STATE after them was still forwarded. :class:`BatchReadingTarget` instead reads every file of
the manifest (:mod:`braze_mixpanel_common.batch`) and passes each record to the target's own
RECORD handling, so stream maps, validation, skips, dead letters, dry runs, the ledger and the
state checkpoints treat it exactly like a RECORD message; a STATE that follows a BATCH waits
for its records like it waits for RECORDs.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import fsspec
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from typing_extensions import override

from braze_mixpanel_common.batch import BatchManifest, BatchReader, delete_files

BATCH_STORAGE_OPTIONS = "batch_storage_options"
BATCH_DELETE_AFTER_LOAD = "batch_delete_after_load"
BATCH_DELETE_ROOT = "batch_delete_root"


def batch_settings() -> list[th.Property]:
    """The settings for reading BATCH messages: storage options, and deleting loaded files."""
    return [
        th.Property(
            BATCH_STORAGE_OPTIONS,
            th.ObjectType(),
            secret=True,
            title="BATCH storage options",
            description=(
                "fsspec options for opening the files named by BATCH messages (credentials, "
                "endpoint_url, ... see s3fs, gcsfs, adlfs); file:// URLs and local paths need "
                "none."
            ),
        ),
        th.Property(
            BATCH_DELETE_AFTER_LOAD,
            th.BooleanType(),
            default=False,
            title="Delete BATCH files after load",
            description=(
                "Delete the files of BATCH messages once their records are loaded (or counted as "
                "skipped or dead-lettered): target-mixpanel as soon as the tap's STATE after "
                "them is written, target-braze when the run ends with its final state written. "
                "For batch files written for this target only, such as tap-braze-currents' in "
                "this project's meltano.yml; only files under 'batch_delete_root' are deleted. "
                "A dry run keeps them."
            ),
        ),
        th.Property(
            BATCH_DELETE_ROOT,
            th.StringType(),
            title="BATCH delete root",
            description=(
                "The one folder (a path, file:// or fsspec URL such as s3://bucket/batches) "
                "under which 'batch_delete_after_load' may delete: set it to the tap's "
                "batch_config storage root. A file a BATCH message names anywhere else is read "
                "but never deleted (one warning per run); unset, nothing is deleted."
            ),
        ),
    ]


def _location(url: str) -> tuple[str, str]:
    """The protocol and normalised absolute path of a URL or local path.

    Local paths are resolved (``..``, symlinks), so a manifest cannot step out of the root.
    """
    protocol, path = fsspec.core.split_protocol(url)
    if protocol in (None, "file", "local"):
        return "file", os.path.realpath(path)
    return str(protocol), posixpath.normpath("/" + path)


def is_under(url: str, root: str) -> bool:
    """True when ``url`` names a file inside the folder ``root`` (same protocol, same tree)."""
    (protocol, path), (root_protocol, root_path) = _location(url), _location(root)
    if protocol != root_protocol:
        return False
    return path != root_path and path.startswith(root_path.rstrip("/") + "/")


class BatchReadingTarget(Target):
    """A target that reads BATCH messages (jsonl/parquet, gzip/none, any fsspec URL).

    ``capabilities`` announces ``batch``. The SDK's ``batch_config`` setting (where a *tap*
    writes its batch files) is not offered: a target reads the URLs each message names.
    """

    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        *Target.capabilities,
        PluginCapabilities.BATCH,
    ]

    @override
    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """Add the SDK's built-in settings, except ``batch_config`` (see the class docstring)."""
        own = "batch_config" in config_jsonschema["properties"]
        super().append_builtin_config(config_jsonschema)
        if not own:
            config_jsonschema["properties"].pop("batch_config", None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._batch_files_pending: dict[str, None] = {}  # read, not deleted yet (in order)
        self._batch_files_deleted = 0
        self._batch_files_untrusted = 0
        self._batch_files_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def deletes_batch_files(self) -> bool:
        """Whether loaded BATCH files are deleted (``batch_delete_after_load``, not a dry run)."""
        return bool(self.config.get(BATCH_DELETE_AFTER_LOAD)) and not self.config.get("dry_run")

    def loaded_batch_files(self, files: tuple[str, ...]) -> None:
        """Called once every record of a BATCH went to the RECORD path.

        The files are deleted at the end of a successful run (:meth:`delete_loaded_batch_files`);
        a target that knows sooner that their records are loaded calls
        :meth:`delete_batch_files` then.
        """
        with self._batch_files_lock:
            self._batch_files_pending.update(dict.fromkeys(files))

    def delete_batch_files(self, files: tuple[str, ...]) -> None:
        """Delete ``files`` now, if they are still pending; their records must be loaded."""
        if not self.deletes_batch_files:
            return
        with self._batch_files_lock:
            due = [url for url in files if url in self._batch_files_pending]
            for url in due:
                del self._batch_files_pending[url]
        due = self._trusted(due)
        if due:
            options = self.config.get(BATCH_STORAGE_OPTIONS)
            deleted = delete_files(
                due, options if isinstance(options, Mapping) else None, self.logger
            )
            with self._batch_files_lock:
                self._batch_files_deleted += deleted

    def _trusted(self, files: list[str]) -> list[str]:
        """The files under ``batch_delete_root``; the others are kept, with one warning per run."""
        root = self.config.get(BATCH_DELETE_ROOT) or None
        trusted = [url for url in files if root is not None and is_under(url, root)]
        kept = [url for url in files if url not in trusted]
        if kept:
            with self._batch_files_lock:
                first, self._batch_files_untrusted = (
                    not self._batch_files_untrusted,
                    self._batch_files_untrusted + len(kept),
                )
            if first:
                where = (
                    f"outside {BATCH_DELETE_ROOT} {root}"
                    if root
                    else f"and {BATCH_DELETE_ROOT} is not set"
                )
                self.logger.warning(
                    "A BATCH message named %s, %s: its records are loaded but the file is not "
                    "deleted (nor any other such file of this run). Set %s to the folder the "
                    "tap writes its batch files to.",
                    kept[0],
                    where,
                    BATCH_DELETE_ROOT,
                )
        return trusted

    def delete_loaded_batch_files(self) -> None:
        """Delete the files of this run's BATCH messages, if ``batch_delete_after_load`` is on.

        Call it only once every record is loaded and the final state written. A dry run
        loads nothing, so it deletes nothing. A file that cannot be deleted is logged and left
        (its records are loaded all the same).
        """
        if not self.config.get(BATCH_DELETE_AFTER_LOAD):
            return
        if not self.deletes_batch_files:
            self.logger.info("Dry run: the BATCH files are kept.")
            return
        self.delete_batch_files(tuple(self._batch_files_pending))
        if self._batch_files_deleted:
            self.logger.info("Deleted %d loaded BATCH file(s).", self._batch_files_deleted)
        if self._batch_files_untrusted:
            self.logger.info(
                "Kept %d loaded BATCH file(s) outside %s.",
                self._batch_files_untrusted,
                BATCH_DELETE_ROOT,
            )

    @override
    def _process_batch_message(self, message_dict: dict) -> None:
        """Pass every record of the manifest's files to the RECORD path, in file order.

        Raises:
            BatchFileError: the encoding is unknown or a file cannot be read (names the file).
        """
        manifest = BatchManifest.from_message(message_dict)
        options = self.config.get(BATCH_STORAGE_OPTIONS)
        reader = BatchReader(options if isinstance(options, Mapping) else None)
        envelope: dict[str, Any] = {"type": "RECORD", "stream": manifest.stream}
        if manifest.version is not None:
            envelope["version"] = manifest.version
        count = 0
        for record in reader.records(manifest):
            self._process_record_message({**envelope, "record": record})
            count += 1
        self.loaded_batch_files(manifest.files)
        self.logger.info(
            "BATCH for stream '%s': %d record(s) read from %d file(s) (%s).",
            manifest.stream,
            count,
            reader.files_read,
            manifest.encoding,
        )


__all__ = ["BATCH_STORAGE_OPTIONS", "BatchReadingTarget", "batch_settings", "is_under"]
