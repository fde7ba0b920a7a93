"""Settings of tap-mixpanel-cohorts: the JSON schema (``--about``) and the typed settings object.

Defaults, limits and enums live only in :data:`CONFIG_SCHEMA`, which the SDK checks before the
tap runs; :meth:`Settings.from_config` reads the checked config and applies the rules between
settings that a schema cannot express, each failing with a message naming the setting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from singer_sdk import typing as th

from braze_mixpanel_common.cohorts import MEMBER_FIELDS, MEMBERS_STREAM
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.http import (
    RetryBounds,
    request_timeout_setting,
    retry_bound_settings,
)
from braze_mixpanel_common.mixpanel import (
    QUERY_HOSTS,
    MixpanelAuth,
    credential_settings,
    region_setting,
    resolve_auth,
    resolve_base_url,
)
from braze_mixpanel_common.settings import ConfigView

_ID = th.CustomType({"type": ["string", "integer"]})

DEFAULT_PAGE_SIZE = 1000
"""Mixpanel's documented page size for ``engage`` answers (the ``page_size`` default)."""

CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property(
        "source",
        th.StringType,
        default="query",
        allowed_values=["query", "webhook"],
        description="Where members come from: 'query' reads Mixpanel's query API (engage, "
        "within its hourly budget); 'webhook' reads the spool that mixpanel-cohort-webhook "
        "fills from Mixpanel's cohort sync (no Mixpanel credentials needed).",
    ),
    th.Property(
        "spool_url",
        th.StringType,
        description="Source 'webhook': the spool the webhook receiver writes to (a directory, "
        "file:// or fsspec URL such as s3://bucket/prefix).",
    ),
    th.Property(
        "spool_options",
        th.ObjectType(),
        secret=True,
        description="Source 'webhook': options passed to the spool's fsspec filesystem "
        "(credentials, endpoint_url, ...).",
    ),
    th.Property(
        "incomplete_session_warn_minutes",
        th.IntegerType(minimum=1),
        default=60,
        description="Source 'webhook': warn about a cohort-sync session still missing pages "
        "this many minutes after its first page arrived (its cycle waits until it completes or "
        "a later cycle of its cohort does).",
    ),
    *credential_settings(),
    th.Property(
        "workspace_id",
        _ID,
        description="Data view (workspace) id, for projects with Data Views.",
    ),
    region_setting(QUERY_HOSTS),
    th.Property(
        "api_url",
        th.StringType,
        description="Override of the query API host (default https://mixpanel.com, "
        "https://eu.mixpanel.com or https://in.mixpanel.com by region).",
    ),
    th.Property(
        "cohort_ids",
        th.ArrayType(th.IntegerType),
        description="Cohorts to read (both streams). Default: every visible cohort.",
    ),
    th.Property(
        "user_id_property",
        th.StringType(min_length=1),
        default="$braze_external_id",
        description="Profile property holding the Braze external_id.",
    ),
    th.Property(
        "fallback_to_distinct_id",
        th.BooleanType,
        default=True,
        description="Use the distinct_id as external_id when the profile lacks "
        "user_id_property; if false such members are skipped and counted.",
    ),
    th.Property(
        "output_properties",
        th.ArrayType(th.StringType),
        default=[],
        description="Extra profile properties to emit on cohort_members records.",
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1),
        default=DEFAULT_PAGE_SIZE,
        description="Source 'query': members asked for per engage page. 1000 is Mixpanel's "
        "documented page size; users of other connectors report larger pages being served "
        "when asked (see the docs).",
    ),
    th.Property(
        "count_follow_up_pages",
        th.BooleanType,
        default=True,
        description="Source 'query': count every engage page against 'max_queries_per_hour' "
        "(the documented rule). False counts only each cohort's first page, as Mixpanel "
        "support has told connector users (reported, not documented).",
    ),
    th.Property(
        "max_queries_per_hour",
        th.IntegerType(minimum=1),
        default=60,
        description="Query budget: queries (each engage page counts) in any sliding hour.",
    ),
    th.Property(
        "max_concurrent_queries",
        th.IntegerType(minimum=1),
        default=5,
        description="Query budget: queries running at once.",
    ),
    th.Property(
        "emit_activate_version_messages",
        th.BooleanType,
        default=True,
        description="End each complete snapshot with an ACTIVATE_VERSION message "
        "(target-braze relies on it before removing members).",
    ),
    request_timeout_setting(300),
    *retry_bound_settings(
        "8 attempts after a 5xx or network failure, waits of 2 s doubling to 60 s plus 1-5 s "
        "jitter; 12 after a 429 of the hourly query budget, waits of 30 s doubling to 600 s"
    ),
).to_dict()


@dataclass(frozen=True)
class Settings:
    """The tap's settings, typed and checked; built once per run by :meth:`from_config`."""

    source: str
    """'query' or 'webhook'."""
    spool_url: str | None
    spool_options: Mapping[str, Any] | None = field(repr=False)
    incomplete_session_warn_minutes: int
    auth: MixpanelAuth | None
    """None with source 'webhook' (no Mixpanel request is made)."""
    base_url: str
    cohort_ids: tuple[int, ...] | None
    """The cohorts to read, in order, without repeats; None: every visible cohort."""
    user_id_property: str
    fallback_to_distinct_id: bool
    output_properties: tuple[str, ...]
    """Extra profile properties for cohort_members records, without repeats."""
    page_size: int
    count_follow_up_pages: bool
    max_queries_per_hour: int
    max_concurrent_queries: int
    emit_activate_version_messages: bool
    request_timeout: float = 300.0
    retry_bounds: RetryBounds = field(default_factory=RetryBounds)

    @property
    def requested_properties(self) -> tuple[str, ...]:
        """What ``engage`` is asked for: the id property and the extra properties only."""
        return tuple(dict.fromkeys([self.user_id_property, *self.output_properties]))

    @classmethod
    def from_config(cls, view: ConfigView, logger: logging.Logger) -> Settings:
        """Read the SDK-validated config; raise ConfigurationError naming a setting that is wrong.

        Args:
            view: the tap's config, read through its schema.
            logger: receives the warning about the legacy ``api_secret`` (once per call).
        """
        source = view.text("source")
        spool_url = view.optional_text("spool_url")
        if source == "webhook":
            if spool_url is None:
                raise ConfigurationError(
                    "Setting 'spool_url' is required with 'source' webhook (the spool "
                    "mixpanel-cohort-webhook writes to)."
                )
            auth = None
        else:
            if spool_url is not None:
                logger.warning(
                    "Setting 'spool_url' is ignored: it is read only with 'source' webhook."
                )
            auth = resolve_auth(view, allow_project_token=False, logger=logger)
        base_url = resolve_base_url(view, QUERY_HOSTS)
        output_properties = view.texts("output_properties") or ()
        clash = sorted(set(output_properties) & set(MEMBER_FIELDS))
        if clash:
            raise ConfigurationError(
                f"Setting 'output_properties' must not contain {', '.join(clash)}: these are "
                f"{MEMBERS_STREAM} fields already."
            )
        cohort_ids = view.get("cohort_ids")
        return cls(
            source=source,
            spool_url=spool_url,
            spool_options=view.get("spool_options"),
            incomplete_session_warn_minutes=view.integer("incomplete_session_warn_minutes"),
            auth=auth,
            base_url=base_url,
            cohort_ids=tuple(dict.fromkeys(int(i) for i in cohort_ids)) if cohort_ids else None,
            user_id_property=view.text("user_id_property"),
            fallback_to_distinct_id=view.flag("fallback_to_distinct_id"),
            output_properties=output_properties,
            page_size=view.integer("page_size"),
            count_follow_up_pages=view.flag("count_follow_up_pages"),
            max_queries_per_hour=view.integer("max_queries_per_hour"),
            max_concurrent_queries=view.integer("max_concurrent_queries"),
            emit_activate_version_messages=view.flag("emit_activate_version_messages"),
            request_timeout=view.number("request_timeout"),
            retry_bounds=RetryBounds.from_settings(view),
        )
