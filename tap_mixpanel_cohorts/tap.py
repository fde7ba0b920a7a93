"""The tap: its settings, and per source what the streams share.

Source 'query': the query client and the cohort selection. Source 'webhook': the spool and the
run's plan of sessions per cohort.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from typing_extensions import override

from braze_mixpanel_common.cli import exit_on_error
from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.cohorts import CHANGES_STREAM, MEMBERS_STREAM
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.settings import ConfigView
from tap_mixpanel_cohorts.client import MixpanelQueryClient
from tap_mixpanel_cohorts.settings import CONFIG_SCHEMA, Settings
from tap_mixpanel_cohorts.spool_plan import CohortWork
from tap_mixpanel_cohorts.streams import CohortMembersStream, CohortsStream, member_schema
from tap_mixpanel_cohorts.webhook import WATERMARKS, SpoolSource
from tap_mixpanel_cohorts.webhook_streams import (
    CohortChangesStream,
    SpoolCohortsStream,
    SpoolMembersStream,
)


class TapMixpanelCohorts(Tap):
    """Mixpanel cohorts and their members, within Mixpanel's query budget."""

    name = "tap-mixpanel-cohorts"
    package_name = "braze-mixpanel-singer"
    # BATCH would write ACTIVATE_VERSION before the batch files are announced; records only.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        c for c in Tap.capabilities if c != PluginCapabilities.BATCH
    ]
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = MsgSpecWriter

    def __init__(
        self, *, clock: Clock | None = None, validate_config: bool = True, **kwargs: Any
    ) -> None:
        """Build the tap; ``clock`` replaces the real clock of the query budget and backoff."""
        self.clock = clock
        self._validated = validate_config
        self._cohorts: list[dict[str, Any]] | None = None
        super().__init__(validate_config=validate_config, **kwargs)
        if validate_config:
            _ = self.settings  # every setting checked before any request

    @cached_property
    def settings(self) -> Settings:
        """The run's settings, built once from the config the SDK validated."""
        return Settings.from_config(ConfigView(self.config, self.config_jsonschema), self.logger)

    @cached_property
    def client(self) -> MixpanelQueryClient:
        """The query client shared by both streams (one budget per run)."""
        return MixpanelQueryClient(self.settings, self.logger, clock=self.clock)

    @cached_property
    def spool_source(self) -> SpoolSource:
        """Source 'webhook': the spool of cohort-sync pages."""
        return SpoolSource(self.settings, self.logger)

    @cached_property
    def webhook_plan(self) -> dict[str, CohortWork]:
        """Source 'webhook': each cohort's sessions for this run, from one spool listing.

        A cohort's watermark is the later of the two streams' (each stores what it emitted).
        """
        watermarks: dict[str, str] = {}
        selected = {}
        for name in (MEMBERS_STREAM, CHANGES_STREAM):
            stream = self.streams[name]
            selected[name] = stream.selected
            for cohort_id, key in (stream.stream_state.get(WATERMARKS) or {}).items():
                watermarks[cohort_id] = max(key, watermarks.get(cohort_id, key))
        return self.spool_source.plan(
            watermarks,
            members_selected=selected[MEMBERS_STREAM],
            changes_selected=selected[CHANGES_STREAM],
        )

    def selected_cohorts(self) -> list[dict[str, Any]]:
        """The cohorts both streams cover, from one ``cohorts/list`` query per run.

        Without ``cohort_ids``: every visible cohort. With it: exactly those cohorts (visible or
        not); an id Mixpanel does not know is an error, so a typo never yields an empty sync.
        """
        if self._cohorts is not None:
            return self._cohorts
        listing = self.client.list_cohorts()
        wanted = self.settings.cohort_ids
        if wanted:
            by_id = {int(c["id"]): c for c in listing if c.get("id") is not None}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                raise ConfigurationError(
                    f"Setting 'cohort_ids': cohort(s) {', '.join(map(str, missing))} not found "
                    f"in the Mixpanel project ({len(by_id)} cohorts listed)."
                )
            cohorts = [by_id[i] for i in wanted]
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

    @override
    def discover_streams(self) -> list[Stream]:
        """Source 'query': cohorts and cohort_members; 'webhook' adds cohort_member_changes."""
        if self._validated:
            output_properties = self.settings.output_properties
            source = self.settings.source
        else:
            # Discovery without a valid config (the SDK's --discover): the schema needs only this.
            view = ConfigView(self.config, self.config_jsonschema)
            output_properties = view.texts("output_properties") or ()
            source = view.text("source")
        if source == "webhook":
            return [
                SpoolCohortsStream(self),
                SpoolMembersStream(self, member_schema(output_properties)),
                CohortChangesStream(self),
            ]
        return [CohortsStream(self), CohortMembersStream(self, output_properties)]

    @override
    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Run the CLI; a PluginError or invalid setting ends in one error line and exit code 1."""
        with exit_on_error(cls.logger):
            super().invoke(*args, **kwargs)


def _visible(cohort: dict[str, Any]) -> bool:
    return str(cohort.get("is_visible", 1)).strip().lower() not in ("0", "false", "")
