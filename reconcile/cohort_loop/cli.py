"""``reconcile-cohorts``: audit (and on request repair) the cohort loop, exit non-zero on drift.

Reads the configs of the two plugins it checks, as JSON files (``meltano config --unsafe print
<plugin>`` or the files a Singer pipeline already has), checked against each plugin's own
settings schema: ``--tap-config`` for
tap-mixpanel-cohorts (its credentials, ``user_id_property``, ``fallback_to_distinct_id`` and query
budget; with ``source: webhook`` the query credentials must be set too, because membership is
always read through the query API) and ``--target-config`` for target-braze (``rest_endpoint``,
``api_key`` with the ``users.export.ids`` permission, ``cohort_attribute``, ``ledger_path`` /
``ledger_options``). Exit codes: 0 within the threshold, 1 past it, 2 when the check could not
run (the message says why).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.cohorts import MEMBERS_STREAM
from braze_mixpanel_common.errors import ConfigurationError, PluginError
from braze_mixpanel_common.ratelimit import RateLimiter
from braze_mixpanel_common.secrets import redact, redact_logs
from braze_mixpanel_common.settings import ConfigView, validate_config
from reconcile.cohort_loop.audit import CohortAudit, CohortAuditor, check_destination
from reconcile.cohort_loop.mixpanel import MixpanelMembership
from reconcile.cohort_loop.repair import repair
from reconcile.report import EXIT_ERROR, Report, Threshold, finish, summary
from tap_mixpanel_cohorts.client import MixpanelQueryClient
from tap_mixpanel_cohorts.settings import CONFIG_SCHEMA as TAP_SCHEMA
from tap_mixpanel_cohorts.settings import Settings as TapSettings
from target_braze.client import BrazeClient
from target_braze.ledger import Ledger
from target_braze.ledger.audit import synced_cohorts
from target_braze.ledger.store import LedgerStore
from target_braze.settings import CONFIG_SCHEMA as TARGET_SCHEMA
from target_braze.settings import Settings as TargetSettings

CHECK = "cohort-loop"
COLUMNS = (
    "sampled",
    "agree",
    "missing_in_braze",
    "extra_in_braze",
    "ledger_wrong",
    "without_user_id",
    "mixpanel_queries",
    "braze_requests",
)
EXPORT_WINDOW_S = 60.0
LOGGER = logging.getLogger("reconcile-cohorts")


def _read_config(path: str, option: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The plugin config in ``path``, checked against the plugin's ``schema`` as the SDK would."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{option} {path}: cannot read it as JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ConfigurationError(f"{option} {path}: expected a JSON object of settings.")
    validate_config(config, schema, f"{option} {path}")
    return config


def tap_settings(config: dict[str, Any]) -> TapSettings:
    """The tap's settings, read for the query API whatever its ``source``."""
    query = {k: v for k, v in config.items() if k != "spool_url"} | {"source": "query"}
    try:
        return TapSettings.from_config(ConfigView(query, TAP_SCHEMA), LOGGER)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc} The cohort reconciliation reads membership through Mixpanel's query API, "
            "also for a tap with 'source' webhook: give --tap-config its query credentials."
        ) from None


def target_settings(config: dict[str, Any]) -> TargetSettings:
    """target-braze's settings; the reconciliation needs mode ``attributes`` and ``api_key``."""
    settings = TargetSettings.from_config(ConfigView(config, TARGET_SCHEMA))
    if settings.mode != "attributes" or not settings.api_key:
        raise ConfigurationError(
            "The cohort reconciliation checks the cohort attribute through /users/export/ids: "
            "target-braze must use mode 'attributes' with an 'api_key' (a partner cohort "
            "cannot be read back)."
        )
    return settings


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(
        prog="reconcile-cohorts",
        description="Check a random sample per synced cohort: Mixpanel vs the ledger vs Braze.",
    )
    parser.add_argument("--tap-config", required=True, help="tap-mixpanel-cohorts config JSON")
    parser.add_argument("--target-config", required=True, help="target-braze config JSON")
    parser.add_argument("--sample-size", type=int, default=100, help="users per cohort")
    parser.add_argument("--seed", type=int, default=None, help="repeat a sample")
    parser.add_argument("--cohort-id", action="append", help="only these cohorts (repeat)")
    parser.add_argument("--max-drift", type=int, default=0, help="drifted users allowed")
    parser.add_argument("--max-drift-ratio", type=float, default=None, help="or this fraction")
    parser.add_argument("--summary", help="write the JSON summary here")
    parser.add_argument(
        "--export-requests-per-minute",
        type=int,
        default=250,
        help="Braze /users/export/ids budget (250 a minute by default)",
    )
    parser.add_argument("--repair", action="store_true", help="fix drifted users, re-check")
    return parser


def run(args: argparse.Namespace, clock: Clock | None = None) -> int:
    """Audit, optionally repair and re-check; print the report; return the exit code."""
    if args.sample_size < 1 or args.export_requests_per_minute < 1:
        raise ConfigurationError("--sample-size and --export-requests-per-minute must be >= 1.")
    clock = clock or SystemClock()
    tap_config = _read_config(args.tap_config, "--tap-config", TAP_SCHEMA)
    target_config = _read_config(args.target_config, "--target-config", TARGET_SCHEMA)
    secrets = (
        ConfigView(tap_config, TAP_SCHEMA).secrets()
        + ConfigView(target_config, TARGET_SCHEMA).secrets()
    )
    redact_logs(secrets)
    try:
        return _checked(args, tap_config, target_config, clock)
    except PluginError as exc:
        exc.args = (redact(str(exc), secrets),)  # the message main() prints, secrets removed
        raise


def _checked(
    args: argparse.Namespace,
    tap_config: dict[str, Any],
    target_config: dict[str, Any],
    clock: Clock,
) -> int:
    tap = tap_settings(tap_config)
    target = target_settings(target_config)
    mixpanel = MixpanelQueryClient(tap, LOGGER, clock=clock)
    braze = BrazeClient(
        target.rest_endpoint,
        target.api_key,
        limiter=RateLimiter(args.export_requests_per_minute, EXPORT_WINDOW_S, clock=clock),
        secrets=target.secrets,
        clock=clock,
        retry_bounds=target.retry_bounds,
        timeout=target.request_timeout,
        pool_size=1,
        logger=LOGGER,
    )
    try:
        audits, audited_ledger = _audit(
            args, tap=tap, target=target, mixpanel=mixpanel, braze=braze, clock=clock
        )
        report = _report(audits, mixpanel, braze)
        threshold = Threshold(args.max_drift, args.max_drift_ratio)
        if args.repair and any(a.drifted() for a in audits):
            before = summary(report, threshold)
            finish(report, threshold, COLUMNS, only_drifted=True)
            fixed = repair(audits, target, LOGGER, clock, audited_ledger=audited_ledger)
            print(f"repair: {json.dumps(fixed)}")
            _recheck(audits, target, braze, clock)
            report = _report(audits, mixpanel, braze)
            report.details.update(repair=fixed, before_repair=before)
        return finish(report, threshold, COLUMNS, summary_path=args.summary)
    finally:
        mixpanel.http.close()
        braze.close()


def _audit(
    args: argparse.Namespace,
    *,
    tap: TapSettings,
    target: TargetSettings,
    mixpanel: MixpanelQueryClient,
    braze: BrazeClient,
    clock: Clock,
) -> tuple[list[CohortAudit], str | None]:
    """The audits, and the publish id of the ledger they read (a repair checks it is unchanged)."""
    with _read_only_ledger(target, clock) as (ledger, ns):
        publish_id = ledger.publish_id()
        auditor = CohortAuditor(
            ledger,
            ns,
            mixpanel=MixpanelMembership(mixpanel, tap),
            braze=braze,
            attribute=target.cohort_attribute,
            sample_size=args.sample_size,
            seed=args.seed,
        )
        wanted = set(args.cohort_id or ())
        cohorts = [c for c in synced_cohorts(ledger, ns) if not wanted or c.cohort_id in wanted]
        if not cohorts:
            return [], publish_id
        listed = {str(c.get("id")) for c in mixpanel.list_cohorts()}
        gone = [c.cohort_id for c in cohorts if c.cohort_id not in listed]
        if gone:
            LOGGER.warning(
                "Cohorts %s are synced but Mixpanel no longer lists them: every user Braze still "
                "holds them for counts as extra in Braze.",
                ", ".join(gone),
            )
        return [auditor.audit(c, listed=c.cohort_id in listed) for c in cohorts], publish_id


def _recheck(
    audits: list[CohortAudit], target: TargetSettings, braze: BrazeClient, clock: Clock
) -> None:
    """After a repair: what the ledger and Braze hold now (Mixpanel did not change)."""
    with _read_only_ledger(target, clock) as (ledger, ns):
        for audit in audits:
            check_destination(audit, ledger, ns, braze, target.cohort_attribute)


@contextlib.contextmanager
def _read_only_ledger(target: TargetSettings, clock: Clock) -> Iterator[tuple[Ledger, int]]:
    """The ledger as target-braze's dry run opens it (no lease, never written)."""
    store = LedgerStore(dataclasses.replace(target, dry_run=True), LOGGER, clock)
    try:
        ledger = store.open()
        yield ledger, ledger.namespace(f"{target.namespace_prefix()}|{MEMBERS_STREAM}")
    finally:
        store.close()


def _report(audits: list[CohortAudit], mixpanel: MixpanelQueryClient, braze: BrazeClient) -> Report:
    rows = [a.row() for a in audits]
    return Report(
        CHECK,
        sum(r.counts["sampled"] for r in rows),
        rows,
        {
            "cohorts": len(rows),
            "mixpanel_queries": mixpanel.limiter.used,
            "braze_export_requests": int(braze.counters["requests"]),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except PluginError as exc:
        print(f"reconcile-cohorts: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
