"""The export-loop check's settings: schema (defaults, limits) and the typed object built from it.

The names are those of the plugins they mirror (tap-braze-currents' storage settings,
target-mixpanel's ``min_event_time``, tap-mixpanel-cohorts' credentials and query budget), so a
Meltano utility can take them from the same environment variables.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from singer_sdk import typing as th

from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.mixpanel import QUERY_HOSTS, credential_settings, region_setting
from braze_mixpanel_common.settings import ConfigView, validate_config
from reconcile.report import Threshold
from tap_mixpanel_cohorts.settings import CONFIG_SCHEMA as _QUERY_SCHEMA
from tap_mixpanel_cohorts.settings import Settings as QuerySettings

ENV_PREFIX = "RECONCILE_EXPORT_LOOP_"
"""Settings also come from environment variables ``RECONCILE_EXPORT_LOOP_<NAME>`` (how Meltano
passes a utility's settings); objects and arrays are JSON there."""

SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(
        "storage_url",
        th.StringType,
        required=True,
        description="Root of the Currents export (as tap-braze-currents' 'storage_url').",
    ),
    th.Property(
        "storage_options",
        th.ObjectType(additional_properties=True),
        secret=True,
        description="fsspec options for the storage (as tap-braze-currents').",
    ),
    th.Property(
        "event_types",
        th.ArrayType(th.StringType),
        description="Currents event types the export loop loads (default: every type found).",
    ),
    th.Property(
        "min_event_time",
        th.DateTimeType,
        default="2010-01-01T00:00:00Z",
        description="target-mixpanel's 'min_event_time': older events are skipped by the "
        "target, so they are not expected in Mixpanel.",
    ),
    *credential_settings(),
    th.Property("workspace_id", th.StringType, description="Mixpanel data view, if any."),
    region_setting(QUERY_HOSTS),
    th.Property("api_url", th.StringType, description="Query API base URL (overrides region)."),
    th.Property(
        "project_timezone",
        th.StringType,
        default="UTC",
        description="The Mixpanel project's timezone (Project Settings > Overview), an IANA "
        "name: Mixpanel buckets hourly counts and reads from_date/to_date in it.",
    ),
    th.Property(
        "late_hours",
        th.IntegerType(minimum=0, maximum=48),
        default=2,
        description="date= partitions read after the window's end, for events of the window "
        "that Braze delivered late (up to 48 h).",
    ),
    th.Property(
        "events_per_query",
        th.IntegerType(minimum=1, maximum=100),
        default=50,
        description="Event names asked in one Aggregate Event Counts query.",
    ),
    th.Property(
        "query_budget",
        th.IntegerType(minimum=1),
        default=10,
        description="At most this many queries one run may make; a window that needs more "
        "fails before any query is made (the query API's 60/hour is shared with the cohort tap).",
    ),
    th.Property(
        "max_drift",
        th.IntegerType(minimum=0),
        default=0,
        description="Events of difference (summed over every event and hour) the check allows.",
    ),
    th.Property(
        "max_drift_ratio",
        th.NumberType(minimum=0),
        description="Or: the difference allowed as a share of the expected events (0.001).",
    ),
).to_dict()
# The query budget and the HTTP bounds are tap-mixpanel-cohorts' own settings (same defaults):
# both use the same query client, and the project's budget is shared between them.
SHARED_QUERY_SETTINGS = (
    "max_queries_per_hour",
    "max_concurrent_queries",
    "request_timeout",
    "retry_max_attempts",
    "retry_max_seconds",
)
SCHEMA["properties"].update(
    {name: _QUERY_SCHEMA["properties"][name] for name in SHARED_QUERY_SETTINGS}
)


@dataclass(frozen=True)
class Settings:
    """The check's settings, typed and checked."""

    storage_url: str
    storage_options: Mapping[str, Any] | None = field(repr=False)
    event_types: tuple[str, ...] | None
    min_event_time: float
    timezone: zoneinfo.ZoneInfo
    late_hours: int
    events_per_query: int
    query_budget: int
    threshold: Threshold
    query: QuerySettings
    """The query client's settings (credentials, host, budget), as tap-mixpanel-cohorts'."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], logger: logging.Logger) -> Settings:
        """Check ``config`` against :data:`SCHEMA`; raise ConfigurationError naming a setting."""
        validate_config(config, SCHEMA)
        view = ConfigView(config, SCHEMA)
        name = view.text("project_timezone")
        try:
            timezone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"Setting 'project_timezone' must be an IANA timezone such as UTC or "
                f"America/New_York; got {name!r}."
            ) from None
        query_view = ConfigView({**config, "source": "query"}, _QUERY_SCHEMA)
        min_time = view.datetime("min_event_time") or dt.datetime(2010, 1, 1, tzinfo=dt.UTC)
        ratio = view.get("max_drift_ratio")
        return cls(
            storage_url=view.text("storage_url"),
            storage_options=view.get("storage_options"),
            event_types=tuple(view.texts("event_types") or ()) or None,
            min_event_time=min_time.timestamp(),
            timezone=timezone,
            late_hours=view.integer("late_hours"),
            events_per_query=view.integer("events_per_query"),
            query_budget=view.integer("query_budget"),
            threshold=Threshold(view.integer("max_drift"), None if ratio is None else ratio),
            query=QuerySettings.from_config(query_view, logger),
        )


def config_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Settings set as ``RECONCILE_EXPORT_LOOP_<NAME>`` variables (JSON for objects, arrays)."""
    config: dict[str, Any] = {}
    for name, prop in SCHEMA["properties"].items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw in (None, ""):
            continue
        kinds = prop.get("type", [])
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "string" in kinds and not raw.lstrip().startswith(("{", "[")):
            config[name] = raw
            continue
        try:
            config[name] = json.loads(raw)
        except ValueError:
            raise ConfigurationError(
                f"Environment variable {ENV_PREFIX + name.upper()} is not valid JSON."
            ) from None
    return config
