"""One HTTP call-with-retry for every client of this distribution.

:class:`HttpCaller` owns the pooled ``requests`` session (TLS verification always on), takes a
place in the optional :class:`~braze_mixpanel_common.ratelimit.RateLimiter` for every attempt,
retries what its :class:`RetryPolicy` names (status codes, connection failures, timeouts, bodies
broken off mid-way) with exponential backoff and jitter or the server's own wait (``Retry-After``,
or a client's header such as Braze's ``X-RateLimit-Reset``), counts requests, retries and the
seconds waited by cause (:data:`WAIT_CAUSES`), and removes every configured secret from the texts
it logs or raises. A TLS certificate that fails verification is never retried: the call gives up
at once with the host and the certificate problem.

Each client keeps only its endpoints, what its statuses mean and its error hints: it gets back
the final (not retried) answer, or the error the caller chose when the retries ran out.
"""

from __future__ import annotations

import http.client
import logging
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from singer_sdk import typing as th

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.counters import Counters
from braze_mixpanel_common.errors import DestinationError, PluginError
from braze_mixpanel_common.ratelimit import RateLimiter
from braze_mixpanel_common.retry import BackoffPolicy, parse_retry_after
from braze_mixpanel_common.settings import SettingSource

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Connection refused or reset, timeouts, and answers cut mid-body (a short Content-Length body or
# a broken chunked stream: urllib3's IncompleteRead/ProtocolError, which requests re-raises as
# ChunkedEncodingError) are all retried alike.
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    http.client.IncompleteRead,
)
_MAX_ERROR_TEXT = 300
CONNECT_TIMEOUT = 10.0  # seconds to open a connection, at most the request timeout

WAIT_CAUSES = ("budget", "429", "5xx", "network")
"""Why a client waited: a spent budget (rate window or a server's budget header), a 429
backoff, a 5xx backoff (also 408 and a malformed answer), a network failure's backoff."""


def request_timeout(seconds: float) -> tuple[float, float]:
    """The (connect, read) timeouts for a ``request_timeout`` setting of ``seconds``."""
    return (min(CONNECT_TIMEOUT, seconds), seconds)


def request_timeout_setting(default: float) -> th.Property:
    """The ``request_timeout`` setting every plugin that talks HTTP offers."""
    return th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0),
        default=default,
        description="Seconds to wait for an answer to one HTTP request (connecting takes at "
        f"most {CONNECT_TIMEOUT:.0f} s of it); a request that times out is retried like any "
        "network failure.",
    )


RETRY_MAX_ATTEMPTS = "retry_max_attempts"
RETRY_MAX_SECONDS = "retry_max_seconds"


def retry_bound_settings(default_attempts: str) -> list[th.Property]:
    """The two settings that bound the retries of one request, offered by every HTTP plugin.

    Both are unset by default (the plugin's own retry policy, ``default_attempts`` describes
    it); an orchestrator that retries whole runs itself sets them low.
    """
    return [
        th.Property(
            RETRY_MAX_ATTEMPTS,
            th.IntegerType(minimum=1, maximum=100),
            description="At most this many attempts of one request, the first included, "
            "whatever failed (network, 5xx, 429). Unset: the plugin's own policy "
            f"({default_attempts}). Set it low (e.g. 2) where an orchestrator retries the "
            "whole run.",
        ),
        th.Property(
            RETRY_MAX_SECONDS,
            th.NumberType(exclusive_minimum=0),
            description="At most this many seconds spent on one request, its attempts and the "
            "waits between them: a retry whose wait would end past it is not made and the run "
            "fails with the last error (an attempt under way is not cut short: "
            "'request_timeout' bounds it). Unset: no bound in time.",
        ),
    ]


@dataclass(frozen=True)
class RetryBounds:
    """A user's bounds on the retries of one request (``retry_max_*`` settings).

    Attributes:
        max_attempts: at most this many attempts (None: the policy's own count).
        max_seconds: at most this many seconds from the first attempt to the last one's start
            (None: no bound).
    """

    max_attempts: int | None = None
    max_seconds: float | None = None

    @classmethod
    def from_settings(cls, settings: SettingSource) -> RetryBounds:
        """The bounds a plugin's config sets (``retry_max_attempts``, ``retry_max_seconds``)."""
        attempts, seconds = settings.get(RETRY_MAX_ATTEMPTS), settings.get(RETRY_MAX_SECONDS)
        return cls(
            max_attempts=None if attempts is None else int(attempts),
            max_seconds=None if seconds is None else float(seconds),
        )

    def attempts(self, policy_attempts: int) -> int:
        """The attempts allowed where the policy allows ``policy_attempts``."""
        if self.max_attempts is None:
            return policy_attempts
        return min(policy_attempts, self.max_attempts)


def waits_by_cause(counters: Counters) -> dict[str, float]:
    """Seconds waited by cause (:data:`WAIT_CAUSES`), read from an :class:`HttpCaller`'s counters.

    Waits of concurrent requests add up.
    """
    return {cause: counters[f"waited_{cause}_s"] for cause in WAIT_CAUSES}


def describe_waits(counters: Counters) -> str:
    """``95 s waited (budget 0 s, 429 backoff 95 s, 5xx backoff 0 s, network 0 s)``."""
    waits = waits_by_cause(counters)
    parts = ", ".join(
        f"{cause}{'' if cause in ('budget', 'network') else ' backoff'} {waits[cause]:.0f} s"
        for cause in WAIT_CAUSES
    )
    return f"{sum(waits.values()):.0f} s waited ({parts})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3 reasons, arguments)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        todo += [e for e in linked if isinstance(e, BaseException)]


def certificate_problem(exc: BaseException) -> str | None:
    """What is wrong with the server's certificate, when ``exc`` is a verification failure."""
    for error in _chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            return str(error.verify_message or error.reason or error)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, and how long to wait before each new attempt.

    Attributes:
        backoff: waits for retried statuses and network failures.
        rate_limited: waits for 429 answers (default: ``backoff``); an API whose limit is hourly
            wants longer waits and more attempts here.
        retry_statuses: statuses worth another attempt.
        bounds: the user's bounds on attempts and seconds, over every backoff above.
    """

    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    rate_limited: BackoffPolicy | None = None
    retry_statuses: frozenset[int] = RETRY_STATUSES
    bounds: RetryBounds = field(default_factory=RetryBounds)

    def for_status(self, status: int | None) -> BackoffPolicy:
        """The backoff that applies after an answer with ``status`` (None: a network failure)."""
        if status == 429 and self.rate_limited is not None:
            return self.rate_limited
        return self.backoff


def retry_after_wait(response: requests.Response, clock: Clock) -> float | None:
    """Seconds the server asked to wait through ``Retry-After`` (None when it did not say)."""
    return parse_retry_after(response.headers.get("Retry-After"), now=clock.time())


def error_text(response: requests.Response, redact: Callable[[str], str]) -> str:
    """The server's explanation, secrets removed, on one line of at most 300 characters.

    Reads the JSON body's ``error`` or ``message`` field, else the raw text, else the reason.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    text: Any = None
    if isinstance(body, dict):
        text = body.get("error") or body.get("message")
    text = str(text or response.text or response.reason or "")
    return redact(" ".join(text.split()))[:_MAX_ERROR_TEXT]


def _no_redaction(text: str) -> str:
    return text


class HttpCaller:
    """Sends requests to one service, retrying transient failures.

    Args:
        service: the service's name in log lines and errors ("Mixpanel", "Braze").
        logger: where retries are announced.
        policy: what is retried and how long to wait.
        limiter: shared rate limiter; every attempt takes a place, and a 429 pauses every
            caller (without one, only the calling thread waits).
        counters: receives ``requests``, ``retries``, ``rate_limited``, ``waited_s`` (the
            backoffs) and ``waited_<cause>_s`` per cause of :data:`WAIT_CAUSES` (the limiter
            adds ``waited_budget_s``).
        clock: time source for waits (a fake clock in tests).
        redact: removes every configured secret from a text.
        headers: sent with every request (``Authorization``, ``User-Agent``, ...).
        timeout: seconds per request (or a ``(connect, read)`` pair).
        pool_size: connections kept open (the number of threads that send at once).
        server_wait: seconds the server asked to wait, read from a retried answer.
        on_answer: sees every answer, retried or final (e.g. to pause the limiter when a header
            says the budget of the window is spent).
        give_up: the error type raised when retries run out, or at once when the server's TLS
            certificate fails verification.
    """

    def __init__(
        self,
        service: str,
        logger: logging.Logger,
        *,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        counters: Counters | None = None,
        clock: Clock | None = None,
        redact: Callable[[str], str] = _no_redaction,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = 60.0,
        pool_size: int = 10,
        server_wait: Callable[[requests.Response, Clock], float | None] = retry_after_wait,
        on_answer: Callable[[requests.Response], None] | None = None,
        give_up: type[PluginError] = DestinationError,
    ) -> None:
        self.service = service
        self.logger = logger
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.counters = counters or Counters()
        if limiter is not None:
            limiter.report_budget_to(self.counters)
        self.clock: Clock = clock or SystemClock()
        self.redact = redact
        self.timeout = timeout
        self.server_wait = server_wait
        self.on_answer = on_answer
        self.give_up = give_up
        self.session = requests.Session()
        self.session.verify = True  # TLS verification is never turned off
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=True)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update(headers or {})

    def __repr__(self) -> str:
        return f"HttpCaller(service={self.service!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()

    def _tls_failure(self, url: str, problem: str) -> PluginError:
        host = urlsplit(url).hostname or url
        return self.give_up(
            f"{self.service}: the TLS certificate of {host} failed verification ({problem}); "
            "not retried. Check the host in the URL setting, or give this machine the CA "
            "that signed the certificate (REQUESTS_CA_BUNDLE / SSL_CERT_FILE); verification "
            "is never turned off."
        )

    def call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        consequence: str = "",
        retry_answer: Callable[[requests.Response], str | None] | None = None,
        counted: bool = True,
        **request: Any,
    ) -> requests.Response:
        """Send one request until it gets a final answer, and return that answer.

        Args:
            method: HTTP method.
            url: full URL.
            what: the request in log lines and errors ("/import", "engage page 3 of cohort 7").
            consequence: appended to the give-up error: what happens to the unconfirmed data.
            retry_answer: for an answer whose status is final, a reason to retry it anyway
                (e.g. a 200 whose body is not JSON), or None to return it.
            counted: False when the limiter's budget does not count this request (it still
                waits for pauses and the in-flight cap).
            **request: passed to ``requests.Session.request`` (``data``, ``params``, ...).

        Returns:
            The first answer whose status is not retried, its body read in full.

        Raises:
            PluginError: of type ``give_up``, when the retries ran out; names the last failure.
        """
        attempt = 0
        started = self.clock.monotonic()
        while True:
            attempt += 1
            status: int | None = None
            server_wait: float | None = None
            try:
                with self.limiter.slot(counted=counted) if self.limiter else nullcontext():
                    response = self.session.request(method, url, timeout=self.timeout, **request)
                    response.content  # noqa: B018  (read here: a body broken off is retried)
            except _NETWORK_ERRORS as exc:
                problem = certificate_problem(exc)
                if problem is not None:
                    raise self._tls_failure(url, self.redact(problem)) from None
                reason = f"a network error ({type(exc).__name__})"
            else:
                self.counters.add(requests=1)
                if self.on_answer is not None:
                    self.on_answer(response)
                status = response.status_code
                if status in self.policy.retry_statuses:
                    if status == 429:
                        self.counters.add(rate_limited=1)
                    server_wait = self.server_wait(response, self.clock)
                    reason = f"{status} ({error_text(response, self.redact)})"
                else:
                    retry_reason = retry_answer(response) if retry_answer else None
                    if retry_reason is None:
                        return response
                    reason = retry_reason
            delay, max_attempts = self._next_wait(
                attempt,
                status,
                server_wait,
                self.clock.monotonic() - started,
                failing=f"{what} still failing after {attempt} attempts",
                last=f"(last: {reason}).{' ' + consequence if consequence else ''}",
            )
            cause = "network" if status is None else "429" if status == 429 else "5xx"
            self.counters.add(retries=1, waited_s=delay, **{f"waited_{cause}_s": delay})
            self.logger.warning(
                "%s %s: %s; retrying in %.1f s (attempt %d of %d).",
                self.service,
                what,
                reason,
                delay,
                attempt + 1,
                max_attempts,
            )
            if status == 429 and self.limiter is not None:
                self.limiter.pause(delay, budget=False)
            else:
                self.clock.sleep(delay)

    def _next_wait(
        self,
        attempt: int,
        status: int | None,
        server_wait: float | None,
        spent: float,
        *,
        failing: str,
        last: str,
    ) -> tuple[float, int]:
        """The wait before the next attempt and the attempts allowed, within the user's bounds.

        Raises:
            PluginError: of type ``give_up`` when no attempt is left, or the wait would end past
                ``retry_max_seconds``; the message is ``failing``, the time bound if it applied,
                and ``last``.
        """
        backoff = self.policy.for_status(status)
        bounds = self.policy.bounds
        max_attempts = bounds.attempts(backoff.max_attempts)
        delay = backoff.delay(attempt, server_wait) if attempt < max_attempts else 0.0
        out_of_time = bounds.max_seconds is not None and spent + delay > bounds.max_seconds
        if attempt >= max_attempts or out_of_time:
            within = f" within {spent:.0f} s ({RETRY_MAX_SECONDS})" if out_of_time else ""
            raise self.give_up(f"{self.service} {failing}{within} {last}")
        return delay, max_attempts
