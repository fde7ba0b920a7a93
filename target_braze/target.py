"""The target-braze Singer target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.sinks import Sink
from typing_extensions import override

from braze_mixpanel_common.batch_target import BatchReadingTarget
from braze_mixpanel_common.cli import exit_on_error
from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.cohorts import CHANGE
from braze_mixpanel_common.secrets import redact_logs
from braze_mixpanel_common.settings import ConfigView
from target_braze.ledger.mark import with_mark
from target_braze.settings import CONFIG_SCHEMA, Settings
from target_braze.sinks import AttributeSink, ChangeSink, CohortListSink, MembershipSink
from target_braze.sync import BrazeSync


class TargetBraze(BatchReadingTarget):
    """Mirrors cohort membership into Braze user attributes (or partner cohorts)."""

    name = "target-braze"
    package_name = "braze-mixpanel-singer"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = AttributeSink
    message_reader_class = MsgSpecReader
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        *BatchReadingTarget.capabilities,
        PluginCapabilities.ACTIVATE_VERSION,
    ]

    def __init__(self, *, clock: Clock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = Settings.from_config(ConfigView(self.config, self.config_jsonschema))
        redact_logs(self.settings.secrets)  # storage clients log credentials at debug level
        self.max_parallelism = 1  # one shared rate limit; concurrency lives in the sender
        self._clock = clock
        self._sync: BrazeSync | None = None
        self._held_state: dict[str, Any] | None = None

    @property
    def sync(self) -> BrazeSync:
        """The run (created with the first stream, so ``--about`` touches no files)."""
        if self._sync is None:
            self._sync = BrazeSync(self.settings, self.logger, clock=self._clock)
        return self._sync

    @override
    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: Sequence[str] | None = None,
    ) -> Sink:
        """The stream's sink; a new one when the stream is new or its schema changed.

        The SDK's own logic, with sinks created by :meth:`add_braze_sink` (as the SDK's SQL
        targets create theirs with ``add_sqlsink``), see docs/sdk-deviations.md.
        """
        if schema is None:
            return self._sinks_active[stream_name]
        existing = self._sinks_active.get(stream_name)
        if existing is None:
            return self.add_braze_sink(stream_name, schema, key_properties)
        if existing.original_schema != schema or existing.key_properties != key_properties:
            self._sinks_to_clear.append(self._sinks_active.pop(stream_name))
            return self.add_braze_sink(stream_name, schema, key_properties)
        return existing

    def add_braze_sink(
        self, stream_name: str, schema: dict, key_properties: Sequence[str] | None
    ) -> Sink:
        """Create and register the stream's sink, handing it the run object ``sync``."""
        sink_class = self.get_sink_class(stream_name=stream_name)
        sink = sink_class(
            target=self,
            stream_name=stream_name,
            schema=schema,
            key_properties=key_properties,
            sync=self.sync,  # type: ignore[call-arg]
        )
        sink.setup()
        self._sinks_active[stream_name] = sink
        return sink

    def _stream_schema(self, stream_name: str) -> dict[str, Any]:
        for maps in self.mapper.stream_maps.values():
            for stream_map in maps:
                if stream_map.stream_alias == stream_name:
                    return stream_map.transformed_schema
        return {}

    def is_change_stream(self, schema: dict[str, Any]) -> bool:
        """True when the stream carries membership changes (cohort, user and ``change``)."""
        s = self.settings
        props = schema.get("properties") or {}
        return all(f in props for f in (s.cohort_id_field, s.user_id_field, CHANGE))

    def is_membership_stream(self, stream_name: str, schema: dict[str, Any]) -> bool:
        """True when ``stream_name`` carries cohort membership."""
        s = self.settings
        if s.membership_streams is not None:
            return stream_name in s.membership_streams
        props = schema.get("properties") or {}
        return all(f in props for f in (s.cohort_id_field, s.cohort_name_field, s.user_id_field))

    @override
    def get_sink_class(self, stream_name: str) -> type[Sink]:
        """Membership, change, cohort list, or plain attribute sink, by stream name and schema."""
        if stream_name == self.settings.cohorts_stream:
            return CohortListSink
        schema = self._stream_schema(stream_name)
        if self.is_change_stream(schema):
            return ChangeSink
        if self.is_membership_stream(stream_name, schema):
            return MembershipSink
        return AttributeSink

    @override
    def _process_activate_version_message(self, message_dict: dict[str, Any]) -> None:
        """Hand ACTIVATE_VERSION to every sink of the stream (see docs/sdk-deviations.md).

        Unlike the SDK, this neither requires nor announces ``_sdc_deleted_at``: the sinks do not
        soft-delete rows, an ACTIVATE_VERSION only marks a membership snapshot complete.
        """
        stream_name = message_dict["stream"]
        if not self.config.get("process_activate_version_messages", True):
            self.logger.warning(
                "ACTIVATE_VERSION for '%s' ignored (process_activate_version_messages is "
                "false): no removals can be applied.",
                stream_name,
            )
            return
        for stream_map in self.mapper.stream_maps[stream_name]:
            self.get_sink(stream_map.stream_alias).activate_version(message_dict["version"])

    @override
    def _write_state_message(self, state: dict[str, Any]) -> None:
        """Hold state lines until Braze has confirmed this run's changes.

        Membership changes are only sent at the end of the input (the diff needs the whole
        snapshot), so a state line written by a mid-run drain would get ahead of them.
        """
        if self._sync is None:
            super()._write_state_message(state)
        else:
            self._held_state = state

    @override
    def process_endofpipe(self) -> None:
        """Drain the attribute sinks, then diff and send memberships, then summarise."""
        try:
            super().process_endofpipe()
            if self._sync is not None:
                self._sync.finish(self._held_state)
                state = self._held_state
                if self._sync.mark is not None:
                    state = with_mark(state, self._sync.mark)
                if state is not None:
                    super()._write_state_message(state)
        finally:
            if self._sync is not None:
                self._sync.close()
        self.delete_loaded_batch_files()

    @override
    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Run the CLI; a PluginError or invalid setting ends in one error line and exit code 1."""
        with exit_on_error(cls.logger):
            super().invoke(*args, **kwargs)


if __name__ == "__main__":
    TargetBraze.cli()
