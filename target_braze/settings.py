"""target-braze settings: the JSON schema shown by ``--about`` and their validated form."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from braze_mixpanel_common.errors import ConfigurationError

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
        description="SQLite file holding the membership Braze last confirmed. Default: "
        ".meltano/target-braze/ledger.sqlite3 when run in a Meltano project, else "
        "$XDG_STATE_HOME/target-braze/ledger.sqlite3 (~/.local/state/...). Must persist "
        "between runs.",
    ),
    th.Property(
        "max_removal_fraction",
        th.NumberType(),
        default=0.5,
        description="Removal guard: withhold a cohort's removals when a complete snapshot would "
        "remove more than this fraction of its synced members. 1 disables the guard.",
    ),
    th.Property(
        "removal_guard_min_members",
        th.IntegerType(),
        default=20,
        description="The removal guard applies to cohorts with at least this many synced members.",
    ),
    th.Property(
        "max_array_length",
        th.IntegerType(),
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
        th.IntegerType(),
        default=BRAZE_RATE_LIMIT,
        description="Request budget per 'rate_window_seconds' (Braze allows 3000 per 3 s; "
        "set lower to leave room for other API clients).",
    ),
    th.Property(
        "rate_window_seconds",
        th.NumberType(),
        default=BRAZE_RATE_WINDOW,
        description="Length of the rate-limit window in seconds.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(),
        default=8,
        description="Concurrent /users/track requests.",
    ),
    th.Property(
        "objects_per_request",
        th.IntegerType(),
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
        default="cohort_id",
        description="Membership field with the cohort id.",
    ),
    th.Property(
        "cohort_name_field",
        th.StringType(),
        default="cohort_name",
        description="Membership field with the cohort name.",
    ),
    th.Property(
        "user_id_field",
        th.StringType(),
        default="external_id",
        description="Field with the Braze external_id (membership and attribute streams).",
    ),
    th.Property(
        "cohorts_stream",
        th.StringType(),
        default="cohorts",
        description="Stream listing the cohorts that exist upstream (fields id, name, created); "
        "a synced cohort missing from it and from the snapshot has vanished and loses its "
        "members without the removal guard.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(),
        default=60,
        description="Seconds per HTTP request.",
    ),
).to_dict()


def default_ledger_path(cwd: Path | None = None) -> Path:
    """Where the ledger lives when ``ledger_path`` is not set."""
    cwd = cwd or Path.cwd()
    if (cwd / ".meltano").is_dir():
        return cwd / ".meltano" / "target-braze" / "ledger.sqlite3"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "target-braze" / "ledger.sqlite3"


@dataclass(frozen=True)
class Settings:
    """Validated settings (``repr`` never shows secrets)."""

    rest_endpoint: str
    mode: str
    api_key: str | None
    partner_name: str | None
    partner_api_key: str | None
    data_import_key: str | None
    cohort_attribute: str
    update_existing_only: bool
    ledger_path: Path
    dead_letter_path: Path
    max_removal_fraction: float
    removal_guard_min_members: int
    max_array_length: int
    dry_run: bool
    dry_run_path: str | None
    max_requests: int
    rate_window: float
    max_concurrency: int
    objects_per_request: int
    membership_streams: tuple[str, ...] | None
    cohort_id_field: str
    cohort_name_field: str
    user_id_field: str
    cohorts_stream: str
    request_timeout: float

    def __repr__(self) -> str:
        return f"Settings(rest_endpoint={self.rest_endpoint!r}, mode={self.mode!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for redaction."""
        return tuple(s for s in (self.api_key, self.partner_api_key, self.data_import_key) if s)

    def namespace_prefix(self) -> str:
        """Identifies the destination whose state the ledger rows describe."""
        if self.mode == "partner_cohorts":
            return f"partner|{self.rest_endpoint}|{self.partner_name}"
        return f"attributes|{self.rest_endpoint}|{self.cohort_attribute}"


def _require(config: dict[str, Any], name: str, why: str) -> str:
    value = config.get(name)
    if value in (None, ""):
        raise ConfigurationError(f"Setting '{name}' is required {why}.")
    return str(value)


def parse_settings(config: dict[str, Any]) -> Settings:
    """Validate ``config``; raise :class:`ConfigurationError` naming the faulty setting."""
    endpoint = (
        _require(
            config,
            "rest_endpoint",
            "(your Braze REST endpoint, e.g. https://rest.iad-01.braze.com)",
        )
        .strip()
        .rstrip("/")
    )
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(
            f"Setting 'rest_endpoint' must be an https URL such as {REST_ENDPOINTS[0]}; "
            f"got {endpoint!r}."
        )
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ConfigurationError(
            "Setting 'rest_endpoint' must use https (plain http is only accepted for a local "
            "emulator on localhost)."
        )
    mode = config.get("mode") or "attributes"
    if mode not in ("attributes", "partner_cohorts"):
        raise ConfigurationError(
            f"Setting 'mode' must be 'attributes' or 'partner_cohorts'; got {mode!r}."
        )
    if mode == "attributes":
        _require(config, "api_key", "in mode 'attributes' (a REST API key with users.track)")
    else:
        for name in ("partner_name", "partner_api_key", "data_import_key"):
            _require(config, name, "in mode 'partner_cohorts'")
    fraction = float(config.get("max_removal_fraction", 0.5))
    if not 0 <= fraction <= 1:
        raise ConfigurationError("Setting 'max_removal_fraction' must be between 0 and 1.")
    per_request = int(config.get("objects_per_request") or MAX_OBJECTS_PER_REQUEST)
    if not 1 <= per_request <= MAX_OBJECTS_PER_REQUEST:
        raise ConfigurationError("Setting 'objects_per_request' must be between 1 and 75.")
    max_requests = int(config.get("max_requests_per_window") or BRAZE_RATE_LIMIT)
    window = float(config.get("rate_window_seconds") or BRAZE_RATE_WINDOW)
    if max_requests < 1 or window <= 0 or max_requests / window > BRAZE_RATE_LIMIT / 3.0:
        raise ConfigurationError(
            "Settings 'max_requests_per_window' / 'rate_window_seconds' must allow at most "
            "3000 requests per 3 seconds (Braze's /users/track limit)."
        )
    array_len = int(config.get("max_array_length") or 25)
    if not 1 <= array_len <= 100:
        raise ConfigurationError("Setting 'max_array_length' must be between 1 and 100.")
    concurrency = int(config.get("max_concurrency") or 8)
    if concurrency < 1:
        raise ConfigurationError("Setting 'max_concurrency' must be at least 1.")
    attribute = str(config.get("cohort_attribute") or "mixpanel_cohorts")
    if attribute.startswith("$"):
        raise ConfigurationError("Setting 'cohort_attribute' must not start with '$'.")
    ledger = (
        Path(config["ledger_path"]).expanduser()
        if config.get("ledger_path")
        else (default_ledger_path())
    )
    dead = (
        Path(config["dead_letter_path"]).expanduser()
        if config.get("dead_letter_path")
        else (ledger.parent / "dead-letters.jsonl")
    )
    streams = config.get("membership_streams")
    return Settings(
        rest_endpoint=endpoint,
        mode=mode,
        api_key=config.get("api_key") or None,
        partner_name=config.get("partner_name") or None,
        partner_api_key=config.get("partner_api_key") or None,
        data_import_key=config.get("data_import_key") or None,
        cohort_attribute=attribute,
        update_existing_only=bool(config.get("update_existing_only", True)),
        ledger_path=ledger,
        dead_letter_path=dead,
        max_removal_fraction=fraction,
        removal_guard_min_members=int(config.get("removal_guard_min_members", 20)),
        max_array_length=array_len,
        dry_run=bool(config.get("dry_run", False)),
        dry_run_path=config.get("dry_run_path") or None,
        max_requests=max_requests,
        rate_window=window,
        max_concurrency=concurrency,
        objects_per_request=per_request,
        membership_streams=tuple(streams) if streams else None,
        cohort_id_field=str(config.get("cohort_id_field") or "cohort_id"),
        cohort_name_field=str(config.get("cohort_name_field") or "cohort_name"),
        user_id_field=str(config.get("user_id_field") or "external_id"),
        cohorts_stream=str(config.get("cohorts_stream") or "cohorts"),
        request_timeout=float(config.get("request_timeout") or 60),
    )
