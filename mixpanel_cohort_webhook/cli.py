"""``mixpanel-cohort-webhook --spool-url URL [--host] [--port] [--max-body-mb] [--no-auth]``.

Credentials and spool options come from the environment, never from the command line (where
``ps`` would show them): ``MIXPANEL_WEBHOOK_USERNAME``, ``MIXPANEL_WEBHOOK_PASSWORD`` and
``MIXPANEL_WEBHOOK_SPOOL_OPTIONS`` (JSON fsspec storage options). The app is served by uvicorn.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn

from braze_mixpanel_common.cohort_spool import SpoolError, open_spool
from braze_mixpanel_common.errors import ConfigurationError, PluginError
from mixpanel_cohort_webhook.app import Credentials, create_app
from tap_braze_currents.storage import tls_downgrades

USERNAME_VAR = "MIXPANEL_WEBHOOK_USERNAME"
PASSWORD_VAR = "MIXPANEL_WEBHOOK_PASSWORD"
OPTIONS_VAR = "MIXPANEL_WEBHOOK_SPOOL_OPTIONS"

logger = logging.getLogger("mixpanel_cohort_webhook")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="mixpanel-cohort-webhook",
        description="Receive Mixpanel cohort-sync webhooks into a spool read by "
        "tap-mixpanel-cohorts (source: webhook).",
        epilog=f"Environment: {USERNAME_VAR}, {PASSWORD_VAR} (Basic auth, required unless "
        f"--no-auth), {OPTIONS_VAR} (JSON storage options for the spool).",
    )
    parser.add_argument(
        "--spool-url", required=True, help="fsspec URL or local folder of the spool"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--max-body-mb", type=float, default=64.0, help="larger bodies are refused with 413"
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="accept deliveries without Basic auth (only behind another authenticating proxy)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser.parse_args(argv)


def credentials_from(environ: Mapping[str, str], no_auth: bool) -> Credentials | None:
    """The Basic-auth credentials, or None with ``--no-auth``; refuses to guess otherwise."""
    username = environ.get(USERNAME_VAR, "")
    password = environ.get(PASSWORD_VAR, "")
    if no_auth:
        if username or password:
            logger.warning("--no-auth given: %s/%s are ignored.", USERNAME_VAR, PASSWORD_VAR)
        else:
            logger.warning("--no-auth given: deliveries are accepted without credentials.")
        return None
    if not username or not password:
        raise ConfigurationError(
            f"{USERNAME_VAR} and {PASSWORD_VAR} must both be set (the Basic-auth credentials "
            "entered in Mixpanel's webhook settings), or pass --no-auth explicitly."
        )
    if ":" in username:
        raise ConfigurationError(f"{USERNAME_VAR} must not contain ':' (Basic auth splits on it).")
    return Credentials(username, password)


def spool_options_from(environ: Mapping[str, str]) -> dict[str, Any]:
    """The spool's storage options from JSON (the value is never echoed: it may hold keys)."""
    text = environ.get(OPTIONS_VAR, "").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"{OPTIONS_VAR} is not valid JSON (line {error.lineno}, column {error.colno})."
        ) from None
    if not isinstance(options, dict):
        raise ConfigurationError(f"{OPTIONS_VAR} must be a JSON object.")
    return options


def main(argv: Sequence[str] | None = None) -> None:
    """Run the receiver until SIGINT/SIGTERM (uvicorn finishes in-flight deliveries first)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        _serve(args)
    except PluginError as error:  # one line naming what to fix, no traceback
        logger.error("%s", error)
        raise SystemExit(1) from None


def _serve(args: argparse.Namespace) -> None:
    """Check the settings, open the spool and serve until stopped."""
    credentials = credentials_from(os.environ, args.no_auth)
    options = spool_options_from(os.environ)
    for name in tls_downgrades(options):
        logger.warning("%s weakens TLS for the spool's storage client.", name)
    if args.max_body_mb <= 0:
        raise ConfigurationError("--max-body-mb must be positive.")
    spool = open_spool(args.spool_url, options)
    try:
        spool.check_writable()
    except SpoolError as error:  # serve anyway: deliveries get 503 and Mixpanel retries
        logger.warning("%s; deliveries are answered 503 until it is.", error)
    app = create_app(spool, credentials, int(args.max_body_mb * 1024 * 1024))
    logger.info(
        "Receiving cohort syncs on http://%s:%d/ into %s (%s).",
        args.host,
        args.port,
        args.spool_url,
        "Basic auth" if credentials else "no auth",
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
