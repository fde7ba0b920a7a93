"""The tap: settings, the shared query client and the cohort selection both streams use."""

from __future__ import annotations

import logging
import sys
from typing import Any, ClassVar

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities

from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.mixpanel import (
    QUERY_HOSTS,
    credential_settings,
    region_setting,
    resolve_auth,
    resolve_base_url,
)
from braze_mixpanel_common.retry import Clock
from tap_mixpanel_cohorts.client import MixpanelQueryClient, MixpanelQueryError
from tap_mixpanel_cohorts.streams import MEMBER_FIELDS, CohortMembersStream, CohortsStream

DEFAULT_USER_ID_PROPERTY = "$braze_external_id"
_ID = th.CustomType({"type": ["string", "integer"]})

_quiet = logging.getLogger("tap_mixpanel_cohorts.validation")
_quiet.disabled = True  # validation must not repeat resolve_auth's deprecation warning


class TapMixpanelCohorts(Tap):
    """Mixpanel cohorts and their members, within Mixpanel's query budget."""

    name = "tap-mixpanel-cohorts"
    package_name = "braze-mixpanel-singer"
    # BATCH would write ACTIVATE_VERSION before the batch files are announced; records only.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        c for c in Tap.capabilities if c != PluginCapabilities.BATCH
    ]

    config_jsonschema = th.PropertiesList(
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
            th.StringType,
            default=DEFAULT_USER_ID_PROPERTY,
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
            th.IntegerType,
            default=60,
            description="Query budget: queries (each engage page counts) in any sliding hour.",
        ),
        th.Property(
            "max_concurrent_queries",
            th.IntegerType,
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
    ).to_dict()

    clock: Clock | None = None
    """Time source for the query budget and backoff; tests set a fake clock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._client: MixpanelQueryClient | None = None
        self._cohorts: list[dict[str, Any]] | None = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ settings

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = super()._validate_config(raise_errors=raise_errors)
        try:
            self.check_settings()
        except ConfigurationError as exc:
            if raise_errors:
                raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
            errors.append(str(exc))
        return errors

    def check_settings(self) -> None:
        """Check what the JSON schema cannot; raise ConfigurationError naming the setting."""
        config = dict(self.config)
        resolve_auth(config, allow_project_token=False, logger=_quiet)
        resolve_base_url(config, QUERY_HOSTS)
        for key in ("max_queries_per_hour", "max_concurrent_queries"):
            value = config.get(key)
            if value is not None and int(value) < 1:
                raise ConfigurationError(f"Setting '{key}' must be at least 1, got {value}.")
        if not str(config.get("user_id_property") or DEFAULT_USER_ID_PROPERTY).strip():
            raise ConfigurationError("Setting 'user_id_property' must not be empty.")
        clash = sorted(set(self.output_properties) & set(MEMBER_FIELDS))
        if clash:
            raise ConfigurationError(
                f"Setting 'output_properties' must not contain {', '.join(clash)}: these are "
                "cohort_members fields already."
            )

    @property
    def user_id_property(self) -> str:
        """The profile property that holds the Braze external_id."""
        return str(self.config.get("user_id_property") or DEFAULT_USER_ID_PROPERTY)

    @property
    def fallback_to_distinct_id(self) -> bool:
        """Whether members without ``user_id_property`` fall back to their distinct_id."""
        return bool(self.config.get("fallback_to_distinct_id", True))

    @property
    def output_properties(self) -> list[str]:
        """Extra profile properties requested for cohort_members, de-duplicated, in order."""
        return list(dict.fromkeys(str(p) for p in self.config.get("output_properties") or []))

    @property
    def requested_properties(self) -> list[str]:
        """What ``engage`` is asked for: the id property and the extra properties only."""
        return list(dict.fromkeys([self.user_id_property, *self.output_properties]))

    # ------------------------------------------------------------------ shared state

    @property
    def client(self) -> MixpanelQueryClient:
        """The query client shared by both streams (one budget per run)."""
        if self._client is None:
            self._client = MixpanelQueryClient(dict(self.config), self.logger, clock=self.clock)
        return self._client

    def selected_cohorts(self) -> list[dict[str, Any]]:
        """The cohorts both streams cover, from one ``cohorts/list`` query per run.

        Without ``cohort_ids``: every visible cohort. With it: exactly those cohorts (visible or
        not); an id Mixpanel does not know is an error, so a typo never yields an empty sync.
        """
        if self._cohorts is not None:
            return self._cohorts
        listing = self.client.list_cohorts()
        wanted = self.config.get("cohort_ids")
        if wanted:
            by_id = {int(c["id"]): c for c in listing if c.get("id") is not None}
            missing = [i for i in wanted if int(i) not in by_id]
            if missing:
                raise ConfigurationError(
                    f"Setting 'cohort_ids': cohort(s) {', '.join(map(str, missing))} not found "
                    f"in the Mixpanel project ({len(by_id)} cohorts listed)."
                )
            cohorts = [by_id[int(i)] for i in dict.fromkeys(wanted)]
        else:
            cohorts = [c for c in listing if c.get("id") is not None and _visible(c)]
            hidden = len(listing) - len(cohorts)
            if hidden:
                self.logger.info("Skipping %d hidden cohort(s); list them in 'cohort_ids'.", hidden)
        self.logger.info(
            "Cohorts selected: %d (%s).",
            len(cohorts),
            ", ".join(f"{c['id']} {c.get('name')!r}" for c in cohorts[:20])
            + (" ..." if len(cohorts) > 20 else ""),
        )
        self._cohorts = cohorts
        return cohorts

    def discover_streams(self) -> list[Stream]:
        """The two streams."""
        return [CohortsStream(self), CohortMembersStream(self)]

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Run the CLI; known failures end with one clear log line and exit code 1."""
        try:
            super().invoke(*args, **kwargs)
        except (ConfigurationError, MixpanelQueryError) as exc:
            cls.logger.error("%s", exc)
            sys.exit(1)


def _visible(cohort: dict[str, Any]) -> bool:
    return str(cohort.get("is_visible", 1)).strip().lower() not in ("0", "false", "")


if __name__ == "__main__":
    TapMixpanelCohorts.cli()
