"""HTTP client for Braze's ``/users/track`` and partner cohort-import endpoints.

Every request goes through one shared :class:`~target_braze.ratelimit.RateLimiter`. A 429 waits
until ``X-RateLimit-Reset`` (epoch seconds), else ``Retry-After``, else exponential backoff; 5xx
answers and connection errors back off and retry; any other 4xx is returned (400: the caller
dead-letters) or raised as a :class:`DestinationError` that says what to check (401, 403, 404).
Secrets never appear in messages: Braze may echo a key in its error text, so bodies are redacted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.retry import BackoffPolicy, Clock, SystemClock, parse_retry_after
from braze_mixpanel_common.secrets import redact
from target_braze.ratelimit import RateLimiter

TRACK_PATH = "/users/track"
USER_AGENT = "target-braze (braze-mixpanel-singer)"


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(body: Any) -> str:
    """Encode a request body (Decimals, datetimes and sets included) as compact JSON."""
    return json.dumps(body, default=_default, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Outcome:
    """A final (non-retried) Braze answer.

    Attributes:
        status: HTTP status.
        body: Parsed JSON body (``{}`` when empty or not JSON).
        message: Braze's ``message`` field, redacted.
        rejected: For ``/users/track``: index of each rejected attribute object -> Braze's error.
    """

    status: int
    body: dict[str, Any]
    message: str
    rejected: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return 200 <= self.status < 300


class Stats:
    """Thread-safe request counters for the end-of-run summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0

    def add(self, name: str, amount: int = 1) -> None:
        """Increment counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)


class BrazeClient:
    """Posts JSON to one Braze REST instance with rate limiting and retries.

    Args:
        rest_endpoint: Instance URL, e.g. ``https://rest.iad-01.braze.com``.
        api_key: REST API key (Bearer) for ``/users/track``; may be None in partner mode.
        limiter: Shared request budget.
        secrets: Every secret value to redact from messages.
        clock: Time source (a fake one in tests).
        backoff: Retry policy for 429 without headers, 5xx and connection errors.
        timeout: Seconds per HTTP request.
    """

    def __init__(
        self,
        rest_endpoint: str,
        api_key: str | None,
        *,
        limiter: RateLimiter,
        secrets: Iterable[str | None] = (),
        clock: Clock | None = None,
        backoff: BackoffPolicy | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = rest_endpoint.rstrip("/")
        self._api_key = api_key
        self.limiter = limiter
        self.clock = clock or SystemClock()
        self.backoff = backoff or BackoffPolicy(
            initial=1.0, maximum=60.0, jitter=(0.0, 1.0), max_attempts=8
        )
        self.timeout = timeout
        self.stats = Stats()
        self._secrets = [s for s in (api_key, *secrets) if s]
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"BrazeClient(base_url={self.base_url!r})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.verify = True  # TLS verification is never turned off
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    # -- public endpoints -------------------------------------------------------------------

    def users_track(self, attributes: list[dict[str, Any]]) -> Outcome:
        """POST attribute objects (at most 75) to ``/users/track``.

        Returns:
            The outcome; ``rejected`` maps object indexes to Braze's per-object errors. A 400
            without per-object errors rejects every object with Braze's message.
        """
        headers = {"Authorization": f"Bearer {self._api_key}"}
        outcome = self._post(TRACK_PATH, {"attributes": attributes}, headers)
        errors = outcome.body.get("errors") if isinstance(outcome.body, dict) else None
        for error in errors or []:
            if isinstance(error, dict) and isinstance(error.get("index"), int):
                if error.get("input_array", "attributes") != "attributes":
                    continue
                text = str(error.get("type") or error.get("message") or outcome.message)
                outcome.rejected[error["index"]] = redact(text, self._secrets)
        if outcome.status == 400 and not outcome.rejected:
            reason = outcome.message or "Bad Request"
            if errors:
                reason = f"{reason}: {redact(dumps(errors), self._secrets)}"
            outcome.rejected = dict.fromkeys(range(len(attributes)), reason)
        elif not outcome.ok and outcome.status != 400:
            raise self._fatal(TRACK_PATH, outcome)
        return outcome

    def partner_post(self, path: str, body: dict[str, Any]) -> Outcome:
        """POST a partner cohort-import body (credentials are inside ``body``).

        Returns:
            The outcome (2xx or 400); 401/403/404 raise :class:`DestinationError`.
        """
        outcome = self._post(path, body, {})
        if not outcome.ok and outcome.status != 400:
            raise self._fatal(path, outcome)
        return outcome

    # -- transport --------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Outcome:
        url = self.base_url + path
        payload = dumps(body).encode("utf-8")
        headers = {**headers, "Content-Type": "application/json"}
        last = ""
        attempts = self.backoff.max_attempts
        for attempt in range(1, attempts + 1):
            self.limiter.acquire()
            self.stats.add("requests")
            try:
                response = self._session().post(
                    url, data=payload, headers=headers, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"connection error ({type(exc).__name__})"
                self._retry_wait(attempt, attempts, None, everyone=False)
                continue
            self._note_budget(response)
            if response.status_code == 429:
                self.stats.add("rate_limited")
                last = "429 Rate Limited"
                self._retry_wait(attempt, attempts, self._reset_wait(response), everyone=True)
                continue
            if response.status_code >= 500:
                last = f"{response.status_code} {response.reason}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                self._retry_wait(attempt, attempts, retry_after, everyone=False)
                continue
            return self._outcome(response)
        raise DestinationError(
            f"Braze {path} still failing after {attempts} attempts (last: {last}). Nothing "
            "unconfirmed was recorded in the ledger; the next run resends it."
        )

    def _retry_wait(
        self, attempt: int, attempts: int, wait: float | None, *, everyone: bool
    ) -> None:
        """Wait before the next try; a 429 pauses every thread, other faults only this one."""
        if attempt >= attempts:
            return
        self.stats.add("retries")
        delay = self.backoff.delay(attempt, wait)
        if everyone:
            self.limiter.pause(delay)
        else:
            self.clock.sleep(delay)

    def _reset_wait(self, response: requests.Response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset")
        if reset:
            try:
                return max(float(reset) - self.clock.time(), 0.0) + 0.05
            except ValueError:
                pass
        return parse_retry_after(response.headers.get("Retry-After"))

    def _note_budget(self, response: requests.Response) -> None:
        """Pause everyone when Braze says the budget of this window is spent."""
        if response.headers.get("X-RateLimit-Remaining") == "0":
            wait = self._reset_wait(response)
            if wait:
                self.limiter.pause(wait)

    def _outcome(self, response: requests.Response) -> Outcome:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {"message": response.text[:500]}
        if not isinstance(body, dict):
            body = {"message": str(body)}
        message = redact(str(body.get("message") or ""), self._secrets)
        return Outcome(response.status_code, body, message)

    def _fatal(self, path: str, outcome: Outcome) -> DestinationError:
        status, message = outcome.status, outcome.message
        partner = path.startswith("/partners/")
        if status == 401 and partner:
            low = message.lower()
            if "partner api key" in low:
                hint = "check 'partner_api_key' (Braze issues US and EU partner keys separately)"
            elif "not enabled" in low:
                hint = (
                    "the partner in 'partner_name' is not enabled for the workspace that issued "
                    "'data_import_key'; enable the partner in Braze's Technology Partners page"
                )
            else:
                hint = "check 'data_import_key' (the partner's Data Import Key in Braze)"
            return DestinationError(f"Braze answered 401 for {path}: {hint}.")
        if status == 401:
            return DestinationError(
                "Braze answered 401 Unauthorized: check 'api_key' (a REST API key of this "
                "workspace, without quotes) and that 'rest_endpoint' "
                f"({self.base_url}) is the REST endpoint of your Braze instance."
            )
        if status == 403:
            return DestinationError(
                f"Braze answered 403 ({message or 'Forbidden'}): give the key in 'api_key' the "
                "'users.track' permission and check that the workspace is active."
            )
        if status == 404:
            setting = "'rest_endpoint' and 'partner_name'" if partner else "'rest_endpoint'"
            return DestinationError(
                f"Braze answered 404 Not Found for {self.base_url}{path}: check {setting}."
            )
        return DestinationError(f"Braze answered {status} for {path}: {message or 'no message'}.")
