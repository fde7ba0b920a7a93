"""HTTP client for Braze's ``/users/track``, ``/users/export/ids`` and partner cohort import.

Requests go through the shared :class:`~braze_mixpanel_common.http.HttpCaller` and one
:class:`~braze_mixpanel_common.ratelimit.RateLimiter`. What is Braze's own: a 429 waits until
``X-RateLimit-Reset`` (epoch seconds), else ``Retry-After``, else backoff, pausing every thread;
an answer with ``X-RateLimit-Remaining: 0`` pauses every thread until that reset too; 5xx answers
and connection errors back off and retry; any other 4xx is returned (400: the caller
dead-letters) or raised as a :class:`DestinationError` that says what to check (401, 403, 404).
Secrets never appear in messages: Braze may echo a key in its error text, so bodies are redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from braze_mixpanel_common.clock import Clock
from braze_mixpanel_common.counters import Counters
from braze_mixpanel_common.encoding import dumps
from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.http import (
    HttpCaller,
    RetryBounds,
    RetryPolicy,
    request_timeout,
    retry_after_wait,
)
from braze_mixpanel_common.ratelimit import RateLimiter
from braze_mixpanel_common.retry import BackoffPolicy
from braze_mixpanel_common.secrets import REDACTED, redact

TRACK_PATH = "/users/track"
EXPORT_IDS_PATH = "/users/export/ids"
EXPORT_IDS_MAX = 50
"""External ids Braze accepts in one ``/users/export/ids`` request."""
USER_AGENT = "target-braze (braze-mixpanel-singer)"
RETRY_STATUSES = frozenset({429, *range(500, 600)})
CREDENTIAL_FIELDS = ("partner_api_key", "client_secret")
"""Partner request body fields that hold credentials."""
NOT_RECORDED = "Nothing unconfirmed was recorded in the ledger; the next run resends it."
_RESET_MARGIN = 0.05


def default_backoff() -> BackoffPolicy:
    """Braze's retry policy: 1 s doubling to 60 s, plus up to 1 s of jitter, 8 attempts."""
    return BackoffPolicy(initial=1.0, maximum=60.0, jitter=(0.0, 1.0), max_attempts=8)


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


class BrazeClient:
    """Posts JSON to one Braze REST instance with rate limiting and retries.

    Args:
        rest_endpoint: Instance URL, e.g. ``https://rest.iad-01.braze.com``.
        api_key: REST API key (Bearer) for ``/users/track``; may be None in partner mode.
        limiter: Shared request budget.
        secrets: Every secret value to redact from messages.
        clock: Time source (a fake one in tests).
        backoff: Retry policy for 429 without headers, 5xx and connection errors.
        retry_bounds: The user's bounds on attempts and seconds per request.
        timeout: Seconds per HTTP request.
        pool_size: Connections kept open (the number of sending threads).
        counters: Receives ``requests``, ``retries``, ``rate_limited`` and ``waited_s``.
        logger: Where retries are announced.
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
        retry_bounds: RetryBounds | None = None,
        timeout: float = 60.0,
        pool_size: int = 8,
        counters: Counters | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.base_url = rest_endpoint.rstrip("/")
        self._api_key = api_key
        self.limiter = limiter
        self._secrets = tuple(dict.fromkeys(s for s in (api_key, *secrets) if s))
        self.http = HttpCaller(
            "Braze",
            logger or logging.getLogger("target-braze"),
            policy=RetryPolicy(
                backoff=backoff or default_backoff(),
                retry_statuses=RETRY_STATUSES,
                bounds=retry_bounds or RetryBounds(),
            ),
            limiter=limiter,
            counters=counters,
            clock=clock,
            redact=self.redact,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            timeout=request_timeout(timeout),
            pool_size=pool_size,
            server_wait=self._server_wait,
            on_answer=self._note_budget,
        )
        self.counters = self.http.counters
        self.clock = self.http.clock

    def __repr__(self) -> str:
        return f"BrazeClient(base_url={self.base_url!r})"

    def redact(self, text: str) -> str:
        """``text`` without any configured secret."""
        return redact(text, self._secrets)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    # -- endpoints --------------------------------------------------------------------------

    def users_track(self, attributes: list[dict[str, Any]]) -> Outcome:
        """POST attribute objects (at most 75) to ``/users/track``.

        Returns:
            The outcome; ``rejected`` maps object indexes to Braze's per-object errors. A 400
            without per-object errors rejects every object with Braze's message.
        """
        headers = {"Authorization": f"Bearer {self._api_key}"}
        outcome = self._post(TRACK_PATH, {"attributes": attributes}, headers)
        errors = outcome.body.get("errors")
        for error in errors or []:
            if isinstance(error, dict) and isinstance(error.get("index"), int):
                if error.get("input_array", "attributes") != "attributes":
                    continue
                text = str(error.get("type") or error.get("message") or outcome.message)
                outcome.rejected[error["index"]] = self.redact(text)
        if outcome.status == 400 and not outcome.rejected:
            reason = outcome.message or "Bad Request"
            if errors:
                reason = f"{reason}: {self.redact(dumps(errors))}"
            outcome.rejected = dict.fromkeys(range(len(attributes)), reason)
        elif not outcome.ok and outcome.status != 400:
            raise self._fatal(TRACK_PATH, outcome)
        return outcome

    def export_ids(self, external_ids: list[str], fields: list[str]) -> Outcome:
        """POST at most 50 external ids to ``/users/export/ids`` (read-only; reconciliation).

        Returns:
            The 2xx outcome: ``body["users"]`` holds the users found with ``fields``,
            ``body["invalid_user_ids"]`` the ids Braze does not know.

        Raises:
            DestinationError: on any error answer (Braze's message, redacted, included).
        """
        if not 0 < len(external_ids) <= EXPORT_IDS_MAX:
            raise ValueError(f"export_ids takes 1 to {EXPORT_IDS_MAX} ids")
        headers = {"Authorization": f"Bearer {self._api_key}"}
        body = {"external_ids": external_ids, "fields_to_export": fields}
        outcome = self._post(EXPORT_IDS_PATH, body, headers, consequence="")
        if not outcome.ok:
            raise self._fatal(EXPORT_IDS_PATH, outcome)
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

    def dry_run_line(self, path: str, body: dict[str, Any]) -> str:
        """The line a dry run writes instead of sending: method, URL and body, secrets replaced."""
        clean = {k: REDACTED if k in CREDENTIAL_FIELDS else v for k, v in body.items()}
        return self.redact(dumps({"method": "POST", "url": self.base_url + path, "body": clean}))

    # -- Braze's answers --------------------------------------------------------------------

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        consequence: str = NOT_RECORDED,
    ) -> Outcome:
        response = self.http.call(
            "POST",
            self.base_url + path,
            what=path,
            consequence=consequence,
            data=dumps(body).encode("utf-8"),
            headers=headers,
        )
        return self._outcome(response)

    def _server_wait(self, response: requests.Response, clock: Clock) -> float | None:
        """Seconds to wait before retrying ``response``: a 429 until Braze's reset time."""
        if response.status_code == 429:
            return self._reset_wait(response)
        return retry_after_wait(response, clock)

    def _reset_wait(self, response: requests.Response) -> float | None:
        reset = response.headers.get("X-RateLimit-Reset")
        if reset:
            try:
                return max(float(reset) - self.clock.time(), 0.0) + _RESET_MARGIN
            except ValueError:
                pass
        return retry_after_wait(response, self.clock)

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
        message = self.redact(str(body.get("message") or ""))
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
            permission = "users.export.ids" if path == EXPORT_IDS_PATH else "users.track"
            return DestinationError(
                f"Braze answered 403 ({message or 'Forbidden'}): give the key in 'api_key' the "
                f"'{permission}' permission and check that the workspace is active."
            )
        if status == 404:
            setting = "'rest_endpoint' and 'partner_name'" if partner else "'rest_endpoint'"
            return DestinationError(
                f"Braze answered 404 Not Found for {self.base_url}{path}: check {setting}."
            )
        return DestinationError(f"Braze answered {status} for {path}: {message or 'no message'}.")
