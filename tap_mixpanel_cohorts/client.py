"""HTTP client for Mixpanel's query API: auth, region, the query budget, retries, pagination.

Credentials travel only in the ``Authorization`` header; URLs carry nothing but ``project_id`` and
``workspace_id``, so a URL in a log or an error message never reveals a secret.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from braze_mixpanel_common.errors import ConfigurationError
from braze_mixpanel_common.mixpanel import QUERY_HOSTS, resolve_auth, resolve_base_url
from braze_mixpanel_common.retry import BackoffPolicy, Clock, SystemClock, parse_retry_after
from tap_mixpanel_cohorts.budget import QueryBudget

COHORTS_PATH = "/api/query/cohorts/list"
ENGAGE_PATH = "/api/query/engage"
DEFAULT_PAGE_SIZE = 1000  # Mixpanel's documented page size for /engage answers
RETRY_STATUSES = {500, 502, 503, 504}
TIMEOUT = (15.0, 300.0)
USER_AGENT = "tap-mixpanel-cohorts/0.1 (+singer-sdk)"


class MixpanelAuthError(ConfigurationError):
    """Mixpanel refused the credentials (401) or the access (403); the message names settings."""


class MixpanelQueryError(RuntimeError):
    """Mixpanel answered an error the tap cannot recover from, or retries ran out.

    Args:
        message: one line for the log.
        status: the HTTP status, when the error is an answer.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PageStats:
    """What one cohort's pagination cost."""

    pages: int = 0
    queries: int = 0
    total: int | None = None
    page_size: int | None = None
    restarts: int = 0


class MixpanelQueryClient:
    """Sends query-API requests within the budget and retries transient failures.

    Args:
        config: the tap's settings.
        logger: the tap's logger.
        clock: time source for the budget and backoff (a fake clock in tests).
        session: an optional ``requests.Session`` (TLS verification stays on).
    """

    def __init__(
        self,
        config: dict[str, Any],
        logger: logging.Logger,
        *,
        clock: Clock | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.logger = logger
        self.clock: Clock = clock or SystemClock()
        self.auth = resolve_auth(config, allow_project_token=False, logger=logger)
        self.base_url = resolve_base_url(config, QUERY_HOSTS)
        self.budget = QueryBudget(
            int(config.get("max_queries_per_hour") or 60),
            int(config.get("max_concurrent_queries") or 5),
            self.clock,
            logger,
        )
        self.retry_policy = BackoffPolicy()
        # The query API's limit is hourly: 429 retries wait longer than 5xx ones, and together
        # (30 s doubling to 600 s, 12 tries: about 75 min) they outlast a full window spent by
        # another client of the same project.
        self.rate_limit_policy = BackoffPolicy(initial=30.0, maximum=600.0, max_attempts=12)
        self.session = session or requests.Session()
        self.session.verify = True
        self.session.headers.update({**self.auth.headers, "User-Agent": USER_AGENT})

    # ------------------------------------------------------------------ errors

    def _error_text(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        text = body.get("error") if isinstance(body, dict) else None
        text = str(text or response.text or response.reason or "")
        return self.auth.redact(" ".join(text.split()))[:300]

    def _auth_error(self, response: requests.Response, path: str) -> MixpanelAuthError:
        detail = self._error_text(response)
        if self.auth.kind == "service_account":
            settings_401 = "'service_account_username' and 'service_account_secret'"
        else:
            settings_401 = "'api_secret' (the legacy project secret)"
        if response.status_code == 401:
            return MixpanelAuthError(
                f"Mixpanel refused the credentials (401 on {path}: {detail}). Check {settings_401}."
            )
        scope = "'project_id'" + (" and 'workspace_id'" if self.auth.workspace_id else "")
        who = (
            "the service account in 'service_account_username'"
            if self.auth.kind == "service_account"
            else "the secret in 'api_secret'"
        )
        return MixpanelAuthError(
            f"Mixpanel denied access (403 on {path}: {detail}). Check that {who} may read the "
            f"project in {scope} (and, for a service account, that it has a role in that "
            "project), and that 'region' / 'api_url' match the project's data residency."
        )

    # ------------------------------------------------------------------ requests

    def request(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        what: str,
        remaining: Callable[[], str] | None = None,
    ) -> Any:
        """POST ``data`` (form-encoded) to ``path`` and return the decoded JSON answer.

        Each attempt takes one slot of the query budget. 429 and 5xx answers, timeouts and
        broken connections are retried with backoff; 401/403 raise :class:`MixpanelAuthError`.

        Args:
            path: the API path, e.g. ``/api/query/engage``.
            data: form fields.
            what: a short description for log lines ("engage page 3 of cohort 7").
            remaining: describes the work left, for the budget's wait message.
        """
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            policy = self.retry_policy
            retry_after: float | None = None
            reason: str
            try:
                with self.budget.query(remaining):
                    response = self.session.post(
                        url, params=self.auth.params, data=data or {}, timeout=TIMEOUT
                    )
                status = response.status_code
                if status == 200:
                    try:
                        return response.json()
                    except ValueError:
                        reason = "an answer that is not valid JSON"
                elif status == 429:
                    policy = self.rate_limit_policy
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    reason = f"429 ({self._error_text(response)})"
                elif status in RETRY_STATUSES:
                    reason = f"{status} ({self._error_text(response)})"
                else:
                    raise self._fatal(response, path)
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = f"a network error ({type(exc).__name__})"
            if attempt >= policy.max_attempts:
                raise MixpanelQueryError(
                    f"Mixpanel query API: {what} failed {attempt} times, last with {reason}; "
                    "giving up. The run is incomplete: no snapshot is activated."
                )
            delay = policy.delay(attempt, retry_after)
            self.logger.warning(
                "Mixpanel answered %s on %s; retrying in %.0f s (attempt %d of %d).",
                reason,
                what,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            self.clock.sleep(delay)

    def _fatal(self, response: requests.Response, path: str) -> Exception:
        status = response.status_code
        if status in (401, 403):
            return self._auth_error(response, path)
        detail = self._error_text(response)
        if status == 402:
            return MixpanelQueryError(
                f"Mixpanel answered 402 Payment Required on {path} ({detail}): the project's "
                "plan does not include Query API access.",
                status,
            )
        if status == 404:
            return MixpanelQueryError(
                f"Mixpanel answered 404 on {path} ({detail}). Check 'api_url' and 'region'.",
                status,
            )
        return MixpanelQueryError(f"Mixpanel answered {status} on {path}: {detail}", status)

    # ------------------------------------------------------------------ endpoints

    def list_cohorts(self) -> list[dict[str, Any]]:
        """Every cohort of the project, as ``/cohorts/list`` returns them."""
        body = self.request(COHORTS_PATH, what="cohorts/list")
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            body = body["results"]
        if not isinstance(body, list):
            raise MixpanelQueryError(
                f"Mixpanel cohorts/list answered {type(body).__name__}, expected a JSON array."
            )
        return [c for c in body if isinstance(c, dict)]

    def iter_member_pages(
        self,
        cohort_id: int,
        output_properties: list[str],
        stats: PageStats,
        *,
        expected_members: int | None = None,
        pages_after: Callable[[], int] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the ``results`` of each ``engage`` page of a cohort, page 0 onwards.

        Follows Mixpanel's algorithm: repeat with the first answer's ``session_id`` and
        ``page + 1`` while a page holds ``page_size`` results. If a follow-up page is refused
        because the session expired, the cohort restarts from page 0 once (members already
        emitted are emitted again; consumers key on cohort_id + distinct_id).

        Args:
            cohort_id: the cohort to read.
            output_properties: profile properties to ask for.
            stats: filled with pages, queries and the answer's ``total``/``page_size``.
            expected_members: the cohort's ``count``, for progress estimates until page 0
                reports ``total``.
            pages_after: estimate of the pages the cohorts after this one need (for logs).
        """
        base = {
            "filter_by_cohort": json.dumps({"id": cohort_id}),
            "output_properties": json.dumps(output_properties),
        }
        page = 0
        session_id: str | None = None
        while True:

            def remaining(page: int = page) -> str:
                size = stats.page_size or DEFAULT_PAGE_SIZE
                expected = stats.total if stats.total is not None else expected_members
                here = max(math.ceil((expected or 0) / size) - page, 1)
                later = pages_after() if pages_after else 0
                return (
                    f"about {here} page(s) remain for cohort {cohort_id}"
                    f" and {later} for the cohorts after it"
                )

            data = dict(base)
            if page > 0:
                data["page"] = str(page)
                data["session_id"] = str(session_id)
            used_before = self.budget.used
            try:
                body = self.request(
                    ENGAGE_PATH,
                    data,
                    what=f"engage page {page} of cohort {cohort_id}",
                    remaining=remaining,
                )
            except MixpanelQueryError as exc:
                stats.queries += self.budget.used - used_before
                if page > 0 and stats.restarts == 0 and exc.status == 400:
                    stats.restarts += 1
                    self.logger.warning(
                        "Cohort %s: Mixpanel refused page %d (%s); the session probably "
                        "expired. Restarting the cohort from page 0 once.",
                        cohort_id,
                        page,
                        exc,
                    )
                    page, session_id = 0, None
                    continue
                raise
            stats.queries += self.budget.used - used_before
            if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
                raise MixpanelQueryError(
                    f"Mixpanel engage answered an unexpected body for cohort {cohort_id}."
                )
            if body.get("status", "ok") != "ok":
                raise MixpanelQueryError(
                    f"Mixpanel engage answered status {body.get('status')!r} for cohort "
                    f"{cohort_id}: {self.auth.redact(str(body.get('error', '')))[:300]}"
                )
            results: list[dict[str, Any]] = body.get("results") or []
            if page == 0:
                session_id = body.get("session_id")
                if body.get("total") is not None:
                    stats.total = _as_int(body.get("total"))
            if body.get("page_size") is not None:
                stats.page_size = _as_int(body.get("page_size"))
            stats.pages += 1
            yield results
            if not results:
                return
            if stats.page_size and len(results) < stats.page_size:
                return
            if not session_id:
                raise MixpanelQueryError(
                    f"Mixpanel engage answered a full page for cohort {cohort_id} without a "
                    "session_id, so the next page cannot be requested."
                )
            page += 1


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
