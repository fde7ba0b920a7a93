"""The errors a plugin ends a run with: one line naming what to fix, exit code 1, no traceback.

Every plugin's ``invoke`` runs inside :func:`braze_mixpanel_common.cli.exit_on_error`, which turns
a :class:`PluginError` (and the SDK's own ``ConfigValidationError``) into that one line.
"""

from __future__ import annotations


class PluginError(Exception):
    """A failure the user can act on; the message says what happened and what to check."""


class ConfigurationError(PluginError, ValueError):
    """A setting is missing or malformed; the message names the setting."""


class DestinationError(PluginError, RuntimeError):
    """The destination refused the data for good (auth, permission, retries exhausted)."""


class SourceError(PluginError, RuntimeError):
    """The source cannot be read (an unrecoverable answer, retries exhausted, a corrupt file)."""
