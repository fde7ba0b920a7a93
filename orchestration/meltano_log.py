"""Reading what ``meltano --log-format=json`` prints: who said what, at which level.

Meltano writes one JSON object per line for its own messages and for every line a plugin logs
(``name`` is then the plugin). Lines that are not JSON (Meltano's rich traceback box, a plugin
printing outside its logger) are kept as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from braze_mixpanel_common.progress import summaries

MELTANO = "meltano"
# Plugin lines worth the op's log at info level: progress and the end-of-run summaries (the JSON
# copy of a summary is left to the metadata, see summary_figures).
_SUMMARY = re.compile(r"progress: |summary|^Cohort '|^Stream '")
# Meltano's own info lines that repeat with every state message or stream.
_MELTANO_NOISE = ("Incremental state has been updated", "Using systemdb state backend")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failure)\b:?")


@dataclass(frozen=True)
class LogLine:
    """One line of Meltano's output."""

    level: str
    source: str
    text: str
    timestamp: str = ""
    structured: bool = True

    @property
    def from_plugin(self) -> bool:
        """Whether a plugin (not Meltano itself) logged it."""
        return self.source != MELTANO

    @property
    def is_problem(self) -> bool:
        """A warning or worse."""
        return self.level in {"warning", "error", "critical"}

    @property
    def is_summary(self) -> bool:
        """A line the op's log shows at info level (progress of Meltano, plugin summaries)."""
        if self.from_plugin:
            return bool(_SUMMARY.search(self.text)) and not summaries(self.text)
        return self.structured and not self.text.startswith(_MELTANO_NOISE)

    @property
    def telling(self) -> bool:
        """Worth keeping after the run: a problem, a summary or an exception line.

        The rest (the SDK's METRIC lines above all) is only echoed, so a long run's output does
        not pile up in memory.
        """
        if self.is_problem or self.is_summary:
            return True
        return self.from_plugin and bool(_EXCEPTION.match(self.text) or summaries(self.text))

    def render(self) -> str:
        """The line for a human: time, level, source and text."""
        if not self.structured:
            return self.text
        return f"{self.timestamp[11:19]:8} {self.level:8} {self.source:20} {self.text}".rstrip()


def parse_line(raw: str) -> LogLine:
    """One output line; non-JSON text counts as Meltano's at info level."""
    raw = raw.rstrip("\n")
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "event" not in record:
        return LogLine(level="info", source=MELTANO, text=raw, structured=False)
    return LogLine(
        level=str(record.get("level") or "info").lower(),
        source=str(record.get("name") or MELTANO),
        text=str(record["event"]),
        timestamp=str(record.get("timestamp") or ""),
    )


def error_line(lines: Iterable[LogLine]) -> str:
    """The line that says why a failed run failed, as ``<plugin>: <message>``.

    The last error a plugin logged wins; failing that, the last exception line a plugin wrote
    (a traceback's last line), then Meltano's own last error.
    """
    lines = list(lines)
    candidates = (
        [line for line in lines if line.from_plugin and line.level in {"error", "critical"}],
        [line for line in lines if line.from_plugin and _EXCEPTION.match(line.text)],
        [line for line in lines if not line.from_plugin and line.level in {"error", "critical"}],
    )
    for found in candidates:
        if found:
            return f"{found[-1].source}: {found[-1].text}"
    return ""


def summary_figures(lines: Iterable[LogLine]) -> dict[str, float]:
    """The numbers of the plugins' JSON run summaries, as ``<plugin>.<figure>``."""
    figures: dict[str, float] = {}
    for line in lines:
        for summary in summaries(line.text) if line.from_plugin else []:
            plugin = summary.get("plugin") or line.source
            for name, value in summary.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    figures[f"{plugin}.{name}"] = value
    return figures
