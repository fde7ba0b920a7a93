"""The one way a plugin run ends on a fatal error: one log line, exit code 1, no traceback."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from singer_sdk.exceptions import ConfigValidationError

from braze_mixpanel_common.errors import PluginError


@contextmanager
def exit_on_error(logger: logging.Logger) -> Iterator[None]:
    """Turn a :class:`PluginError` or a schema violation into error lines and ``SystemExit(1)``.

    Each plugin's ``invoke`` wraps the SDK's in this, so configuration errors (from the JSON
    schema or from the plugin's cross-setting rules), source errors and destination errors all
    end the same way, whether they happen in ``__init__``, discovery or the sync.
    """
    try:
        yield
    except ConfigValidationError as exc:
        for error in exc.errors or [str(exc)]:
            logger.error("%s", _schema_error(error))
        raise SystemExit(1) from None
    except PluginError as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None


_AT_PATH = re.compile(r"^(?P<problem>.*) in config(?P<path>(\[[^\]]+\])+)$", re.S)


def _schema_error(error: str) -> str:
    """The SDK's "<problem> in config['name']" as "Setting 'name': <problem>."."""
    match = _AT_PATH.match(error)
    if match is None:
        return f"Invalid settings: {error}."
    path = ".".join(part.strip("'\"") for part in re.findall(r"\[([^\]]+)\]", match["path"]))
    return f"Setting '{path}': {match['problem']}."
