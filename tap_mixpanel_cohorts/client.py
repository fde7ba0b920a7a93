"""Mixpanel's query API: its two endpoints, what its answers mean, and the query budget.

Sending and retrying (429 and 5xx answers, broken connections, a 200 whose body is not JSON) are
the shared :class:`~braze_mixpanel_common.http.HttpCaller`'s; the query budget is the shared
:class:`~braze_mixpanel_common.ratelimit.RateLimiter`. Credentials travel only in the
``Authorization`` header; URLs carry nothing but ``project_id`` and ``workspace_id``, so a URL in a
log or an error message never reveals a secret.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from braze_mixpanel_common.clock import Clock, SystemClock
from braze_mixpanel_common.errors import ConfigurationError, SourceError
from braze_mixpanel_common.http import (
    HttpCaller,
    RetryBounds,
    RetryPolicy,
    error_text,
    request_timeout,
)
from braze_mixpanel_common.ratelimit import RateLimiter
from braze_mixpanel_common.retry import BackoffPolicy
from tap_mixpanel_cohorts.settings import DEFAULT_PAGE_SIZE, Settings

COHORTS_PATH = "/api/query/cohorts/list"
ENGAGE_PATH = "/api/query/engage"
BUDGET_WINDOW_SECONDS = 3600.0  # Mixpanel counts queries per sliding hour
USER_AGENT = "tap-mixpanel-cohorts/0.1 (+singer-sdk)"
INCOMPLETE = "The run is incomplete: no snapshot is activated."


class MixpanelAuthError(ConfigurationError):
    """Mixpanel refused the credentials (401) or the access (403); the message names settings."""


class MixpanelQueryError(SourceError):
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


def retry_policy(bounds: RetryBounds | None = None) -> RetryPolicy:
    """What the query API retries: 429 and 5xx answers, with longer waits for 429.

    ``bounds`` (the ``retry_max_*`` settings) cap both.
    """
    return RetryPolicy(
        backoff=BackoffPolicy(),
        # The query API's limit is hourly: 429 retries wait longer than 5xx ones, and together
        # (30 s doubling to 600 s, 12 tries: about 75 min) they outlast a full window spent by
        # another client of the same project.
        rate_limited=BackoffPolicy(initial=30.0, maximum=600.0, max_attempts=12),
        retry_statuses=frozenset({429, 500, 502, 503, 504}),
        bounds=bounds or RetryBounds(),
    )


class MixpanelQueryClient:
    """Sends query-API requests within the query budget and says what Mixpanel's answers mean.

    Every request (``cohorts/list``, each ``engage`` page, each retry) takes one place in
    :attr:`limiter`: ``max_queries_per_hour`` per sliding hour, ``max_concurrent_queries`` at once.
    When the hourly budget is spent the tap waits, and logs when it continues and what remains.
    With ``count_follow_up_pages`` false, the pages after a cohort's first (same ``session_id``)
    hold a concurrency slot but take no place in the hourly budget.

    Args:
        settings: the tap's settings.
        logger: the tap's logger.
        clock: time source for the budget and backoff (a fake clock in tests).
    """

    def __init__(
        self, settings: Settings, logger: logging.Logger, *, clock: Clock | None = None
    ) -> None:
        if settings.auth is None:
            raise ConfigurationError(
                "The query API needs Mixpanel credentials; with 'source' webhook no query is made."
            )
        self.logger = logger
        self.auth = settings.auth
        self.page_size = settings.page_size
        self.count_follow_up_pages = settings.count_follow_up_pages
        self.base_url = settings.base_url
        self.clock: Clock = clock or SystemClock()
        self.remaining: Callable[[], str] | None = None
        """Describes the work left while a request waits; read for the budget's log line."""
        self.limiter = RateLimiter(
            settings.max_queries_per_hour,
            BUDGET_WINDOW_SECONDS,
            max_in_flight=settings.max_concurrent_queries,
            clock=self.clock,
            on_wait=self._budget_spent,
        )
        self.http = HttpCaller(
            "Mixpanel",
            logger,
            policy=retry_policy(settings.retry_bounds),
            limiter=self.limiter,
            clock=self.clock,
            redact=self.auth.redact,
            headers={**self.auth.headers, "User-Agent": USER_AGENT},
            timeout=request_timeout(settings.request_timeout),
            pool_size=settings.max_concurrent_queries,
            give_up=MixpanelQueryError,
        )

    def _budget_spent(self, wait: float) -> None:
        resume = datetime.fromtimestamp(self.clock.time() + wait, tz=UTC)
        self.logger.info(
            "Query budget spent (%d queries in the last hour, the limit set by "
            "'max_queries_per_hour'): waiting %.0f s, continuing at %s%s.",
            self.limiter.limit,
            wait,
            resume.strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"; {self.remaining()}" if self.remaining else "",
        )

    # ------------------------------------------------------------------ errors

    def _auth_error(self, response: requests.Response, path: str) -> MixpanelAuthError:
        detail = error_text(response, self.auth.redact)
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

    def _fatal(self, response: requests.Response, path: str) -> Exception:
        status = response.status_code
        if status in (401, 403):
            return self._auth_error(response, path)
        detail = error_text(response, self.auth.redact)
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

    # ------------------------------------------------------------------ requests

    def request(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        what: str,
        remaining: Callable[[], str] | None = None,
        counted: bool = True,
        method: str = "POST",
        consequence: str = INCOMPLETE,
    ) -> Any:
        """POST ``data`` (form-encoded) to ``path`` and return the decoded JSON answer.

        Args:
            path: the API path, e.g. ``/api/query/engage``.
            data: form fields (query parameters with ``method`` GET).
            what: a short description for log lines ("engage page 3 of cohort 7").
            remaining: describes the work left, for the budget's wait message.
            counted: False when the hourly budget does not count this request.
            method: GET for endpoints documented as GET (Aggregate Event Counts).
            consequence: what a failure means, appended to the give-up error.

        Raises:
            MixpanelAuthError: on 401/403.
            MixpanelQueryError: on any other error answer, or when the retries ran out.
        """
        bodies: list[Any] = []

        def unless_json(response: requests.Response) -> str | None:
            if response.status_code != 200:
                return None
            try:
                bodies.append(response.json())
            except ValueError:
                return "an answer that is not valid JSON"
            return None

        self.remaining = remaining
        try:
            fields = {"params": {**self.auth.params, **(data or {})}}
            if method != "GET":
                fields = {"params": self.auth.params, "data": data or {}}
            response = self.http.call(
                method,
                self.base_url + path,
                what=what,
                consequence=consequence,
                retry_answer=unless_json,
                counted=counted,
                **fields,
            )
        finally:
            self.remaining = None
        if response.status_code != 200:
            raise self._fatal(response, path)
        return bodies[-1]

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
        output_properties: Sequence[str],
        stats: PageStats,
        *,
        expected_members: int | None = None,
        pages_after: Callable[[], int] | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the ``results`` of each ``engage`` page of a cohort, page 0 onwards.

        Asks for ``page_size`` members per page (the parameter is only sent when the setting is
        not Mixpanel's documented 1000), then follows Mixpanel's algorithm: repeat with
        the first answer's ``session_id`` and ``page + 1`` while a page holds as many results as
        the answer's ``page_size``. If a follow-up page is refused
        because the session expired, the cohort restarts from page 0 once (members already
        emitted are emitted again; consumers key on cohort_id + distinct_id).

        Args:
            cohort_id: the cohort to read.
            output_properties: profile properties to ask for.
            stats: filled with pages, queries and the answer's ``total``/``page_size``.
            expected_members: the cohort's ``count``, for progress estimates until page 0
                reports ``total``.
            pages_after: estimate of the pages the cohorts after this one need (for logs).
            filters: more ``engage`` fields that narrow the cohort (``distinct_ids``,
                ``where``), e.g. to ask about a few users only.
        """
        base = {
            **(filters or {}),
            "filter_by_cohort": json.dumps({"id": cohort_id}),
            "output_properties": json.dumps(list(output_properties)),
        }
        if self.page_size != DEFAULT_PAGE_SIZE:
            # Undocumented request parameter: only sent when the user asks for another size.
            base["page_size"] = str(self.page_size)
        page = 0
        session_id: str | None = None
        while True:

            def remaining(page: int = page) -> str:
                size = stats.page_size or self.page_size
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
            used_before = self.limiter.used
            try:
                body = self.request(
                    ENGAGE_PATH,
                    data,
                    what=f"engage page {page} of cohort {cohort_id}",
                    remaining=remaining,
                    counted=page == 0 or self.count_follow_up_pages,
                )
            except MixpanelQueryError as exc:
                stats.queries += self.limiter.used - used_before
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
            stats.queries += self.limiter.used - used_before
            results = self._engage_results(body, cohort_id, page, stats)
            if page == 0:
                session_id = body.get("session_id")
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

    def _engage_results(
        self, body: Any, cohort_id: int, page: int, stats: PageStats
    ) -> list[dict[str, Any]]:
        """The ``results`` of an engage answer, checked.

        Its ``total`` (page 0) and ``page_size`` go to ``stats``, which counts the page.
        """
        if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
            raise MixpanelQueryError(
                f"Mixpanel engage answered an unexpected body for cohort {cohort_id}."
            )
        if body.get("status", "ok") != "ok":
            raise MixpanelQueryError(
                f"Mixpanel engage answered status {body.get('status')!r} for cohort "
                f"{cohort_id}: {self.auth.redact(str(body.get('error', '')))[:300]}"
            )
        if page == 0 and body.get("total") is not None:
            stats.total = _as_int(body.get("total"))
        if body.get("page_size") is not None:
            stats.page_size = _as_int(body.get("page_size"))
        stats.pages += 1
        results: list[dict[str, Any]] = body.get("results") or []
        return results


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
