"""Settings of target-mixpanel: the JSON schema (``--about``) and their validation.

Validation runs before any input is read, so misconfiguration fails fast with a message naming
the setting.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from singer_sdk import typing as th

from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.mixpanel import (
    INGESTION_HOSTS,
    MixpanelAuth,
    credential_settings,
    region_setting,
    resolve_auth,
    resolve_base_url,
)
from target_mixpanel.dispatch import MAX_EVENTS_PER_REQUEST

DEFAULT_MIN_EVENT_TIME = "2010-01-01T00:00:00Z"
DEFAULT_DEAD_LETTER_PATH = "target-mixpanel-dead-letters.jsonl"

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
        th.IntegerType,
        default=MAX_EVENTS_PER_REQUEST,
        description="Events per /import request, 1..2000 (requests also stay under 2 MB).",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType,
        default=10,
        description="Requests in flight at once (Mixpanel advises 10-20), 1..64.",
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
        default=DEFAULT_MIN_EVENT_TIME,
        description="Events older than this are skipped and counted.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        default=DEFAULT_DEAD_LETTER_PATH,
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
).to_dict()


@dataclass(frozen=True)
class Settings:
    """Validated settings."""

    auth: MixpanelAuth | None
    base_url: str
    batch_size: int
    max_concurrency: int
    strict: bool
    min_event_time: float
    dead_letter_path: str
    dry_run: bool
    dry_run_path: str
    event_name: str | None
    distinct_id_field: str
    time_field: str
    insert_id_field: str | None
    ip: str | None

    @classmethod
    def from_config(cls, config: dict[str, Any], logger: logging.Logger) -> Settings:
        """Validate ``config``.

        Raises:
            ConfigurationError: a setting is missing or invalid (the message names it).
        """
        dry_run = bool(config.get("dry_run", False))
        has_credentials = any(
            config.get(k)
            for k in (
                "service_account_username",
                "service_account_secret",
                "api_secret",
                "project_token",
            )
        )
        auth = None
        if not dry_run or has_credentials:
            auth = resolve_auth(config, allow_project_token=True, logger=logger)
        base_url = resolve_base_url(config, INGESTION_HOSTS)
        batch_size = _int_between(config, "batch_size", MAX_EVENTS_PER_REQUEST, 1, 2000)
        max_concurrency = _int_between(config, "max_concurrency", 10, 1, 64)
        strict = bool(config.get("strict", True))
        if not strict:
            logger.warning(
                "Setting 'strict' is false: Mixpanel does not report invalid events without "
                "strict=1, so they may be dropped without a dead letter."
            )
        ip = config.get("ip", "0")
        return cls(
            auth=auth,
            base_url=base_url,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            strict=strict,
            min_event_time=_parse_time_setting(config, "min_event_time"),
            dead_letter_path=config.get("dead_letter_path") or DEFAULT_DEAD_LETTER_PATH,
            dry_run=dry_run,
            dry_run_path=config.get("dry_run_path") or "-",
            event_name=config.get("event_name") or None,
            distinct_id_field=config.get("distinct_id_field") or "distinct_id",
            time_field=config.get("time_field") or "time",
            insert_id_field=config.get("insert_id_field") or None,
            ip=None if ip in (None, "") else str(ip),
        )


def _int_between(config: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = config.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"Setting '{name}' must be an integer from {low} to {high}.")
    return value


def _parse_time_setting(config: dict[str, Any], name: str) -> float:
    raw = config.get(name) or DEFAULT_MIN_EVENT_TIME
    try:
        moment = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"Setting '{name}' must be an ISO 8601 date-time, e.g. {DEFAULT_MIN_EVENT_TIME}; "
            f"got {raw!r}."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
