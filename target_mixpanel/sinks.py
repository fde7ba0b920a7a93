"""The record sink: maps each record to a Mixpanel event and hands it to the dispatcher.

Records are not buffered per stream: the target's :class:`~target_mixpanel.dispatch.Dispatcher`
fills batches across all streams and sends them while input is still being read.
"""

from __future__ import annotations

import typing as t

import msgspec
from singer_sdk.sinks import RecordSink
from typing_extensions import override

from braze_mixpanel_common.deadletter import INVALID_RECORD, TOO_LARGE
from target_mixpanel.mapping import (
    CurrentsMapper,
    EventMapper,
    GenericMapper,
    RejectRecord,
    SkipRecord,
    is_currents_stream,
)

if t.TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

    from target_mixpanel.target import TargetMixpanel

MAX_EVENT_BYTES = 1_000_000  # "Each event must be smaller than 1MB of uncompressed JSON."


def _enc_hook(value: t.Any) -> t.Any:
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


def encode_event(event: dict[str, t.Any]) -> bytes:
    """JSON-encode one event (Decimal as a JSON number, datetimes as ISO strings)."""
    return _encoder.encode(event)


class MixpanelSink(RecordSink):
    """Maps records of one stream to Mixpanel events."""

    def __init__(
        self,
        target: TargetMixpanel,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        self.mp_target = target  # before the SDK's __init__, which calls get_validator()
        super().__init__(target, stream_name, schema, key_properties)
        self.mapper = self._build_mapper()

    def _build_mapper(self) -> EventMapper:
        settings = self.mp_target.settings
        stats = self.mp_target.stats
        if is_currents_stream(self.stream_name, self.schema):
            return CurrentsMapper(
                self.stream_name, stats, min_time=settings.min_event_time, ip=settings.ip
            )
        return GenericMapper(
            self.stream_name,
            stats,
            event_name=settings.event_name,
            event_name_field=settings.event_name_field,
            distinct_id_field=settings.distinct_id_field,
            time_field=settings.time_field,
            insert_id_field=settings.insert_id_field,
            min_time=settings.min_event_time,
            ip=settings.ip,
        )

    @override
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """Schema validation only when ``validate_records`` is set (off by default)."""
        if self.mp_target.settings.validate_records:
            return super().get_validator()
        return None

    @override
    def _validate_and_parse(self, record: dict) -> dict:
        """Validate if asked, but never parse date-time strings: they are sent as they are."""
        if self._validator is not None:
            self._validator.validate(record)
        return record

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Map the record and queue the event (or count the skip / write the dead letter)."""
        target = self.mp_target
        target.stats.records_in += 1
        dispatcher = target.dispatcher
        try:
            event = self.mapper.map(record)
        except SkipRecord as skip:
            target.stats.skipped[skip.reason] += 1
            dispatcher.settled()
            return
        except RejectRecord as bad:
            dispatcher.reject(
                self.stream_name,
                record,
                reason=INVALID_RECORD,
                field=bad.field,
                message=bad.message,
            )
            dispatcher.settled()
            return
        part = _encoder.encode(event)
        if len(part) >= MAX_EVENT_BYTES:
            dispatcher.reject(
                self.stream_name,
                record,
                reason=TOO_LARGE,
                field=None,
                message=f"event is {len(part)} bytes; Mixpanel accepts events under 1 MB",
            )
            dispatcher.settled()
            return
        dispatcher.add(part, self.stream_name, record)


__all__ = ["MixpanelSink", "encode_event"]
