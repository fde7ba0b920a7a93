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

from collections.abc import Mapping
from typing import Any, ClassVar

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from typing_extensions import override

from braze_mixpanel_common.batch import BatchManifest, BatchReader, delete_files

BATCH_STORAGE_OPTIONS = "batch_storage_options"
BATCH_DELETE_AFTER_LOAD = "batch_delete_after_load"


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
                "Delete the files of the run's BATCH messages once the run ends with every "
                "record loaded (or counted as skipped or dead-lettered) and its final state "
                "written. For batch files written for this target only, such as "
                "tap-braze-currents' in this project's meltano.yml; a failed run leaves them."
            ),
        ),
    ]


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
        self._batch_files_read: list[str] = []
        super().__init__(*args, **kwargs)

    def delete_loaded_batch_files(self) -> None:
        """Delete the files of this run's BATCH messages, if ``batch_delete_after_load`` is on.

        Call it only once every record is loaded and the final state written. A dry run
        loads nothing, so it deletes nothing. A file that cannot be deleted is logged and left
        (its records are loaded all the same).
        """
        if not self._batch_files_read or not self.config.get(BATCH_DELETE_AFTER_LOAD):
            return
        if self.config.get("dry_run"):  # both targets' setting
            self.logger.info("Dry run: the BATCH files are kept.")
            return
        options = self.config.get(BATCH_STORAGE_OPTIONS)
        deleted = delete_files(
            self._batch_files_read,
            options if isinstance(options, Mapping) else None,
            self.logger,
        )
        self.logger.info("Deleted %d loaded BATCH file(s).", deleted)
        self._batch_files_read.clear()

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
        self._batch_files_read.extend(manifest.files)
        self.logger.info(
            "BATCH for stream '%s': %d record(s) read from %d file(s) (%s).",
            manifest.stream,
            count,
            reader.files_read,
            manifest.encoding,
        )


__all__ = ["BATCH_STORAGE_OPTIONS", "BatchReadingTarget", "batch_settings"]
