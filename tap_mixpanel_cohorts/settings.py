"""Settings of tap-mixpanel-cohorts: the JSON schema (``--about``) and the typed settings object.

Defaults, limits and enums live only in :data:`CONFIG_SCHEMA`, which the SDK checks before the
tap runs; :meth:`Settings.from_config` reads the checked config and applies the rules between
settings that a schema cannot express, each failing with a message naming the setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from singer_sdk import typing as th

from braze_mixpanel_common.cohorts import MEMBER_FIELDS, MEMBERS_STREAM
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.http import request_timeout_setting
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

CONFIG_SCHEMA: dict[str, Any] = th.PropertiesList(
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
).to_dict()


@dataclass(frozen=True)
class Settings:
    """The tap's settings, typed and checked; built once per run by :meth:`from_config`."""

    auth: MixpanelAuth
    base_url: str
    cohort_ids: tuple[int, ...] | None
    """The cohorts to read, in order, without repeats; None: every visible cohort."""
    user_id_property: str
    fallback_to_distinct_id: bool
    output_properties: tuple[str, ...]
    """Extra profile properties for cohort_members records, without repeats."""
    max_queries_per_hour: int
    max_concurrent_queries: int
    emit_activate_version_messages: bool
    request_timeout: float = 300.0

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
            auth=auth,
            base_url=base_url,
            cohort_ids=tuple(dict.fromkeys(int(i) for i in cohort_ids)) if cohort_ids else None,
            user_id_property=view.text("user_id_property"),
            fallback_to_distinct_id=view.flag("fallback_to_distinct_id"),
            output_properties=output_properties,
            max_queries_per_hour=view.integer("max_queries_per_hour"),
            max_concurrent_queries=view.integer("max_concurrent_queries"),
            emit_activate_version_messages=view.flag("emit_activate_version_messages"),
            request_timeout=view.number("request_timeout"),
        )
