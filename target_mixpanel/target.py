"""target-mixpanel: import any Singer stream into Mixpanel through ``/import``.

Braze Currents streams are mapped exactly as Braze's own Currents -> Mixpanel connector does.
"""

from __future__ import annotations

import functools
import typing as t

from typing_extensions import override

from braze_mixpanel_common.batch_target import BatchReadingTarget
from braze_mixpanel_common.cli import exit_on_error
from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.deadletter import DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter
from braze_mixpanel_common.fast_records import leaves_records_unchanged
from braze_mixpanel_common.http import request_timeout
from braze_mixpanel_common.progress import Progress, log_summary_json
from braze_mixpanel_common.retry import BackoffPolicy
from braze_mixpanel_common.settings import ConfigView
from target_mixpanel.client import ImportClient
from target_mixpanel.dispatch import Dispatcher, DryRunSender, Sender
from target_mixpanel.reader import BytesMsgSpecReader
from target_mixpanel.settings import CONFIG_SCHEMA, Settings
from target_mixpanel.sinks import MixpanelSink
from target_mixpanel.stats import PLUGIN, RunStats

if t.TYPE_CHECKING:
    from pathlib import PurePath

    from singer_sdk.singerlib.encoding.base import GenericSingerReader


class TargetMixpanel(BatchReadingTarget):
    """Singer target for Mixpanel's Ingestion API (``POST /import``).

    ``clock`` and ``backoff`` replace the real clock and Mixpanel's backoff (tests);
    ``checkpoint_interval`` is the least number of seconds between two STATE lines.
    """

    name = "target-mixpanel"
    package_name = "braze-mixpanel-singer"
    config_jsonschema = CONFIG_SCHEMA
    default_sink_class = MixpanelSink
    message_reader_class = BytesMsgSpecReader

    def __init__(
        self,
        *,
        config: dict | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
        message_reader: GenericSingerReader | None = None,
        clock: Clock | None = None,
        backoff: BackoffPolicy | None = None,
        checkpoint_interval: float = 1.0,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
            message_reader=message_reader,
        )
        self.settings = Settings.from_config(
            ConfigView(self.config, self.config_jsonschema), self.logger
        )
        self.stats = RunStats(progress=Progress(self.logger, PLUGIN, clock=clock))
        self.dead_letters = DeadLetterFile(self.settings.dead_letter_path, self.name)
        sender: Sender
        if self.settings.dry_run:
            sender = DryRunSender(DryRunWriter(self.settings.dry_run_path, "stdout"))
        else:
            assert self.settings.auth is not None  # only a dry run goes without credentials
            sender = ImportClient(
                self.settings.base_url,
                self.settings.auth,
                strict=self.settings.strict,
                max_concurrency=self.settings.max_concurrency,
                stats=self.stats,
                clock=clock,
                backoff=backoff,
                retry_bounds=self.settings.retry_bounds,
                timeout=request_timeout(self.settings.request_timeout),
                user_agent=f"target-mixpanel/{self.plugin_version}",
                logger=self.logger,
            )
        self.sender = sender
        self._direct_sinks: dict[str, MixpanelSink] = {}
        self.dispatcher = Dispatcher(
            sender,
            stats=self.stats,
            dead_letters=self.dead_letters,
            emit_state=None if self.settings.dry_run else self._write_state_message,
            batch_size=self.settings.batch_size,
            max_concurrency=1 if self.settings.dry_run else self.settings.max_concurrency,
            checkpoint_interval=checkpoint_interval,
            clock=clock,
            logger=self.logger,
        )

    @override
    def _process_schema_message(self, message_dict: dict) -> None:
        """Register the stream as the SDK does, then note whether its records may go direct."""
        super()._process_schema_message(message_dict)
        stream = message_dict["stream"]
        maps = self.mapper.stream_maps.get(stream, [])
        sink = self._sinks_active.get(stream)
        if (
            leaves_records_unchanged(maps)
            and maps[0].stream_alias == stream
            and isinstance(sink, MixpanelSink)
            and sink.get_validator() is None
            and not sink.include_sdc_metadata_properties
        ):
            self._direct_sinks[stream] = sink
        else:
            self._direct_sinks.pop(stream, None)

    @override
    def _process_record_message(self, message_dict: dict) -> None:
        """Send plain records straight to the sink.

        Streams without stream maps, flattening or validation skip the SDK's generic path (copy,
        identity transform, metadata, per-record debug log), which costs about as much as the
        mapping itself. Other streams take the SDK path.
        """
        sink = self._direct_sinks.get(message_dict.get("stream"))  # type: ignore[arg-type]
        record = message_dict.get("record")
        if sink is None or type(record) is not dict:
            super()._process_record_message(message_dict)
            return
        if sink.key_properties:
            sink._singer_validate_message(record)
        sink.process_record(record, {})

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        """Hand STATE to the dispatcher, which writes it once every earlier record is settled.

        The SDK's own state handling (written after each drain) is bypassed: records are sent
        while input is read, not at drain time.
        """
        self._assert_line_requires(message_dict, requires={"value"})
        self.dispatcher.add_state(message_dict["value"])

    @override
    def loaded_batch_files(self, files: tuple[str, ...]) -> None:
        """Also delete the files as soon as a STATE after them is written (if asked).

        Then a run holds on disk only the batches whose events are still being sent, not all
        of its batches until it ends.
        """
        super().loaded_batch_files(files)
        if self.deletes_batch_files:
            self.dispatcher.after_state(functools.partial(self.delete_batch_files, files))

    @override
    def process_endofpipe(self) -> None:
        """Send what is left, wait for confirmation, write the final state and the summary."""
        try:
            super().process_endofpipe()
            self.dispatcher.close()
        finally:
            self._finish()
        self.delete_loaded_batch_files()

    def _finish(self) -> None:
        self.dispatcher.abort()
        self.sender.close()
        self.dead_letters.close()
        self.logger.info("target-mixpanel summary: %s", self.stats.summary())
        log_summary_json(self.logger, PLUGIN, self.stats.figures())
        if self.dead_letters.count:
            self.logger.warning(
                "%d record(s) were written to the dead-letter file %s.",
                self.dead_letters.count,
                self.dead_letters.path,
            )

    @override
    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the CLI; a PluginError or invalid setting ends in one error line and exit code 1."""
        with exit_on_error(cls.logger):
            super().invoke(*args, **kwargs)
