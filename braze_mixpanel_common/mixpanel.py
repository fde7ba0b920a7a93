"""Mixpanel regions, hosts and authentication, shared by target-mixpanel and tap-mixpanel-cohorts.

Mixpanel authenticates every API with HTTP Basic auth:
- a service account: ``username:secret`` plus the ``project_id`` query parameter (preferred);
- the legacy project API secret: ``api_secret:`` (retired by Mixpanel on 2027-03-03);
- the project token: ``token:`` (ingestion only; no ``project_id`` needed).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Literal

from singer_sdk import typing as th

from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.secrets import redact
from braze_mixpanel_common.settings import SettingSource

INGESTION_HOSTS = {
    "us": "https://api.mixpanel.com",
    "eu": "https://api-eu.mixpanel.com",
    "in": "https://api-in.mixpanel.com",
}
QUERY_HOSTS = {
    "us": "https://mixpanel.com",
    "eu": "https://eu.mixpanel.com",
    "in": "https://in.mixpanel.com",
}
API_SECRET_RETIREMENT = "2027-03-03"

AuthKind = Literal["service_account", "api_secret", "project_token"]


@dataclass(frozen=True)
class MixpanelAuth:
    """Resolved Mixpanel credentials: the Basic auth header and the query parameters they need.

    ``repr`` never shows the secret, so the object is safe to log.
    """

    kind: AuthKind
    _header: str
    project_id: str | None = None
    workspace_id: str | None = None
    _secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"MixpanelAuth(kind={self.kind!r}, project_id={self.project_id!r})"

    def redact(self, text: str) -> str:
        """``text`` with the credential removed, raw or as its Basic-auth (base64) token.

        Mixpanel, a proxy or a load balancer may echo the request (``Authorization`` header
        included) in an error body; every such text goes through here before it is logged,
        raised or written to a dead-letter file.
        """
        return redact(text, [self._header.removeprefix("Basic "), *self._secrets])

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for this credential."""
        return {"Authorization": self._header}

    @property
    def params(self) -> dict[str, str]:
        """Query parameters the credential requires (``project_id``, ``workspace_id``)."""
        params: dict[str, str] = {}
        if self.project_id and self.kind != "project_token":
            params["project_id"] = self.project_id
        if self.workspace_id:
            params["workspace_id"] = self.workspace_id
        return params


def _basic(username: str, password: str = "") -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def resolve_auth(
    config: SettingSource,
    *,
    allow_project_token: bool,
    logger: logging.Logger | None = None,
) -> MixpanelAuth:
    """Pick the Mixpanel credential from plugin settings, or fail with a message naming the setting.

    Preference: service account, then project token (ingestion only), then legacy API secret.
    """
    username = config.get("service_account_username")
    secret = config.get("service_account_secret")
    project_id = config.get("project_id")
    workspace_id = config.get("workspace_id")
    project_id = str(project_id) if project_id not in (None, "") else None
    workspace_id = str(workspace_id) if workspace_id not in (None, "") else None

    # Every configured secret is redacted from messages, also the ones this credential does not use.
    configured = tuple(
        str(value)
        for key in ("service_account_secret", "api_secret", "project_token")
        if (value := config.get(key))
    )

    if bool(username) != bool(secret):
        missing = "service_account_secret" if username else "service_account_username"
        raise ConfigurationError(
            f"Setting '{missing}' is missing: a Mixpanel service account needs both "
            "'service_account_username' and 'service_account_secret'."
        )
    if username and secret:
        if not project_id:
            raise ConfigurationError(
                "Setting 'project_id' is required with a Mixpanel service account "
                "(Project Settings > Overview > Project ID)."
            )
        return MixpanelAuth(
            "service_account", _basic(username, secret), project_id, workspace_id, configured
        )

    token = config.get("project_token") if allow_project_token else None
    if token:
        return MixpanelAuth("project_token", _basic(token), project_id, workspace_id, configured)

    api_secret = config.get("api_secret")
    if api_secret:
        (logger or logging.getLogger(__name__)).warning(
            "Setting 'api_secret' uses Mixpanel's legacy project secret, which Mixpanel retires on "
            "%s. Create a service account and set 'service_account_username', "
            "'service_account_secret' and 'project_id' instead.",
            API_SECRET_RETIREMENT,
        )
        return MixpanelAuth("api_secret", _basic(api_secret), project_id, workspace_id, configured)

    accepted = "'service_account_username' + 'service_account_secret' + 'project_id'"
    if allow_project_token:
        accepted += ", 'project_token'"
    raise ConfigurationError(
        f"No Mixpanel credentials configured: set {accepted} or the legacy 'api_secret'."
    )


def resolve_base_url(config: SettingSource, hosts: dict[str, str]) -> str:
    """Return ``api_url`` when set, else the documented host of ``region`` (default ``us``)."""
    api_url = config.get("api_url")
    if api_url:
        if not str(api_url).startswith(("https://", "http://")):
            raise ConfigurationError(f"Setting 'api_url' must be an http(s) URL, got {api_url!r}.")
        return str(api_url).rstrip("/")
    region = (config.get("region") or "us").lower()
    if region not in hosts:
        raise ConfigurationError(
            f"Setting 'region' must be one of {', '.join(sorted(hosts))}; got {region!r}."
        )
    return hosts[region]


def credential_settings() -> list[th.Property]:
    """The Mixpanel credential settings both Mixpanel plugins take (see :func:`resolve_auth`)."""
    return [
        th.Property(
            "project_id",
            th.CustomType({"type": ["string", "integer"]}),
            description="Mixpanel project id (Project Settings > Overview); required with a "
            "service account.",
        ),
        th.Property(
            "service_account_username",
            th.StringType,
            description="Service account username (preferred authentication; for /import the "
            "service account needs the Owner or Admin role).",
        ),
        th.Property(
            "service_account_secret",
            th.StringType,
            secret=True,
            description="Service account secret.",
        ),
        th.Property(
            "api_secret",
            th.StringType,
            secret=True,
            description=f"Legacy project API secret (deprecated: Mixpanel retires it on "
            f"{API_SECRET_RETIREMENT}). Used only when no service account is set.",
        ),
    ]


def region_setting(hosts: dict[str, str]) -> th.Property:
    """The ``region`` setting, describing the hosts of one Mixpanel API."""
    choices = ", ".join(f"{region} ({url})" for region, url in hosts.items())
    return th.Property(
        "region",
        th.StringType,
        default="us",
        allowed_values=list(hosts),
        description=f"Data residency of the project: {choices}.",
    )
