"""The ASGI app: ``POST /`` spools a cohort-sync page, ``GET /healthz`` and ``GET /metrics``.

``GET /healthz`` probes the spool; ``GET /metrics`` serves Prometheus metrics
(:mod:`mixpanel_cohort_webhook.metrics`).

Every page is written to the spool before the answer is sent, so a 200 means the page is durable.
The order of checks decides what a bad request costs: credentials first (nothing is read), then
the declared size, then the body as it streams in, then its format and bounds; only a valid page
reaches the spool. A 400 pauses Mixpanel's sync, so it is kept for bodies that cannot be
Mixpanel's (see :mod:`mixpanel_cohort_webhook.validation`); 503 means "retry" (the spool is down).
A sender that disconnects mid-body is logged in one line, without a traceback. Storage calls are
blocking fsspec calls and run in worker threads, so deliveries proceed concurrently. Logs name
cohorts, sessions and page numbers, never members or credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from braze_mixpanel_common.cohort_spool import Spool, SpoolError, page_numbers
from mixpanel_cohort_webhook.metrics import CONTENT_TYPE, ReceiverMetrics
from mixpanel_cohort_webhook.validation import WebhookFormatError, validate_body

logger = logging.getLogger("mixpanel_cohort_webhook")


class _BodyTooLargeError(Exception):
    """The body is over the size limit."""


@dataclass(frozen=True)
class Credentials:
    """The Basic-auth user name and password Mixpanel is configured with."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the password, even in a debugger or traceback
        return f"Credentials(username={self.username!r}, password='***')"

    def accepts(self, header: str | None) -> bool:
        """True when an ``Authorization`` header carries these credentials (constant time)."""
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        username, separator, password = decoded.partition(b":")
        expected_user = self.username.encode("utf-8")
        expected_password = self.password.encode("utf-8")
        # Both comparisons always run, so timing does not tell which part was wrong.
        user_ok = hmac.compare_digest(username, expected_user)
        password_ok = hmac.compare_digest(password, expected_password)
        return bool(separator) and user_ok and password_ok


def failure(status: int, message: str, action: Any = None) -> JSONResponse:
    """Mixpanel's failure body with a non-2xx status."""
    return JSONResponse(
        {
            "action": action if isinstance(action, str) else None,
            "status": "failure",
            "error": {"message": message, "code": status},
        },
        status_code=status,
    )


def create_app(
    spool: Spool,
    credentials: Credentials | None,
    max_body_bytes: int,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    metrics: ReceiverMetrics | None = None,
) -> Starlette:
    """The receiver for one spool. ``credentials=None`` accepts unauthenticated deliveries.

    ``/metrics`` takes the same credentials as deliveries (a scraper sends them as
    ``basic_auth``): the metrics name cohorts and show when Mixpanel delivers.
    """
    counters = metrics or ReceiverMetrics()

    def refused(request: Request, what: str) -> Response | None:
        if credentials is None or credentials.accepts(request.headers.get("authorization")):
            return None
        logger.warning("Refused %s from %s: wrong or missing credentials.", what, _peer(request))
        response = failure(401, "wrong or missing Basic-auth credentials")
        response.headers["WWW-Authenticate"] = 'Basic realm="mixpanel-cohort-webhook"'
        return response

    async def receive(request: Request) -> Response:
        denied = refused(request, "a delivery")
        if denied is not None:
            counters.page_refused(None, 401)
            return denied
        try:
            raw = await _read_body(request, max_body_bytes)
        except ClientDisconnect:
            logger.info("A sender disconnected before its body arrived; nothing was stored.")
            counters.page_refused(None, 499)
            return Response(status_code=499)  # nobody is left to read it
        except _BodyTooLargeError:
            logger.warning("Refused a delivery over %d bytes.", max_body_bytes)
            counters.page_refused(None, 413)
            return failure(413, f"the body is over the limit of {max_body_bytes} bytes")
        counters.bytes.inc(len(raw))
        try:
            return await run_in_threadpool(_store, spool, raw, now(), counters)
        except SpoolError as error:
            logger.error("Spool unavailable, answering 503 so Mixpanel retries: %s", error)
            counters.spool_errors.inc()
            counters.page_refused(None, 503)
            return failure(503, "the spool is unavailable; retry later")

    async def metrics_endpoint(request: Request) -> Response:
        return refused(request, "a metrics request") or Response(
            counters.exposition(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(spool.check_writable)
        except SpoolError as error:
            logger.error("Health check failed: %s", error)
            # The details (bucket, storage error) go to the log, not to whoever asks.
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


def _store(spool: Spool, raw: bytes, received_at: datetime, metrics: ReceiverMetrics) -> Response:
    """Decode, validate and spool one page (in a worker thread: decoding 1 MB is CPU work)."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        logger.warning("Refused a delivery: the body is not JSON (%s).", error)
        metrics.page_refused(None, 400)
        return failure(400, f"the body is not JSON: {error}")
    except RecursionError:
        logger.warning("Refused a delivery: the body's JSON is nested too deep.")
        metrics.page_refused(None, 400)
        return failure(400, "the body's JSON is nested too deep")
    try:
        validate_body(body)
    except WebhookFormatError as error:
        logger.warning("Refused a delivery: %s.", error)
        action = body.get("action") if isinstance(body, dict) else None
        metrics.page_refused(action, 400)
        return failure(400, f"not a Mixpanel cohort-sync body: {error}", action)
    parameters = body["parameters"]
    started = time.perf_counter()
    stored = spool.write_page(body, received_at)
    metrics.spool_write.observe(time.perf_counter() - started)
    metrics.page_accepted(
        body["action"],
        parameters["mixpanel_cohort_id"],
        len(parameters["members"]),
        received_at,
    )
    page, total = page_numbers(parameters)
    logger.info(
        "%s page %d/%d of %s session %s of cohort %s (%d members).",
        "Stored" if stored else "Already had",
        page,
        total,
        body["action"],
        parameters["mixpanel_session_id"],
        parameters["mixpanel_cohort_id"],
        len(parameters["members"]),
    )
    return JSONResponse({"action": body["action"], "status": "success"})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _peer(request: Request) -> str:
    return f"{request.client.host}" if request.client else "an unknown peer"
