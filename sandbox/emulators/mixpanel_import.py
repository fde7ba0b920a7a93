"""A local emulator of Mixpanel's ingestion endpoint ``POST /import``.

Implements the documented contract of Import Events
(https://developer.mixpanel.com/reference/import-events): service-account, API-secret and
project-token Basic auth; gzip; JSON array and NDJSON bodies; ``strict=1`` validation with
partial success and ``failed_records``; 413 above the byte cap; at most 2000 events; dedupe on
(event, distinct_id, time, $insert_id); the disallowed ids; the time window; Mixpanel's own
401/413/429 bodies; and fault injection through :class:`~sandbox.emulators.server.Faults`.

Run it as a command for demos: ``python -m sandbox.emulators.mixpanel_import --port 8765``; the
stored events are then served at ``GET /_emulator/events`` and counters at
``GET /_emulator/stats``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sandbox.emulators.mixpanel_event_rules import (
    MAX_EVENT_BYTES,
    SURELY_SMALL,
    dedupe_key,
    plainly_valid,
    truncate,
    validate,
)
from sandbox.emulators.server import Emulator, Faults, Request, Response

# Of the other characters str.splitlines() splits on (the reference parser splits NDJSON with
# it), \r, \x0b, \x0c and \x1c-\x1e are control characters: JSON has them only as whitespace
# outside strings (\r), where a split changes no event, and msgspec fails on the rest. U+0085,
# U+2028 and U+2029 may stand inside JSON strings. Searching for a multi-byte sequence is
# slower than for one byte, so each is only looked for when its last byte occurs at all.
_LINE_BREAKS = {b"\x85": b"\xc2\x85", b"\xa8": b"\xe2\x80\xa8", b"\xa9": b"\xe2\x80\xa9"}
_decode = msgspec.json.Decoder().decode
_decode_raw_list = msgspec.json.Decoder(list[msgspec.Raw]).decode
RATE_LIMIT_BODY = {
    "code": 429,
    "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
    "status": "Too Many Requests",
}


class MixpanelImportEmulator(Emulator):
    """``/import`` with its validation and dedupe; ``events`` holds what a query would show.

    Args:
        keep: ``"events"`` stores every surviving event (default), ``"keys"`` only the dedupe
            keys, ``"count"`` nothing but counters (for the benchmark).
        max_bytes: request cap on the uncompressed body (the OpenAPI example's 2 MiB).
        retry_after: when set, 429 answers carry this ``Retry-After`` header.
        now: wall clock for the "1 hour in the future" rule.
        handle_delay: seconds each /import call takes (to observe concurrency).
        events_per_minute: the project's ingestion limit, measured like Mixpanel's on a rolling
            minute (``rate_clock`` seconds); a request that would exceed it gets the 429.
    """

    def __init__(
        self,
        *,
        project_id: str = "12345",
        service_account: tuple[str, str] | None = ("sa-user.mp-service-account", "sa-secret"),
        api_secret: str | None = "legacy-api-secret",
        project_token: str | None = "project-token",
        max_bytes: int = 2_097_152,
        max_events: int = 2000,
        keep: str = "events",
        retry_after: float | None = None,
        now: Callable[[], float] = time.time,
        handle_delay: float = 0.0,
        events_per_minute: int | None = None,
        rate_clock: Callable[[], float] = time.monotonic,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(faults=faults, host=host, port=port)
        self.events_per_minute = events_per_minute
        self.rate_clock = rate_clock
        self._accepted: collections.deque[tuple[float, int]] = collections.deque()
        self.project_id = str(project_id)
        self.service_account = service_account
        self.api_secret = api_secret
        self.project_token = project_token
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.keep = keep
        self.retry_after = retry_after
        self.now = now
        self.handle_delay = handle_delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen: list[dict[str, Any]] = []
        self.store: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.keys: set[tuple[Any, ...]] = set()
        self.stats = {
            "requests": 0,
            "received": 0,
            "imported": 0,
            "duplicates": 0,
            "rejected": 0,
            "unauthorized": 0,
            "too_large": 0,
            "rate_limited": 0,
        }
        self.auth_kinds: list[str] = []
        self.content_types: list[str] = []
        self.batch_sizes: list[int] = []

    # -- what tests read ---------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """The stored events (after dedupe), in arrival order of their latest version."""
        with self.lock:
            return list(self.store.values())

    def event_keys(self) -> set[tuple[Any, ...]]:
        """Dedupe keys of the stored events."""
        with self.lock:
            return set(self.store) if self.keep == "events" else set(self.keys)

    # -- the API -----------------------------------------------------------------------------

    def rate_limited(self) -> Response:
        """Mixpanel's 429 body, with ``Retry-After`` when one is configured."""
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return Response(429, dict(RATE_LIMIT_BODY), headers)

    def server_error(self, status: int) -> Response:
        """A 5xx answer: a load balancer's HTML page for 502, Mixpanel's JSON otherwise."""
        if status == 502:  # what a load balancer in front of the API sends
            return Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        return Response(status, {"code": status, "error": "Internal Server Error", "status": 0})

    def handle(self, request: Request) -> Response:
        """Route one request: the emulator's inspection endpoints, then ``/import``."""
        if request.method == "GET" and request.path == "/_emulator/events":
            return Response(200, self.events)
        if request.method == "GET" and request.path == "/_emulator/stats":
            with self.lock:
                return Response(200, {**self.stats, "faults": dict(self.faults_injected)})
        if request.path != "/import":
            return Response(404, {"error": "not found"})
        if request.method != "POST":
            return Response(405, {"error": "method not allowed"})
        with self.lock:
            self.stats["requests"] += 1
            self.seen.append({"headers": dict(request.headers), "query": dict(request.query)})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.handle_delay:
                time.sleep(self.handle_delay)
            return self._import(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _within_rate_limit(self, count: int) -> bool:
        """Admit ``count`` events if the rolling minute has room for them."""
        if self.events_per_minute is None:
            return True
        with self.lock:
            now = self.rate_clock()
            while self._accepted and self._accepted[0][0] <= now - 60:
                self._accepted.popleft()
            if sum(n for _, n in self._accepted) + count > self.events_per_minute:
                return False
            self._accepted.append((now, count))
            return True

    def _import(self, request: Request) -> Response:
        kind = self._authenticate(request)
        if kind is None:
            with self.lock:
                self.stats["unauthorized"] += 1
            return Response(
                401, {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}
            )
        if len(request.body) > self.max_bytes:
            with self.lock:
                self.stats["too_large"] += 1
            return Response(
                413,
                {
                    "code": 413,
                    "error": f"request exceeds max limit of {self.max_bytes} bytes",
                    "status": "Request Entity Too Large",
                },
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        parsed = _parse_fast(request.body, content_type)
        if parsed is None:  # anything unusual: the reference parser decides, and words the error
            try:
                events = self._parse_body(request.body, content_type)
            except ValueError as exc:
                return _bad_request(f"unable to parse request body: {exc}")
            sizes = [MAX_EVENT_BYTES] * len(events)  # unknown: measure each event
        else:
            events, sizes = parsed
        if len(events) > self.max_events:
            return _bad_request(f"request exceeds max of {self.max_events} events")
        if not self._within_rate_limit(len(events)):
            with self.lock:
                self.stats["rate_limited"] += 1
            return self.rate_limited()
        strict = request.param("strict", "0") == "1"
        failed: list[dict[str, Any]] = []
        valid: list[dict[str, Any]] = []
        now = self.now()
        latest = now + 3600
        # Counters only, nothing stored: no one reads the strings, so they need no truncating.
        truncating = self.keep != "count" or bool(self.store or self.keys)
        unsure: list[int] = []  # positions in `valid` of events the fast check did not pass
        for index, event in enumerate(events):
            if sizes[index] < SURELY_SMALL and plainly_valid(event, latest):
                valid.append(truncate(event) if truncating else event)
                continue
            problem = validate(event, now)
            if problem is None:
                unsure.append(len(valid))
                valid.append(truncate(event) if truncating else event)
                continue
            field, message = problem
            props = event.get("properties") if isinstance(event, dict) else None
            insert_id = props.get("$insert_id") if isinstance(props, dict) else None
            failed.append(
                {"index": index, "insert_id": insert_id, "field": field, "message": message}
            )
        self._store(valid, unsure)
        with self.lock:
            self.auth_kinds.append(kind)
            self.content_types.append(content_type)
            self.batch_sizes.append(len(events))
            self.stats["received"] += len(events)
            self.stats["rejected"] += len(failed)
        if failed and strict:
            return Response(
                400,
                {
                    "code": 400,
                    "num_records_imported": len(valid),
                    "status": "Bad Request",
                    "failed_records": failed,
                },
            )
        return Response(200, {"code": 200, "num_records_imported": len(valid), "status": "OK"})

    def _authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        raw = header[6:].strip()
        try:
            decoded = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = raw  # Mixpanel also accepts plain-text credentials
        user, _, password = decoded.partition(":")
        project_id = request.param("project_id")
        if self.service_account and (user, password) == self.service_account:
            return "service_account" if project_id == self.project_id else None
        if password == "" and project_id in (None, self.project_id):
            if self.api_secret and user == self.api_secret:
                return "api_secret"
            if self.project_token and user == self.project_token:
                return "project_token"
        return None

    @staticmethod
    def _parse_body(body: bytes, content_type: str) -> list[Any]:
        text = body.decode("utf-8")
        if content_type == "application/x-ndjson":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if content_type in ("application/json", ""):
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                return [parsed]
            if isinstance(parsed, list):
                return parsed
            raise ValueError("body must be a JSON array of events")
        raise ValueError(f"unsupported Content-Type {content_type!r}")

    def _store(self, events: list[dict[str, Any]], unsure: list[int] | None = None) -> None:
        """Count (and keep) valid events; ``unsure``: positions not passed by plainly_valid."""
        with self.lock:
            if self.keep == "count" and unsure is not None and not self.store and not self.keys:
                # Nothing kept, nothing to be a duplicate of: every event counts as imported.
                # Computing a key can only fail (a NaN time) for events the fast check did
                # not pass; such a failure leaves the counters as the loop below would.
                for position in unsure:
                    try:
                        dedupe_key(events[position])
                    except Exception:
                        self.stats["imported"] += position
                        raise
                self.stats["imported"] += len(events)
                return
            for event in events:
                key = dedupe_key(event)
                seen = key in self.store or key in self.keys
                if seen:
                    self.stats["duplicates"] += 1
                else:
                    self.stats["imported"] += 1
                if self.keep == "events":
                    self.store.pop(key, None)  # the latest ingested version wins
                    self.store[key] = event
                elif self.keep == "keys":
                    self.keys.add(key)


def _parse_fast(body: bytes, content_type: str) -> tuple[list[Any], list[int]] | None:
    """The events of a well-formed body and the size in bytes of each, or None.

    msgspec gives the same values as ``json.loads`` for every document both accept; None (any
    error, or a body the reference parser would split differently) leaves the body to
    :meth:`MixpanelImportEmulator._parse_body`, so answers stay exactly the same.
    """
    try:
        if content_type == "application/x-ndjson":
            if _splits_elsewhere(body):
                return None
            lines = [line for line in body.split(b"\n") if line.strip()]
            return [_decode(line) for line in lines], [len(line) for line in lines]
        if content_type in ("application/json", ""):
            if body[:1] != b"[" and body.lstrip()[:1] != b"[":
                return None  # a single event, or not an array: rare, the reference parser
            raws = _decode_raw_list(body)
            return [_decode(raw) for raw in raws], [len(raw) for raw in raws]
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return None


def _splits_elsewhere(body: bytes) -> bool:
    """True if str.splitlines() might split the body's events apart besides at newlines."""
    return any(last in body and mark in body for last, mark in _LINE_BREAKS.items())


def _bad_request(message: str) -> Response:
    return Response(400, {"code": 400, "error": message, "status": "Bad Request"})


def main(argv: list[str] | None = None) -> None:
    """Serve the emulator until interrupted; prints its URL first."""
    parser = argparse.ArgumentParser(description="Local emulator of Mixpanel POST /import")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--project-id", default="12345")
    parser.add_argument("--service-account", default="sa-user.mp-service-account:sa-secret")
    parser.add_argument("--api-secret", default="legacy-api-secret")
    parser.add_argument("--project-token", default="project-token")
    parser.add_argument("--max-bytes", type=int, default=2_097_152)
    parser.add_argument("--keep", choices=("events", "keys", "count"), default="events")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-5xx", type=float, default=0.0)
    parser.add_argument("--rate-reset", type=float, default=0.0)
    parser.add_argument("--rate-slow", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=0.3)
    parser.add_argument("--retry-after", type=float, default=None)
    parser.add_argument(
        "--events-per-minute", type=int, default=None, help="rolling-minute ingestion limit"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    user, _, secret = args.service_account.partition(":")
    emulator = MixpanelImportEmulator(
        project_id=args.project_id,
        service_account=(user, secret) if user else None,
        api_secret=args.api_secret or None,
        project_token=args.project_token or None,
        max_bytes=args.max_bytes,
        keep=args.keep,
        retry_after=args.retry_after,
        events_per_minute=args.events_per_minute,
        faults=Faults(
            rate_429=args.rate_429,
            rate_5xx=args.rate_5xx,
            rate_reset=args.rate_reset,
            rate_slow=args.rate_slow,
            slow_seconds=args.slow_seconds,
            seed=args.seed,
        ),
        host=args.host,
        port=args.port,
    )
    print(emulator.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        emulator.serve_forever()


if __name__ == "__main__":
    main()
