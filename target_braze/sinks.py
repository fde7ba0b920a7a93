"""Sinks: membership snapshots, membership changes, the cohort list, plain attribute upserts.

The target creates the run's :class:`~target_braze.sync.BrazeSync` and hands it to each sink
(as the SDK's SQL targets hand their connector); the sinks only pass records to it, and the diff
and the requests happen once the whole input has been read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink, RecordSink
from typing_extensions import override

from braze_mixpanel_common.cohorts import SESSION_ID
from target_braze.settings import MAX_OBJECTS_PER_REQUEST

if TYPE_CHECKING:
    from target_braze.sync import BrazeSync


class _BrazeSink:
    """A sink that feeds the run object ``sync`` it was created with."""

    def __init__(self, *args: Any, sync: BrazeSync, **kwargs: Any) -> None:
        self.sync = sync
        super().__init__(*args, **kwargs)


class _IdRecordSink(_BrazeSink, RecordSink):
    """A sink that reads only a few id fields, each checked when read.

    JSON-schema validation and the SDK's timestamp parsing are skipped: they would check and
    parse fields the sink never reads (``received_at``), for every member.
    """

    @override
    def get_validator(self) -> Any:
        """No JSON-schema validation (see the class docstring)."""
        return None

    @override
    def _validate_and_parse(self, record: dict) -> dict:
        """The record as read (see docs/sdk-deviations.md)."""
        return record


class MembershipSink(_IdRecordSink):
    """Stages cohort membership records (cohort id, cohort name, user id) for the diff.

    Missing ids are counted as skipped. A schema with ``session_id`` (tap-mixpanel-cohorts'
    webhook source) announces one-cohort snapshots: each ACTIVATE_VERSION completes the cohorts
    sent since the previous one.
    """

    @override
    def setup(self) -> None:
        """Note whether the stream's snapshots are one-cohort snapshots."""
        super().setup()
        scoped = SESSION_ID in (self.schema.get("properties") or {})
        self.sync.membership(self.stream_name).scoped = scoped

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Stage one member."""
        self.sync.add_member(self.stream_name, record)

    @override
    def activate_version(self, new_version: int) -> None:
        """The tap finished a full snapshot of this stream: removals may be applied."""
        self.sync.snapshot_complete(self.stream_name)


class ChangeSink(_IdRecordSink):
    """Stages change records (``cohort_member_changes``: a user entered or left a cohort)."""

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Stage one change, in arrival order."""
        self.sync.add_change(self.stream_name, record)

    @override
    def activate_version(self, new_version: int) -> None:
        """Changes are not snapshots: a table version removes nothing."""


class CohortListSink(_BrazeSink, RecordSink):
    """Reads the ``cohorts`` stream: which cohorts still exist upstream, their names and dates."""

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Record one listed cohort."""
        self.sync.list_cohort(record)

    @override
    def activate_version(self, new_version: int) -> None:
        """Nothing to do: the list is read in full every run."""


class AttributeSink(_BrazeSink, BatchSink):
    """Upserts every record as the attributes of the user named by ``user_id_field``."""

    MAX_SIZE_DEFAULT = MAX_OBJECTS_PER_REQUEST * 40
    """Records buffered per batch (40 full requests) unless ``batch_size_rows`` says otherwise."""

    @override
    def setup(self) -> None:
        """Fail early if ``/users/track`` cannot be used."""
        super().setup()
        self.sync.check_upsert_possible(self.stream_name)

    @override
    def process_batch(self, context: dict) -> None:
        """Send the buffered records, packed 75 per request."""
        self.sync.upsert(self.stream_name, context.get("records", []))

    @override
    def activate_version(self, new_version: int) -> None:
        """Attributes are upserts; a new table version removes nothing."""
