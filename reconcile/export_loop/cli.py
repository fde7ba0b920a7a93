"""``reconcile-export-loop``: check a window of hours of the export loop (docs/reconciliation.md).

Exit codes: 0 within the threshold, 1 past it, 2 when the check could not run (settings, storage,
Mixpanel refused or the retries ran out). Secrets never reach the output: settings come from a
JSON file or ``RECONCILE_EXPORT_LOOP_<NAME>`` variables, and every error text is redacted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from braze_mixpanel_common.errors import PluginError
from braze_mixpanel_common.secrets import redact, redact_logs
from braze_mixpanel_common.settings import ConfigView
from reconcile.export_loop.check import COLUMNS, reconcile_export_loop, whole_hour
from reconcile.export_loop.settings import SCHEMA, Settings, config_from_env
from reconcile.report import EXIT_ERROR, finish

logger = logging.getLogger("reconcile-export-loop")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time (2026-05-01T13:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="reconcile-export-loop",
        description="Compare the Currents files with Mixpanel's hourly event counts.",
    )
    parser.add_argument("--config", type=Path, help="settings as a JSON file (else env vars)")
    parser.add_argument("--start", type=_moment, help="first hour (UTC unless an offset is given)")
    parser.add_argument("--end", type=_moment, help="end of the window, exclusive")
    parser.add_argument(
        "--hours", type=int, default=24, help="window length when --end is not given (24)"
    )
    parser.add_argument("--summary", type=Path, help="write the JSON summary to this file")
    parser.add_argument(
        "--all-rows", action="store_true", help="print every row, not only those that differ"
    )
    return parser.parse_args(argv)


def load_config(path: Path | None) -> dict[str, Any]:
    """Settings from ``path`` (JSON), then the environment's ``RECONCILE_EXPORT_LOOP_*``."""
    config: dict[str, Any] = {}
    if path is not None:
        config.update(json.loads(path.read_text(encoding="utf-8")))
    config.update(config_from_env())
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    secrets: tuple[str, ...] = ()
    try:
        config = load_config(args.config)
        secrets = ConfigView(config, SCHEMA).secrets()
        redact_logs(secrets)
        settings = Settings.from_config(config, logger)
        end = whole_hour(args.end) if args.end else None
        if args.start is None:
            end = end or whole_hour(datetime.now(UTC))
            start = end - timedelta(hours=args.hours)
        else:
            start = whole_hour(args.start)
            end = end or start + timedelta(hours=args.hours)
        report = reconcile_export_loop(settings, start, end, logger=logger)
    except (PluginError, OSError, ValueError) as exc:
        logger.error("reconcile-export-loop: %s", redact(str(exc), secrets))
        return EXIT_ERROR
    return finish(
        report,
        settings.threshold,
        COLUMNS,
        summary_path=args.summary,
        only_drifted=not args.all_rows,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
