"""What a long run shows while it works, and its end-of-run summary as one JSON line.

:class:`Progress` logs an INFO line at most every :data:`INTERVAL_S` seconds. Plugins call
:meth:`Progress.update` once per unit of work (a file, a batch, a page, a request), never per
record: it reads the clock once and builds its line only when one is due, so it costs nothing
measurable in a hot path.

:func:`log_summary_json` writes the end-of-run summary as one log line whose message is a JSON
object (``{"event": "run_summary", "plugin": ..., ...}``) that a log system can parse;
:func:`summaries` reads such lines back from a log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from braze_mixpanel_common.clock import Clock, SystemClock

INTERVAL_S = 5.0
"""Seconds between two progress lines of one plugin."""
SUMMARY_EVENT = "run_summary"
_SUMMARY_START = '{"event": "run_summary"'


class Progress:
    """A throttled progress line on an injected clock.

    Args:
        logger: Where the lines go (INFO).
        plugin: The plugin's name, the start of every line: ``<plugin> progress: ...``.
        clock: Time source (a fake clock in tests).
        interval_s: Seconds between two lines; the first comes ``interval_s`` after the start.
    """

    def __init__(
        self,
        logger: logging.Logger,
        plugin: str,
        *,
        clock: Clock | None = None,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.logger = logger
        self.plugin = plugin
        self.clock = clock or SystemClock()
        self.interval_s = interval_s
        self.started = self.clock.monotonic()
        self._next = self.started + interval_s
        self._last_at = self.started
        self._last_count = 0.0

    def update(self, count: float, describe: Callable[[float], str]) -> bool:
        """Log ``describe(rate)`` if a line is due; return whether one was logged.

        Args:
            count: Running total of the unit the rate is about (events, members, ...).
            describe: Builds the line's text from the rate of ``count`` per second since the
                previous line; called only when a line is due.
        """
        now = self.clock.monotonic()
        if now < self._next:
            return False
        rate = (count - self._last_count) / max(now - self._last_at, 1e-9)
        self._next = now + self.interval_s
        self._last_at, self._last_count = now, count
        self.logger.info("%s progress: %s", self.plugin, describe(rate))
        return True

    def elapsed(self) -> float:
        """Seconds since this reporter was made (the run's start)."""
        return self.clock.monotonic() - self.started


def log_summary_json(
    logger: logging.Logger, plugin: str, figures: Mapping[str, Any]
) -> dict[str, Any]:
    """Log the end-of-run summary as one JSON object; return what was logged.

    Args:
        logger: Where the line goes (INFO).
        plugin: The plugin's name (the ``plugin`` field).
        figures: The summary's fields: numbers, strings, booleans, lists or dicts of them.
    """
    line = {"event": SUMMARY_EVENT, "plugin": plugin, **figures}
    logger.info("%s", json.dumps(line, default=str, ensure_ascii=False))
    return line


def summaries(log: str, plugin: str | None = None) -> list[dict[str, Any]]:
    """The JSON summaries in a log, whatever the log format puts around each one."""
    decoder = json.JSONDecoder()
    found = []
    start = log.find(_SUMMARY_START)
    while start >= 0:
        summary, end = decoder.raw_decode(log, start)
        if plugin is None or summary.get("plugin") == plugin:
            found.append(summary)
        start = log.find(_SUMMARY_START, end)
    return found
