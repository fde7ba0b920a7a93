"""Settings of target-mixpanel: the JSON schema (``--about``) and the frozen :class:`Settings`.

Defaults, limits and choices live only in the schema, which the SDK checks before the target
starts; :meth:`Settings.from_config` adds the rules that span settings, so a misconfiguration
fails before any input is read, with a message naming the setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from singer_sdk import typing as th

from braze_mixpanel_common.batch_target import batch_settings
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.http import (
    RetryBounds,
    request_timeout_setting,
    retry_bound_settings,
)
from braze_mixpanel_common.mixpanel import (
    INGESTION_HOSTS,
    MixpanelAuth,
    credential_settings,
    region_setting,
    resolve_auth,
    resolve_base_url,
)
from braze_mixpanel_common.settings import ConfigView
from target_mixpanel.dispatch import MAX_EVENTS_PER_REQUEST

MAX_CONCURRENCY = 64  # upper limit of max_concurrency (requests in flight)

CONFIG_SCHEMA = th.PropertiesList(
    *credential_settings(),
    th.Property(
        "project_token",
        th.StringType,
        secret=True,
        description="Project token; /import accepts it as basic-auth user with no project_id.",
    ),
    region_setting(INGESTION_HOSTS),
    th.Property(
        "api_url",
        th.StringType,
        description="Override of the ingestion host, e.g. a local emulator (default from region).",
    ),
    th.Property(
        "batch_size",
        th.IntegerType(minimum=1, maximum=MAX_EVENTS_PER_REQUEST),
        default=MAX_EVENTS_PER_REQUEST,
        description="Events per /import request (requests also stay under 2 MB).",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=MAX_CONCURRENCY),
        default=10,
        description="Requests in flight at once (Mixpanel advises 10-20).",
    ),
    th.Property(
        "strict",
        th.BooleanType,
        default=True,
        description="Send strict=1 so Mixpanel reports each invalid event (dead-lettered). "
        "With false, Mixpanel may drop invalid events silently.",
    ),
    th.Property(
        "min_event_time",
        th.DateTimeType,
        default="2010-01-01T00:00:00Z",
        description="Events older than this are skipped and counted.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        default="target-mixpanel-dead-letters.jsonl",
        description="JSONL file (mode 0600) for records Mixpanel rejected or that cannot be "
        "events, with the reason.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description="Write the request bodies (NDJSON) to dry_run_path and send nothing; no "
        "state is emitted.",
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        default="-",
        description="Where dry_run writes; '-' is standard output.",
    ),
    th.Property(
        "event_name",
        th.StringType,
        description="Non-Currents streams: Mixpanel event name (default: the stream name).",
    ),
    th.Property(
        "event_name_field",
        th.StringType,
        description="Non-Currents streams: record field holding the Mixpanel event name (not "
        "repeated as a property); when it is missing or empty the name is event_name, then the "
        "stream name.",
    ),
    th.Property(
        "distinct_id_field",
        th.StringType,
        default="distinct_id",
        description="Non-Currents streams: record field holding the distinct_id (records "
        "without one are skipped and counted).",
    ),
    th.Property(
        "time_field",
        th.StringType,
        default="time",
        description="Non-Currents streams: record field holding the event time (ISO 8601 "
        "date-time, or epoch seconds or milliseconds).",
    ),
    th.Property(
        "insert_id_field",
        th.StringType,
        description="Non-Currents streams: field used as $insert_id (default: a stable hash of "
        "the record, so replays dedupe).",
    ),
    th.Property(
        "ip",
        th.StringType,
        default="0",
        description="Value of the ip property when a record has none; '0' (default) stops "
        "Mixpanel geolocating every event to this machine. Empty string: leave it out.",
    ),
    th.Property(
        "validate_records",
        th.BooleanType,
        default=False,
        description="Validate each record against its stream schema (off by default: Mixpanel "
        "validates events itself and validation costs ~half the CPU).",
    ),
    request_timeout_setting(120),
    *retry_bound_settings("8 attempts, waits of 2 s doubling to 60 s plus 1-5 s jitter"),
    *batch_settings(),
).to_dict()

_CREDENTIALS = ("service_account_username", "service_account_secret", "api_secret", "project_token")


@dataclass(frozen=True)
class Settings:
    """The target's settings, validated and typed.

    ``auth`` is None only in a dry run without credentials; ``dry_run_path`` None or ``"-"``
    is standard output; ``ip`` None leaves the ip property out.
    """

    auth: MixpanelAuth | None
    base_url: str
    batch_size: int
    max_concurrency: int
    strict: bool
    min_event_time: float
    dead_letter_path: str
    dry_run: bool
    dry_run_path: str | None
    event_name: str | None
    event_name_field: str | None
    distinct_id_field: str
    time_field: str
    insert_id_field: str | None
    ip: str | None
    validate_records: bool
    request_timeout: float
    retry_bounds: RetryBounds

    @classmethod
    def from_config(cls, view: ConfigView, logger: logging.Logger) -> Settings:
        """Build the settings from the SDK-validated config and apply the cross-setting rules.

        Credentials are required unless a dry run is configured without any; ``strict`` false
        is allowed with a warning.

        Raises:
            ConfigurationError: a setting is missing or invalid (the message names it).
        """
        dry_run = view.flag("dry_run")
        auth = None
        if not dry_run or any(view.get(name) for name in _CREDENTIALS):
            auth = resolve_auth(view, allow_project_token=True, logger=logger)
        strict = view.flag("strict")
        if not strict:
            logger.warning(
                "Setting 'strict' is false: Mixpanel does not report invalid events without "
                "strict=1, so they may be dropped without a dead letter."
            )
        min_event_time = view.datetime("min_event_time")
        if min_event_time is None:
            raise ConfigurationError("Setting 'min_event_time' is required.")
        return cls(
            auth=auth,
            base_url=resolve_base_url(view, INGESTION_HOSTS),
            batch_size=view.integer("batch_size"),
            max_concurrency=view.integer("max_concurrency"),
            strict=strict,
            min_event_time=min_event_time.timestamp(),
            dead_letter_path=view.text("dead_letter_path"),
            dry_run=dry_run,
            dry_run_path=view.optional_text("dry_run_path"),
            event_name=view.optional_text("event_name"),
            event_name_field=view.optional_text("event_name_field"),
            distinct_id_field=view.text("distinct_id_field"),
            time_field=view.text("time_field"),
            insert_id_field=view.optional_text("insert_id_field"),
            ip=view.optional_text("ip"),
            validate_records=view.flag("validate_records"),
            request_timeout=view.number("request_timeout"),
            retry_bounds=RetryBounds.from_settings(view),
        )
