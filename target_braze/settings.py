"""target-braze settings: the JSON schema shown by ``--about`` and the validated, typed form.

Defaults, limits and enums live only in :data:`CONFIG_SCHEMA` (the SDK checks them before the
target runs); the rules that involve more than one setting, or that a schema cannot state, live
only in :meth:`Settings.from_config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from braze_mixpanel_common.batch_target import batch_settings
from braze_mixpanel_common.cohorts import COHORT_ID, COHORT_NAME, COHORTS_STREAM, EXTERNAL_ID
from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.http import (
    RetryBounds,
    request_timeout_setting,
    retry_bound_settings,
)
from braze_mixpanel_common.settings import ConfigView

MAX_OBJECTS_PER_REQUEST = 75
MAX_IDS_PER_PARTNER_REQUEST = 1000
BRAZE_RATE_LIMIT = 3000
BRAZE_RATE_WINDOW = 3.0

REST_ENDPOINTS = (
    "https://rest.iad-01.braze.com",
    "https://rest.iad-02.braze.com",
    "https://rest.iad-03.braze.com",
    "https://rest.iad-04.braze.com",
    "https://rest.iad-05.braze.com",
    "https://rest.iad-06.braze.com",
    "https://rest.iad-07.braze.com",
    "https://rest.iad-08.braze.com",
    "https://rest.us-10.braze.com",
    "https://rest.fra-01.braze.eu",
    "https://rest.fra-02.braze.eu",
    "https://rest.au-01.braze.com",
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "rest_endpoint",
        th.StringType(nullable=False),
        required=True,
        title="REST endpoint",
        description="REST endpoint of your Braze instance, e.g. https://rest.iad-01.braze.com "
        "(Settings > APIs and Identifiers shows it).",
        examples=list(REST_ENDPOINTS[:1]),
    ),
    th.Property(
        "api_key",
        th.StringType(),
        secret=True,
        title="REST API key",
        description="Braze REST API key with the users.track permission (mode 'attributes', "
        "and for streams upserted as plain attributes).",
    ),
    th.Property(
        "mode",
        th.StringType(),
        default="attributes",
        allowed_values=["attributes", "partner_cohorts"],
        description="'attributes': cohort names in an array custom attribute via /users/track; "
        "'partner_cohorts': Braze's partner cohort-import API (needs partner credentials).",
    ),
    th.Property(
        "cohort_attribute",
        th.StringType(),
        default="mixpanel_cohorts",
        description="Array custom attribute that holds the names of the user's cohorts.",
    ),
    th.Property(
        "update_existing_only",
        th.BooleanType(),
        default=True,
        description="Send _update_existing_only so Braze never creates users (like the partner "
        "integration).",
    ),
    th.Property(
        "ledger_path",
        th.StringType(),
        description="Where the membership Braze last confirmed is kept (a SQLite file): a local "
        "path, or an fsspec URL (s3://bucket/key, gs://, az:// or abfs://, file://) for "
        "deployments without a persistent disk. Default: .meltano/target-braze/ledger.sqlite3 "
        "when run in a Meltano project, else $XDG_STATE_HOME/target-braze/ledger.sqlite3 "
        "(~/.local/state/...). Must persist between runs.",
    ),
    th.Property(
        "ledger_options",
        th.ObjectType(),
        secret=True,
        description="Options for the ledger's fsspec filesystem: credentials, endpoint_url, "
        "connection_string, ... (see s3fs, gcsfs, adlfs), like the Currents tap's "
        "storage_options.",
    ),
    th.Property(
        "ledger_lock_wait_s",
        th.NumberType(minimum=0),
        default=0,
        description="Seconds to wait for another run's lease on the ledger; 0 refuses at once "
        "(exit 1 naming the run that holds it).",
    ),
    th.Property(
        "ledger_lease_s",
        th.NumberType(minimum=1),
        default=300,
        description="Lifetime of the lease a run holds on the ledger; the run renews it every "
        "third of this, so only a crashed run's lease expires, and another run may then take "
        "it over. A run whose last successful renewal is older than three quarters of this "
        "stops before it sends or publishes anything more.",
    ),
    th.Property(
        "rebuild_ledger",
        th.BooleanType(),
        default=False,
        description="When the ledger this pipeline's state recorded is missing or older than "
        "recorded, sync additions anyway and start a new ledger (removals of users who left "
        "meanwhile cannot be known). Default false: stop before sending anything.",
    ),
    th.Property(
        "max_removal_fraction",
        th.NumberType(minimum=0, maximum=1),
        default=0.5,
        description="Removal guard: withhold a cohort's removals when a complete snapshot would "
        "remove more than this fraction of its synced members. 1 disables the guard.",
    ),
    th.Property(
        "removal_guard_min_members",
        th.IntegerType(minimum=0),
        default=20,
        description="The removal guard applies to cohorts with at least this many synced members.",
    ),
    th.Property(
        "max_array_length",
        th.IntegerType(minimum=1, maximum=100),
        default=25,
        description="Braze's array attribute cap (25 by default, up to 100 if raised in Braze); "
        "the target warns once when users would hold more cohort names.",
    ),
    th.Property(
        "partner_name",
        th.StringType(),
        description="Partner path segment of the cohort-import API (mode 'partner_cohorts').",
    ),
    th.Property(
        "partner_api_key",
        th.StringType(),
        secret=True,
        description="Partner API key Braze issued to the integration partner (mode "
        "'partner_cohorts').",
    ),
    th.Property(
        "data_import_key",
        th.StringType(),
        secret=True,
        description="The workspace's Data Import Key for the partner, sent as client_secret "
        "(mode 'partner_cohorts').",
    ),
    th.Property(
        "dry_run",
        th.BooleanType(),
        default=False,
        description="Write the exact request bodies (secrets redacted) instead of sending them; "
        "the ledger is left untouched.",
    ),
    th.Property(
        "dry_run_path",
        th.StringType(),
        description="File for dry-run request bodies (JSON lines); default: standard error.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType(),
        description="JSONL file for objects Braze rejected. Default: dead-letters.jsonl next to "
        "the ledger.",
    ),
    th.Property(
        "max_requests_per_window",
        th.IntegerType(minimum=1),
        default=BRAZE_RATE_LIMIT,
        description="Request budget per 'rate_window_seconds' (Braze allows 3000 per 3 s; "
        "set lower to leave room for other API clients).",
    ),
    th.Property(
        "rate_window_seconds",
        th.NumberType(exclusive_minimum=0),
        default=BRAZE_RATE_WINDOW,
        description="Length of the rate-limit window in seconds.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1),
        default=8,
        description="Concurrent /users/track requests.",
    ),
    th.Property(
        "objects_per_request",
        th.IntegerType(minimum=1, maximum=MAX_OBJECTS_PER_REQUEST),
        default=MAX_OBJECTS_PER_REQUEST,
        description="Attribute objects per /users/track request (at most 75; lower it to 50 on "
        "MAU-based contracts that batch up to 50 updates).",
    ),
    th.Property(
        "membership_streams",
        th.ArrayType(th.StringType()),
        description="Streams holding cohort membership. Default: every stream whose schema has "
        "the cohort id, cohort name and user id fields.",
    ),
    th.Property(
        "cohort_id_field",
        th.StringType(),
        default=COHORT_ID,
        description="Membership field with the cohort id.",
    ),
    th.Property(
        "cohort_name_field",
        th.StringType(),
        default=COHORT_NAME,
        description="Membership field with the cohort name.",
    ),
    th.Property(
        "user_id_field",
        th.StringType(),
        default=EXTERNAL_ID,
        description="Field with the Braze external_id (membership and attribute streams).",
    ),
    th.Property(
        "cohorts_stream",
        th.StringType(),
        default=COHORTS_STREAM,
        description="Stream listing the cohorts that exist upstream (fields id, name, created); "
        "a synced cohort missing from it and from the snapshot has vanished and loses its "
        "members without the removal guard.",
    ),
    request_timeout_setting(60),
    *retry_bound_settings(
        "8 attempts, waits of 1 s doubling to 60 s plus up to 1 s jitter, or until "
        "X-RateLimit-Reset after a 429"
    ),
    *batch_settings(),
).to_dict()


def default_ledger_path(cwd: Path | None = None) -> Path:
    """Where the ledger lives when ``ledger_path`` is not set."""
    cwd = cwd or Path.cwd()
    if (cwd / ".meltano").is_dir():
        return cwd / ".meltano" / "target-braze" / "ledger.sqlite3"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "target-braze" / "ledger.sqlite3"


def ledger_location(value: str | None) -> str:
    """``ledger_path`` as used: a local path (``~`` expanded, ``file://`` removed) or a URL.

    Unset means :func:`default_ledger_path`.
    """
    if value is None:
        return str(default_ledger_path())
    scheme = urlsplit(value).scheme if "://" in value else ""
    if scheme == "file":
        return str(Path(value[len("file://") :]).expanduser())
    if scheme:
        return value
    return str(Path(value).expanduser())


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_MODE_CREDENTIALS = {
    "attributes": (("api_key", "in mode 'attributes' (a REST API key with users.track)"),),
    "partner_cohorts": tuple(
        (name, "in mode 'partner_cohorts'")
        for name in ("partner_name", "partner_api_key", "data_import_key")
    ),
}


@dataclass(frozen=True)
class Settings:
    """target-braze's validated settings (``repr`` never shows secrets).

    Build it with :meth:`from_config`; the fields carry the settings of the same names.
    """

    rest_endpoint: str
    mode: str
    api_key: str | None = field(repr=False)
    partner_name: str | None
    partner_api_key: str | None = field(repr=False)
    data_import_key: str | None = field(repr=False)
    cohort_attribute: str
    update_existing_only: bool
    ledger_path: str
    """A local path, or the fsspec URL of a ledger in object storage (:func:`ledger_location`)."""
    ledger_options: Mapping[str, Any] | None = field(repr=False)
    ledger_lock_wait_s: float
    ledger_lease_s: float
    rebuild_ledger: bool
    dead_letter_path: Path
    max_removal_fraction: float
    removal_guard_min_members: int
    max_array_length: int
    dry_run: bool
    dry_run_path: str | None
    max_requests_per_window: int
    rate_window_seconds: float
    max_concurrency: int
    objects_per_request: int
    membership_streams: tuple[str, ...] | None
    cohort_id_field: str
    cohort_name_field: str
    user_id_field: str
    cohorts_stream: str
    request_timeout: float
    retry_bounds: RetryBounds
    secrets: tuple[str, ...] = field(repr=False)
    """Every configured secret value, for redaction."""

    @classmethod
    def from_config(cls, view: ConfigView) -> Settings:
        """Read the SDK-validated config and apply the rules that span settings.

        Raises:
            ConfigurationError: naming the setting to fix (an endpoint that is not https, a
                credential the mode needs, a request rate above Braze's limit, ...).
        """
        rest_endpoint = _rest_endpoint(view)
        mode = view.text("mode")
        for name, why in _MODE_CREDENTIALS[mode]:
            if view.optional_text(name) is None:
                raise ConfigurationError(f"Setting '{name}' is required {why}.")
        max_requests = view.integer("max_requests_per_window")
        window = view.number("rate_window_seconds")
        if max_requests / window > BRAZE_RATE_LIMIT / BRAZE_RATE_WINDOW:
            raise ConfigurationError(
                "Settings 'max_requests_per_window' / 'rate_window_seconds' must allow at most "
                "3000 requests per 3 seconds (Braze's /users/track limit)."
            )
        attribute = view.text("cohort_attribute")
        if attribute.startswith("$"):
            raise ConfigurationError("Setting 'cohort_attribute' must not start with '$'.")
        ledger_path = ledger_location(view.optional_text("ledger_path"))
        local_ledger = None if "://" in ledger_path else Path(ledger_path)
        return cls(
            rest_endpoint=rest_endpoint,
            mode=mode,
            api_key=view.optional_text("api_key"),
            partner_name=view.optional_text("partner_name"),
            partner_api_key=view.optional_text("partner_api_key"),
            data_import_key=view.optional_text("data_import_key"),
            cohort_attribute=attribute,
            update_existing_only=view.flag("update_existing_only"),
            ledger_path=ledger_path,
            ledger_options=view.get("ledger_options"),
            ledger_lock_wait_s=view.number("ledger_lock_wait_s"),
            ledger_lease_s=view.number("ledger_lease_s"),
            rebuild_ledger=view.flag("rebuild_ledger"),
            dead_letter_path=(
                _path(view, "dead_letter_path")
                or (local_ledger or default_ledger_path()).parent / "dead-letters.jsonl"
            ),
            max_removal_fraction=view.number("max_removal_fraction"),
            removal_guard_min_members=view.integer("removal_guard_min_members"),
            max_array_length=view.integer("max_array_length"),
            dry_run=view.flag("dry_run"),
            dry_run_path=view.optional_text("dry_run_path"),
            max_requests_per_window=max_requests,
            rate_window_seconds=window,
            max_concurrency=view.integer("max_concurrency"),
            objects_per_request=view.integer("objects_per_request"),
            membership_streams=view.texts("membership_streams"),
            cohort_id_field=view.text("cohort_id_field"),
            cohort_name_field=view.text("cohort_name_field"),
            user_id_field=view.text("user_id_field"),
            cohorts_stream=view.text("cohorts_stream"),
            request_timeout=view.number("request_timeout"),
            retry_bounds=RetryBounds.from_settings(view),
            secrets=view.secrets(),
        )

    def namespace_prefix(self) -> str:
        """Identifies the destination whose state the ledger rows describe."""
        if self.mode == "partner_cohorts":
            return f"partner|{self.rest_endpoint}|{self.partner_name}"
        return f"attributes|{self.rest_endpoint}|{self.cohort_attribute}"


def _rest_endpoint(view: ConfigView) -> str:
    """``rest_endpoint`` without a trailing slash: https, or http only for a local emulator."""
    endpoint = view.optional_text("rest_endpoint")
    if endpoint is None:
        raise ConfigurationError(
            "Setting 'rest_endpoint' is required (your Braze REST endpoint, e.g. "
            f"{REST_ENDPOINTS[0]})."
        )
    endpoint = endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(
            f"Setting 'rest_endpoint' must be an https URL such as {REST_ENDPOINTS[0]}; "
            f"got {endpoint!r}."
        )
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        raise ConfigurationError(
            "Setting 'rest_endpoint' must use https (plain http is only accepted for a local "
            "emulator on localhost)."
        )
    return endpoint


def _path(view: ConfigView, name: str) -> Path | None:
    value = view.optional_text(name)
    return Path(value).expanduser() if value else None
