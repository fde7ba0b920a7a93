"""Errors that the plugins turn into a one-line message and a non-zero exit."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A setting is missing or malformed; the message names the setting."""


class DestinationError(RuntimeError):
    """The destination refused the data for good (auth, permission, retries exhausted)."""
