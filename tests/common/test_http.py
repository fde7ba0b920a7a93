"""The one call-with-retry: statuses, Retry-After, network and mid-body failures, redaction."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import trustme

from braze_mixpanel_common.errors import DestinationError, SourceError
from braze_mixpanel_common.http import (
    HttpCaller,
    RetryBounds,
    RetryPolicy,
    describe_waits,
    error_text,
    request_timeout,
    waits_by_cause,
)
from braze_mixpanel_common.ratelimit import RateLimiter
from braze_mixpanel_common.retry import BackoffPolicy
from braze_mixpanel_common.secrets import redact
from sandbox.emulators.server import Emulator, Faults, Request, Response
from tests.support.clock import FakeClock

SECRET = "s3cr3t-token-value"


class Script:
    """Answers the emulator gives, in order; the last one repeats."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes] | str) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[int, dict[str, str], bytes] | str:
        with self.lock:
            self.calls += 1
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def server() -> Iterator[tuple[str, list[Script]]]:
    holder: list[Script] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            answer = holder[0].next()
            if answer == "cut":  # promise a body, send half of it, close
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b'{"half":')
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if answer == "reset":
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            assert not isinstance(answer, str)
            status, headers, body = answer
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", holder
    httpd.shutdown()
    httpd.server_close()


def caller(clock: FakeClock, **kwargs: object) -> HttpCaller:
    policy = RetryPolicy(
        backoff=BackoffPolicy(initial=2, maximum=60, jitter=(0, 0), max_attempts=4)
    )
    return HttpCaller(
        "Emu",
        logging.getLogger("test-http"),
        clock=clock,
        policy=kwargs.pop("policy", policy),  # type: ignore[arg-type]
        redact=lambda text: redact(text, [SECRET]),
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


def test_retries_5xx_with_doubling_backoff_then_returns_the_answer(server):
    url, holder = server
    holder.append(Script((503, {}, b"busy"), (502, {}, b"x"), (200, {}, b'{"ok": 1}')))
    clock = FakeClock()
    http = caller(clock)
    response = http.call("POST", url, what="/thing", data=b"{}")
    assert response.status_code == 200 and response.json() == {"ok": 1}
    assert clock.sleeps == [2, 4]
    counts = http.counters.as_dict()
    assert counts["requests"] == 3 and counts["retries"] == 2 and counts["waited_s"] == 6


def test_final_statuses_are_returned_at_once(server):
    url, holder = server
    holder.append(Script((400, {}, b'{"error": "bad"}')))
    clock = FakeClock()
    response = caller(clock).call("POST", url, what="/thing")
    assert response.status_code == 400 and clock.sleeps == []


def test_retry_after_is_honoured_and_429_uses_its_own_policy(server):
    url, holder = server
    holder.append(
        Script((429, {"Retry-After": "7"}, b"slow down"), (429, {}, b""), (200, {}, b"{}"))
    )
    clock = FakeClock()
    policy = RetryPolicy(
        backoff=BackoffPolicy(initial=1, jitter=(0, 0)),
        rate_limited=BackoffPolicy(initial=30, maximum=600, jitter=(0, 0), max_attempts=12),
    )
    http = caller(clock, policy=policy)
    assert http.call("POST", url, what="/q").status_code == 200
    assert clock.sleeps == [7, 60]  # Retry-After, then the 429 policy's second step
    assert http.counters["rate_limited"] == 2


def test_429_with_a_limiter_pauses_every_caller(server):
    url, holder = server
    holder.append(Script((429, {"Retry-After": "5"}, b""), (200, {}, b"{}")))
    clock = FakeClock()
    limiter = RateLimiter(100, 1.0, clock=clock)
    http = caller(clock, limiter=limiter)
    start = clock.monotonic()
    assert http.call("POST", url, what="/q").status_code == 200
    assert clock.monotonic() - start == pytest.approx(5)
    assert limiter.used == 2 and limiter.waited == pytest.approx(5)


@pytest.mark.parametrize("fault", ["reset", "cut"])
def test_connection_resets_and_bodies_broken_off_midway_are_retried(server, fault):
    url, holder = server
    holder.append(Script(fault, (200, {}, b'{"ok": true}')))
    clock = FakeClock()
    response = caller(clock).call("POST", url, what="/thing")
    assert response.json() == {"ok": True}
    assert clock.sleeps == [2]


def test_give_up_names_the_last_failure_without_the_secret(server, caplog):
    url, holder = server
    holder.append(Script((500, {}, f'{{"error": "echo Basic {SECRET}"}}'.encode())))
    clock = FakeClock()
    http = caller(clock, give_up=SourceError)
    with pytest.raises(SourceError) as info:
        http.call("POST", url, what="/thing", consequence="Nothing was lost.")
    message = str(info.value)
    assert "still failing after 4 attempts" in message and "Nothing was lost." in message
    assert "500" in message and SECRET not in message and "REDACTED" in message
    assert SECRET not in caplog.text
    assert holder[0].calls == 4


def _bounded(bounds: RetryBounds) -> RetryPolicy:
    return RetryPolicy(
        backoff=BackoffPolicy(initial=2, maximum=60, jitter=(0, 0), max_attempts=8),
        rate_limited=BackoffPolicy(initial=30, maximum=600, jitter=(0, 0), max_attempts=12),
        bounds=bounds,
    )


@pytest.mark.parametrize("answer", [(503, {}, b"busy"), (429, {}, b"slow"), "reset"])
def test_retry_max_attempts_caps_every_kind_of_failure(server, answer):
    url, holder = server
    holder.append(Script(answer))
    clock = FakeClock()
    http = caller(clock, policy=_bounded(RetryBounds(max_attempts=2)))
    with pytest.raises(DestinationError, match="still failing after 2 attempts"):
        http.call("POST", url, what="/thing")
    assert holder[0].calls == 2 and len(clock.sleeps) == 1


def test_retry_max_seconds_stops_before_a_wait_that_would_end_past_it(server):
    url, holder = server
    holder.append(Script((503, {}, b"busy")))
    clock = FakeClock()
    http = caller(clock, policy=_bounded(RetryBounds(max_seconds=20)))
    with pytest.raises(DestinationError, match=r"after 4 attempts within 14 s \(retry_max_seconds"):
        http.call("POST", url, what="/thing")
    assert clock.sleeps == [2, 4, 8]  # the next wait (16 s) would end at 30 s > 20 s
    assert holder[0].calls == 4


def test_unset_bounds_keep_the_policy_and_a_lower_one_wins():
    assert RetryBounds().attempts(12) == 12
    assert RetryBounds(max_attempts=3).attempts(8) == 3
    assert RetryBounds(max_attempts=30).attempts(8) == 8
    assert RetryBounds.from_settings({"retry_max_attempts": 2, "retry_max_seconds": 5}) == (
        RetryBounds(max_attempts=2, max_seconds=5.0)
    )


def test_retry_answer_retries_a_final_status_the_client_cannot_use(server):
    url, holder = server
    holder.append(Script((200, {}, b"<html>"), (200, {}, b"[]")))
    clock = FakeClock()

    def not_json(response: requests.Response) -> str | None:
        try:
            response.json()
        except ValueError:
            return "an answer that is not valid JSON"
        return None

    response = caller(clock).call("POST", url, what="/q", retry_answer=not_json)
    assert response.json() == []


def test_tls_verification_is_on_and_default_give_up_is_a_destination_error(server):
    url, holder = server
    holder.append(Script((503, {}, b"")))
    http = caller(FakeClock())
    assert http.session.verify is True
    with pytest.raises(DestinationError):
        http.call("POST", url, what="/x")


def test_error_text_prefers_the_json_error_and_cuts_long_text():
    response = requests.Response()
    response.status_code = 400
    response._content = b'{"message": "bad   request\\n here"}'
    assert error_text(response, lambda t: t) == "bad request here"
    response._content = b"x" * 1000
    assert len(error_text(response, lambda t: t)) == 300


def test_on_answer_sees_every_answer_retried_or_final(server):
    url, holder = server
    holder.append(Script((503, {"X-Budget": "0"}, b""), (200, {"X-Budget": "9"}, b"{}")))
    seen: list[tuple[int, str]] = []
    http = caller(
        FakeClock(), on_answer=lambda r: seen.append((r.status_code, r.headers["X-Budget"]))
    )
    http.call("POST", url, what="/x")
    assert seen == [(503, "0"), (200, "9")]


def test_waits_are_counted_by_cause(server):
    url, holder = server
    holder.append(
        Script(
            (429, {"Retry-After": "9"}, b""),
            (500, {}, b""),
            "cut",
            "reset",
            (200, {}, b"{}"),
        )
    )
    clock = FakeClock()
    policy = RetryPolicy(backoff=BackoffPolicy(initial=2, jitter=(0, 0), max_attempts=6))
    http = caller(clock, policy=policy)
    assert http.call("POST", url, what="/q").status_code == 200
    assert waits_by_cause(http.counters) == {"budget": 0, "429": 9, "5xx": 4, "network": 8 + 16}
    assert http.counters["waited_s"] == 9 + 4 + 8 + 16
    assert describe_waits(http.counters) == (
        "37 s waited (budget 0 s, 429 backoff 9 s, 5xx backoff 4 s, network 24 s)"
    )


def test_budget_waits_are_counted_and_a_429_pause_is_not_counted_twice(server):
    url, holder = server
    holder.append(Script((200, {}, b"{}"), (429, {"Retry-After": "30"}, b""), (200, {}, b"{}")))
    clock = FakeClock()
    limiter = RateLimiter(1, 10.0, clock=clock)  # one call per 10 s: the second call waits
    http = caller(clock, limiter=limiter)
    http.call("POST", url, what="/q")
    http.call("POST", url, what="/q")
    waits = waits_by_cause(http.counters)
    assert waits["budget"] == pytest.approx(10)
    assert waits["429"] == pytest.approx(30)
    assert sum(clock.sleeps) == pytest.approx(40)


def test_a_timeout_is_retried_like_a_network_failure() -> None:
    slow = _Ok(Faults(rate_slow=1.0, slow_seconds=1.0)).start()
    try:
        clock = FakeClock()
        http = HttpCaller(
            "Emu",
            logging.getLogger("test-http"),
            clock=clock,
            policy=RetryPolicy(backoff=BackoffPolicy(initial=1, jitter=(0, 0), max_attempts=2)),
            timeout=request_timeout(0.2),
        )
        with pytest.raises(DestinationError, match=r"after 2 attempts \(last: a network error"):
            http.call("POST", slow.url, what="/slow")
        assert waits_by_cause(http.counters)["network"] == 1
    finally:
        slow.stop()


def test_request_timeout_connects_within_ten_seconds_at_most() -> None:
    assert request_timeout(300) == (10.0, 300)
    assert request_timeout(2.5) == (2.5, 2.5)


class _Ok(Emulator):
    def handle(self, request: Request) -> Response:
        return Response(200, {"ok": True})


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _tls_server(tmp_path, cert) -> Emulator:
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    return _Ok().use_tls(chain, key).start()


@pytest.mark.parametrize(
    ("issue", "problem"),
    [
        ({}, "unable to get local issuer certificate"),
        ({"not_after": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}, "certificate has expired"),
        ({"host": "api.example.com"}, "IP address mismatch"),
    ],
)
def test_tls_failures_give_up_at_once_naming_host_and_problem(
    authority, tmp_path, monkeypatch, caplog, issue, problem
) -> None:
    if "not_after" in issue:
        issue = {**issue, "not_before": dt.datetime(2019, 1, 1, tzinfo=dt.UTC)}
    host = issue.pop("host", "127.0.0.1")
    server = _tls_server(tmp_path, authority.issue_cert(host, **issue))
    try:
        if "issuer" not in problem:  # the CA is trusted: only the certificate itself is wrong
            ca_file = tmp_path / "ca.pem"
            authority.cert_pem.write_to_path(str(ca_file))
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        clock = FakeClock()
        with pytest.raises(SourceError) as info:
            caller(clock, give_up=SourceError).call("POST", server.url, what="/x")
        message = str(info.value)
        assert "TLS certificate of 127.0.0.1 failed verification" in message
        assert problem in message and "not retried" in message
        assert clock.sleeps == [] and "retrying" not in caplog.text
        assert "\n" not in message
    finally:
        server.stop()


def test_a_certificate_from_a_trusted_ca_is_accepted(authority, tmp_path, monkeypatch) -> None:
    server = _tls_server(tmp_path, authority.issue_cert("127.0.0.1"))
    try:
        ca_file = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        assert caller(FakeClock()).call("POST", server.url, what="/x").json() == {"ok": True}
    finally:
        server.stop()
