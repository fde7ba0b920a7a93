"""Run one ``meltano`` command for an op: stream its log, fail with the plugin's error line.

Every line goes to standard output (the op's captured stdout, in full); Meltano's progress, the
plugins' summaries, warnings and errors also go to the op's log. A non-zero exit raises
:class:`MeltanoRunError` whose message is the plugin's own error line. The command's environment
is the op's environment plus the given settings (``<PLUGIN>_<SETTING>`` variables, exactly as
``meltano run`` reads them); it is never logged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from braze_mixpanel_common.process import stop_process_group
from orchestration.meltano_log import LogLine, error_line, parse_line, summary_figures
from orchestration.project import MeltanoProject


class OpLog(Protocol):
    """The part of a Dagster op's ``context.log`` (or a :class:`logging.Logger`) used here."""

    def info(self, msg: str) -> None: ...  # noqa: D102
    def warning(self, msg: str) -> None: ...  # noqa: D102
    def error(self, msg: str) -> None: ...  # noqa: D102


@dataclass
class MeltanoResult:
    """A finished ``meltano`` command and the telling lines of its output."""

    command: list[str]
    returncode: int
    lines: list[LogLine] = field(default_factory=list)

    @property
    def figures(self) -> dict[str, float]:
        """The plugins' summary figures (e.g. ``target-mixpanel.imported``)."""
        return summary_figures(self.lines)


class MeltanoRunError(RuntimeError):
    """A ``meltano`` command exited non-zero; the message is the plugin's error line."""

    def __init__(self, result: MeltanoResult) -> None:
        self.result = result
        reason = error_line(result.lines) or "no error line in its output"
        super().__init__(
            f"`meltano {' '.join(result.command[2:])}` failed (exit {result.returncode}): {reason}"
        )


def run_meltano(
    project: MeltanoProject,
    args: Sequence[str],
    log: OpLog,
    *,
    settings: Mapping[str, str] | None = None,
    echo: TextIO | None = None,
) -> MeltanoResult:
    """Run ``meltano <args>`` in the project directory and wait for it.

    Args:
        project: The executable and project directory.
        args: The command after ``meltano``, e.g. ``["run", "cohorts-to-braze"]``.
        log: Where Meltano's progress, summaries, warnings and errors go.
        settings: Environment variables added to this process's own (plugin settings).
        echo: Where every line goes (default: standard output).

    Raises:
        MeltanoRunError: The command failed.
    """
    command = [project.executable, "--log-format=json", *args]
    result = MeltanoResult(command=command, returncode=-1)
    out = echo or sys.stdout
    log.info(f"Running `meltano {' '.join(args)}` in {project.root}")
    process = subprocess.Popen(
        command,
        cwd=project.root,
        env={**os.environ, **(settings or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,  # its own process group: stopping it stops tap and target too
    )
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = parse_line(raw)
            if line.telling:
                result.lines.append(line)
            print(line.render(), file=out, flush=True)
            _forward(line, log)
        result.returncode = process.wait()
    finally:
        if process.poll() is None:  # the op was interrupted: stop Meltano, tap and target
            stop_process_group(process)
    if result.returncode != 0:
        raise MeltanoRunError(result)
    return result


def _forward(line: LogLine, log: OpLog) -> None:
    text = f"{line.source}: {line.text}"
    if line.level in {"error", "critical"}:
        log.error(text)
    elif line.level == "warning":
        log.warning(text)
    elif line.is_summary:
        log.info(text)
