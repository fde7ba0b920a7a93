"""tap-braze-currents: Braze Currents exports (Avro on S3, GCS, Azure Blob or disk) as Singer."""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk import Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities, TapCapabilities
from typing_extensions import override

from braze_mixpanel_common.cli import exit_on_error
from braze_mixpanel_common.currents import known_event_types
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.settings import ConfigView
from tap_braze_currents.discovery import stream_schema
from tap_braze_currents.settings import CONFIG_SCHEMA, Settings
from tap_braze_currents.storage import CurrentsStorage, tls_downgrades
from tap_braze_currents.streams import CurrentsStream
from tap_braze_currents.summary import SyncSummary


class TapBrazeCurrents(Tap):
    """Reads a Braze Currents storage export: one stream per event type, incremental by file."""

    name = "tap-braze-currents"
    package_name = "braze-mixpanel-singer"
    message_writer_class = MsgSpecWriter
    config_jsonschema = CONFIG_SCHEMA

    # BATCH: one JSONL batch file per Currents file (streams.py). No ACTIVATE_VERSION: events
    # are appended, never replaced.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.BATCH,
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
        self.summary = SyncSummary(self.logger)
        super().__init__(*args, **kwargs)

    @cached_property
    def settings(self) -> Settings:
        """The typed settings, built from the config the SDK validated."""
        return Settings.from_config(ConfigView(self.config, self.config_jsonschema))

    @override
    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the CLI; a PluginError or invalid setting ends in one error line and exit code 1."""
        with exit_on_error(cls.logger):
            super().invoke(*args, **kwargs)

    @override
    def run_discovery(self) -> str:
        """Discover, ending like :meth:`invoke` on a bad setting or an unlistable export.

        The SDK runs ``--discover`` from an option callback, before and outside ``invoke``.
        """
        with exit_on_error(self.logger):
            return super().run_discovery()

    @override
    def discover_streams(self) -> list[CurrentsStream]:
        """One stream per event type: the catalogue's types and the ones found in the bucket."""
        settings = self.settings
        storage = self._open_storage(settings)
        try:
            folders = storage.event_type_folders()
        except FileNotFoundError:
            self.logger.warning(
                "Nothing found at %s yet: only the built-in catalogue.", storage.url
            )
            folders = {}
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot list storage_url {storage.url}: {type(exc).__name__}: {exc}. "
                "Check storage_url and the credentials in storage_options."
            ) from exc
        requested = settings.event_types
        event_types = set(requested) if requested else set(known_event_types()) | set(folders)
        # With an input catalog the schemas come from it; reading headers is discovery's job.
        read_headers = self.input_catalog is None
        streams = []
        for event_type in sorted(event_types):
            type_folders = folders.get(event_type, [])
            schema = stream_schema(
                storage, event_type, type_folders if read_headers else [], settings.lookback_hours
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
                    settings=settings,
                    summary=self.summary,
                )
            )
        silent = sum(1 for stream in streams if not stream.has_output)
        if silent:
            self.logger.info(
                "%d known event type(s) have no files under %s and are not in 'event_types': "
                "discovery lists them, a sync sends nothing for them (no SCHEMA, no STATE).",
                silent,
                storage.url,
            )
        return streams

    def _open_storage(self, settings: Settings) -> CurrentsStorage:
        weakened = tls_downgrades(settings.storage_options)
        if weakened:
            self.logger.warning(
                "storage_options turns off TLS protection (%s): the export and the storage "
                "credentials travel without a verified TLS connection. Remove these entries "
                "unless the endpoint is on a trusted private network.",
                ", ".join(weakened),
            )
        try:
            return CurrentsStorage(settings.storage_url, settings.storage_options)
        except (ImportError, ValueError) as exc:
            raise ConfigurationError(
                f"storage_url {settings.storage_url!r} cannot be opened: {exc}. "
                "s3:// needs the [s3] extra, gs:// [gcs], az:// and abfs:// [azure]."
            ) from exc


if __name__ == "__main__":
    TapBrazeCurrents.cli()
