"""The settings pattern every plugin follows.

1. Defaults, limits (``minimum``/``maximum``) and enums live only in the plugin's
   ``config_jsonschema``, so ``--about``, meltano.yml and the docs show them and the SDK checks
   them before the plugin runs.
2. Each plugin builds one frozen, typed settings object from the config the SDK validated,
   through a :class:`ConfigView` (which also answers the schema's default for a setting set to
   null), and applies its cross-setting rules in that one place, raising
   :class:`~braze_mixpanel_common.errors.ConfigurationError` with a message naming the setting.
3. A fatal error ends through :func:`braze_mixpanel_common.cli.exit_on_error`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import jsonschema  # type: ignore[import-untyped]  # singer-sdk's own dependency, no stubs

from braze_mixpanel_common.errors import ConfigurationError


class SettingSource(Protocol):
    """Anything settings can be read from by name: a :class:`ConfigView` or a plain dict."""

    def get(self, name: str, /) -> Any:
        """The value of setting ``name`` (None when unset)."""
        ...


class ConfigView:
    """Typed reads of a validated plugin config; an unset or null setting reads as its default.

    Args:
        config: the plugin's config (the SDK already checked it against ``schema``).
        schema: the plugin's ``config_jsonschema``.
    """

    def __init__(self, config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
        self._config = config
        self._properties: Mapping[str, Any] = schema.get("properties", {})

    def get(self, name: str) -> Any:
        """The value of setting ``name``, or its schema default (None without one)."""
        value = self._config.get(name)
        if value is None:
            return self._properties.get(name, {}).get("default")
        return value

    def text(self, name: str) -> str:
        """A string setting that must not be empty; an empty one reads as its schema default."""
        value = self.optional_text(name)
        if value is None:
            default = self._properties.get(name, {}).get("default")
            if default in (None, ""):
                raise ConfigurationError(f"Setting '{name}' is required.")
            value = str(default)
        return value

    def optional_text(self, name: str) -> str | None:
        """A string setting; empty reads as None."""
        value = self.get(name)
        return None if value is None or str(value).strip() == "" else str(value)

    def integer(self, name: str) -> int:
        """An integer setting (its limits are in the schema)."""
        return int(self.get(name))

    def number(self, name: str) -> float:
        """A number setting (its limits are in the schema)."""
        return float(self.get(name))

    def flag(self, name: str) -> bool:
        """A boolean setting."""
        return bool(self.get(name))

    def texts(self, name: str) -> tuple[str, ...] | None:
        """An array-of-strings setting, duplicates dropped, order kept; None when unset or empty."""
        value = self.get(name)
        return tuple(dict.fromkeys(str(v) for v in value)) if value else None

    def datetime(self, name: str) -> dt.datetime | None:
        """An ISO 8601 date-time setting (UTC when it has no offset); None when unset."""
        value = self.optional_text(name)
        if value is None:
            return None
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"Setting '{name}' must be an ISO 8601 date-time such as 2026-01-01T00:00:00Z; "
                f"got {value!r}."
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

    def secrets(self) -> tuple[str, ...]:
        """Every configured value of a setting marked ``secret`` (strings inside objects too)."""
        found: list[str] = []
        for name, prop in self._properties.items():
            if prop.get("secret") and self._config.get(name) is not None:
                found.extend(_strings(self._config[name]))
        return tuple(dict.fromkeys(s for s in found if s))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def validate_config(
    config: Mapping[str, Any], schema: Mapping[str, Any], source: str | None = None
) -> None:
    """Check ``config`` against ``schema`` as the SDK checks a plugin's, for a command that is none.

    Raises:
        ConfigurationError: naming the setting (and ``source``, the file it came from); a secret
            setting's value is never quoted, only the rule it breaks.
    """
    # Draft 7, as the SDK validates a plugin's config; the schema itself is not re-checked.
    exc = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(dict(schema)).iter_errors(dict(config))
    )
    if exc is None:
        return
    where = ".".join(str(p) for p in exc.absolute_path) or "config"
    top = str(exc.absolute_path[0]) if exc.absolute_path else ""
    secret = schema.get("properties", {}).get(top, {}).get("secret")
    problem = f"It fails '{exc.validator}' (a secret: not shown)." if secret else exc.message
    origin = f" in {source}" if source else ""
    raise ConfigurationError(f"Setting '{where}'{origin} is invalid. {problem}")
