"""tap-braze-currents: Braze Currents exports (Avro on S3, GCS, Azure Blob or disk) as Singer."""

from __future__ import annotations

import sys
import typing as t
from datetime import datetime

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities, TapCapabilities

from braze_mixpanel_common.currents import known_event_types
from tap_braze_currents.discovery import stream_schema
from tap_braze_currents.reader import CorruptFileError
from tap_braze_currents.storage import CurrentsStorage, tls_downgrades
from tap_braze_currents.streams import CurrentsStream, SyncSummary


class TapBrazeCurrents(Tap):
    """Reads a Braze Currents storage export: one stream per event type, incremental by file."""

    name = "tap-braze-currents"
    package_name = "braze-mixpanel-singer"
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "storage_url",
            th.StringType(nullable=False),
            required=True,
            title="Storage URL",
            description=(
                "Root of the Currents export as an fsspec URL: s3://bucket/prefix, "
                "gs://bucket/prefix, az://container/prefix (or abfs://), file:///path or a "
                "plain local path. Every integration below it is read."
            ),
        ),
        th.Property(
            "storage_options",
            th.ObjectType(),
            secret=True,
            title="Storage options",
            description=(
                "Options passed to the fsspec filesystem: credentials, endpoint_url, anon, "
                "account_name, connection_string, ... (see s3fs, gcsfs, adlfs)."
            ),
        ),
        th.Property(
            "event_types",
            th.ArrayType(th.StringType()),
            title="Event types",
            description=(
                "Currents event types to read, e.g. users.behaviors.CustomEvent. "
                "Default: every known type and every type found in the bucket."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType(),
            title="Start date",
            description="Ignore date= partitions (the hour Braze queued the events) before this.",
        ),
        th.Property(
            "end_date",
            th.DateTimeType(),
            title="End date",
            description=(
                "Ignore date= partitions at or after this hour (exclusive). With start_date it "
                "cuts a backfill into independent time windows."
            ),
        ),
        th.Property(
            "lookback_hours",
            th.IntegerType(),
            default=48,
            title="Lookback hours",
            description=(
                "How far before the newest partition each run re-lists for late files. Braze "
                "retries deliveries for up to 48 hours, so keep it at 48 or more."
            ),
        ),
        th.Property(
            "on_corrupt_file",
            th.StringType(),
            default="skip",
            allowed_values=["skip", "fail"],
            title="On corrupt file",
            description=(
                "skip: log a warning naming the file and the reason, count it and go on; "
                "fail: stop with an error and a non-zero exit."
            ),
        ),
    ).to_dict()

    # No BATCH (it would bypass the per-file state) and no ACTIVATE_VERSION (events are appended,
    # never replaced).
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    # The catalog depends on what is in the bucket, so discovery needs valid settings.
    dynamic_catalog = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.summary = SyncSummary()
        self._storage: CurrentsStorage | None = None
        super().__init__(*args, **kwargs)

    def run_discovery(self) -> str:
        """Discover, turning a settings or listing problem into error lines and exit code 1.

        (The SDK runs discovery outside its own handling of configuration errors.)
        """
        try:
            return super().run_discovery()
        except ConfigValidationError as exc:
            for error in exc.errors:
                self.logger.error("%s", error)
            raise SystemExit(1) from exc

    def discover_streams(self) -> list[CurrentsStream]:
        """One stream per event type: the catalogue's types and the ones found in the bucket."""
        self._check_settings()
        storage = self._storage = self._open_storage()
        try:
            folders = storage.event_type_folders()
        except FileNotFoundError:
            self.logger.warning(
                "Nothing found at %s yet: only the built-in catalogue.", storage.url
            )
            folders = {}
        except Exception as exc:
            raise ConfigValidationError(
                "Cannot list the Currents export",
                errors=[
                    f"Cannot list storage_url {storage.url}: {type(exc).__name__}: {exc}. "
                    "Check storage_url and the credentials in storage_options."
                ],
            ) from exc
        requested = self.config.get("event_types")
        event_types = set(requested) if requested else set(known_event_types()) | set(folders)
        # With an input catalog the schemas come from it; reading headers is discovery's job.
        read_headers = self.input_catalog is None
        lookback = int(self.config.get("lookback_hours", 48))
        streams = []
        for event_type in sorted(event_types):
            type_folders = folders.get(event_type, [])
            schema = stream_schema(
                storage, event_type, type_folders if read_headers else [], lookback
            )
            if schema is None:
                self.logger.warning(
                    "Event type %s is neither a known Currents type nor found under %s: "
                    "no stream for it.",
                    event_type,
                    storage.url,
                )
                continue
            streams.append(
                CurrentsStream(
                    self,
                    event_type=event_type,
                    folders=type_folders,
                    storage=storage,
                    schema=schema,
                    summary=self.summary,
                )
            )
        return streams

    def _check_settings(self) -> None:
        """Reject values the JSON schema lets through, before any listing or reading."""
        errors = []
        if not self.config.get("storage_url"):
            errors.append(
                "Setting 'storage_url' is required: the root of the Currents export, "
                "e.g. s3://bucket/currents."
            )
        for name in ("start_date", "end_date"):
            value = self.config.get(name)
            if value:
                try:
                    datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                except ValueError:
                    errors.append(
                        f"Setting '{name}' must be an ISO 8601 date-time such as "
                        f"2026-01-01T00:00:00Z; got {value!r}."
                    )
        lookback = self.config.get("lookback_hours", 48)
        if lookback is not None and int(lookback) < 0:
            errors.append(
                f"Setting 'lookback_hours' must be 0 or more (48 or more is advised); "
                f"got {lookback}."
            )
        if errors:
            raise ConfigValidationError("Invalid settings", errors=errors)

    def _open_storage(self) -> CurrentsStorage:
        weakened = tls_downgrades(self.config.get("storage_options"))
        if weakened:
            self.logger.warning(
                "storage_options turns off TLS protection (%s): the export and the storage "
                "credentials travel without a verified TLS connection. Remove these entries "
                "unless the endpoint is on a trusted private network.",
                ", ".join(weakened),
            )
        try:
            return CurrentsStorage(self.config["storage_url"], self.config.get("storage_options"))
        except (ImportError, ValueError) as exc:
            raise ConfigValidationError(
                "Cannot open the Currents export",
                errors=[
                    f"storage_url {self.config['storage_url']!r} cannot be opened: {exc}. "
                    "s3:// needs the [s3] extra, gs:// [gcs], az:// and abfs:// [azure]."
                ],
            ) from exc

    def sync_all(self) -> None:
        """Sync every selected stream, then log the end-of-run summary."""
        try:
            super().sync_all()
        finally:
            self._log_summary()

    def _log_summary(self) -> None:
        summary = self.summary
        self.logger.info(
            "Currents sync summary: %d files read, %d records, %d files already read, "
            "%d corrupt, %d unreadable, %d non-.avro files ignored.",
            summary.files_read,
            summary.records,
            summary.files_already_read,
            len(summary.corrupt),
            len(summary.unreadable),
            len(self._storage.ignored_files) if self._storage else 0,
        )
        for path, reason in summary.corrupt:
            self.logger.warning("Corrupt file skipped: %s: %s", path, reason)
        for path, reason in summary.unreadable:
            self.logger.warning("Unreadable file, retried next run: %s: %s", path, reason)

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:  # type: ignore[override]
        """Run the CLI; a corrupt file under ``on_corrupt_file: fail`` ends in one log line."""
        try:
            super().invoke(*args, **kwargs)
        except CorruptFileError as exc:
            cls.logger.error("Corrupt file: %s", exc)
            sys.exit(1)


if __name__ == "__main__":
    TapBrazeCurrents.cli()
