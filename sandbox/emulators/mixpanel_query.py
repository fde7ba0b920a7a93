"""A local emulator of Mixpanel's query API: ``cohorts/list``, ``engage`` and ``events``.

``events`` (Aggregate Event Counts) is :mod:`sandbox.emulators.mixpanel_event_counts`, counting
the events given as ``events`` (the ``/import`` emulator's store), behind the same auth and
query-rate limit.

It implements the documented contract of the Query API: authentication
(https://developer.mixpanel.com/reference/query-api-authentication), List Saved Cohorts
(https://developer.mixpanel.com/reference/cohorts-list), Query Profiles
(https://developer.mixpanel.com/reference/engage-query) and the rate limits
(https://developer.mixpanel.com/reference/rate-limits):

- Basic auth with a service account (``username:secret`` + ``project_id`` query parameter) or the
  legacy project secret (``secret:``); wrong credentials get a 401 with Mixpanel's body, a service
  account asking for another project gets a 403.
- ``cohorts/list`` answers a bare JSON array (GET or POST).
- ``engage`` takes a form-encoded body (or query parameters): ``filter_by_cohort`` (``{"id": N}``),
  ``output_properties`` (JSON array), ``page`` + ``session_id`` pagination (pages start at 0; a page
  above 0 needs a known ``session_id``, else 400), ``include_all_users``, and the id filters
  ``distinct_ids`` and ``where`` (:mod:`sandbox.emulators.mixpanel_engage_filter`). Answers carry
  ``page``, ``page_size``, ``session_id``, ``status`` and ``results``; ``total`` is only on page 0.
- ``page_size`` as a request parameter (reported, not documented): users of other connectors
  report Mixpanel serving larger pages when asked; the emulator honours a requested size up to
  ``max_page_size`` (default 10,000, the cap a third-party mirror of Mixpanel's docs states) and
  keeps it for every page of the session. Without the parameter it serves ``page_size`` (1000).
- The query rate limit: at most ``max_queries_per_hour`` queries in any sliding hour and
  ``max_concurrent`` at once per project, answered with Mixpanel's 429 body. With
  ``count_follow_up_pages=False`` the hourly window counts only each engage session's first page
  (what Mixpanel support has told connector users; the documented rule counts every query).

Cohorts and profiles come from data (:meth:`MixpanelQueryEmulator.from_data`), so a demo can build
cohorts from imported events. Large cohorts can be generated lazily (``"generate": {"count": N}``),
so a cohort of a million members costs no memory.

Run it as a command::

    python -m sandbox.emulators.mixpanel_query --port 8765 --cohorts cohorts.json

Data file format (all keys optional except ``cohorts``)::

    {"project_id": 12345,
     "service_accounts": {"sa-user": "sa-secret"},
     "api_secret": "legacy-secret",
     "page_size": 1000,
     "profiles": {"u1": {"$braze_external_id": "b1", "$email": "u1@example.com"}},
     "cohorts": [
       {"id": 1, "name": "Buyers", "description": "", "created": "2024-01-02 03:04:05",
        "is_visible": 1, "members": ["u1", "u2"]},
       {"id": 2, "name": "Big", "generate": {"count": 2500, "prefix": "big-",
                                             "no_external_id_every": 10, "int_ids": false}}
     ]}
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import json
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from braze_mixpanel_common.clock import Clock, SystemClock
from sandbox.emulators.mixpanel_engage_filter import FilterError, IdFilter, id_filter
from sandbox.emulators.mixpanel_event_counts import EventCountsError, event_counts
from sandbox.emulators.server import Emulator, Faults, Request, Response

DEFAULT_PROJECT_ID = 12345
DEFAULT_SERVICE_ACCOUNTS = {"sa-user.mp-service-account": "sa-secret"}
DEFAULT_API_SECRET = "legacy-project-secret"
RATE_DOC = "https://developer.mixpanel.com/reference/rate-limits"


@dataclass
class GeneratedMembers:
    """A lazily generated member list: ``prefix + index`` for ``count`` members.

    Every ``no_external_id_every``-th member (when > 0) has no ``$braze_external_id``; with
    ``int_ids`` the distinct ids are integers (Mixpanel's OpenAPI types them so).
    """

    count: int
    prefix: str = "user-"
    no_external_id_every: int = 0
    int_ids: bool = False
    start: int = 0

    def __len__(self) -> int:
        return self.count

    def slice(self, begin: int, end: int) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Members ``begin..end`` as ``(distinct_id, properties)``."""
        for index in range(max(begin, 0), min(end, self.count)):
            number = self.start + index
            distinct_id: Any = number if self.int_ids else f"{self.prefix}{number}"
            props: dict[str, Any] = {
                "$email": f"{self.prefix}{number}@example.com",
                "$name": f"User {number}",
                "plan": "pro" if number % 3 == 0 else "free",
            }
            if not (self.no_external_id_every and index % self.no_external_id_every == 0):
                props["$braze_external_id"] = f"ext-{self.prefix}{number}"
            yield distinct_id, props


@dataclass
class Cohort:
    """One cohort: its metadata and its members (explicit ids or generated)."""

    id: int
    name: str
    description: str = ""
    created: str = "2024-01-01 00:00:00"
    is_visible: int = 1
    members: list[Any] | GeneratedMembers = field(default_factory=list)

    def listing(self, project_id: int) -> dict[str, Any]:
        """The cohort as ``cohorts/list`` shows it."""
        return {
            "count": len(self.members),
            "is_visible": self.is_visible,
            "description": self.description,
            "created": self.created,
            "project_id": project_id,
            "id": self.id,
            "name": self.name,
        }


@dataclass
class _Session:
    cohort_id: int | None
    created: float
    page_size: int


class _BadRequestError(Exception):
    """An engage request Mixpanel answers with 400; the message is the body's ``error``."""


@dataclass
class _EngageQuery:
    """One checked engage request."""

    page: int
    cohort_id: int | None
    wanted: list[str] | None
    include_all: bool
    page_size: int
    session_id: str
    id_filter: IdFilter | None = None


def _page_number(params: dict[str, str]) -> int:
    try:
        page = int(params.get("page", "0") or 0)
    except ValueError:
        raise _BadRequestError("page must be an integer") from None
    if page < 0:
        raise _BadRequestError("page must be >= 0")
    return page


def _output_properties(params: dict[str, str]) -> list[str] | None:
    """The properties asked for, or None for all of them."""
    if "output_properties" not in params:
        return None
    try:
        return [str(p) for p in json.loads(params["output_properties"])]
    except (ValueError, TypeError):
        raise _BadRequestError("output_properties must be a JSON array") from None


class MixpanelQueryEmulator(Emulator):
    """The query-API emulator. Counters (``queries``, ``pages_served``...) let tests check usage."""

    def __init__(
        self,
        cohorts: Sequence[Cohort] = (),
        profiles: dict[str, dict[str, Any]] | None = None,
        *,
        project_id: int = DEFAULT_PROJECT_ID,
        service_accounts: dict[str, str] | None = None,
        api_secret: str | None = DEFAULT_API_SECRET,
        page_size: int = 1000,
        max_page_size: int = 10_000,
        count_follow_up_pages: bool = True,
        max_queries_per_hour: int = 60,
        max_concurrent: int = 5,
        query_seconds: float = 0.0,
        session_ttl: float | None = None,
        events: Callable[[], Iterable[dict[str, Any]]] | None = None,
        timezone: tzinfo = UTC,
        clock: Clock | None = None,
        faults: Faults | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(faults=faults, port=port)
        self.cohorts: dict[int, Cohort] = {c.id: c for c in cohorts}
        self.profiles: dict[str, dict[str, Any]] = dict(profiles or {})
        self.project_id = project_id
        self.service_accounts = dict(
            DEFAULT_SERVICE_ACCOUNTS if service_accounts is None else service_accounts
        )
        self.api_secret = api_secret
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.count_follow_up_pages = count_follow_up_pages
        self.max_queries_per_hour = max_queries_per_hour
        self.max_concurrent = max_concurrent
        self.query_seconds = query_seconds
        self.session_ttl = session_ttl
        self.clock: Clock = clock or SystemClock()
        self._window: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._sessions: dict[str, _Session] = {}
        # Usage counters for tests and the demo.
        self.queries: collections.Counter[str] = collections.Counter()
        self.pages_served: collections.Counter[int] = collections.Counter()
        self.rate_limited_count = 0
        self.max_in_flight = 0
        self.last_form: dict[str, str] = {}
        self.methods: collections.Counter[str] = collections.Counter()
        self.on_query: Callable[[Request], None] | None = None
        # Aggregate Event Counts counts these (e.g. the /import emulator's stored events).
        self.events = events or list
        self.timezone = timezone

    # ----------------------------------------------------------------- data loading

    @classmethod
    def from_data(cls, data: dict[str, Any], **kwargs: Any) -> MixpanelQueryEmulator:
        """Build an emulator from the JSON data format described in the module docstring."""
        cohorts = []
        for item in data.get("cohorts", []):
            gen = item.get("generate")
            members: list[Any] | GeneratedMembers = (
                GeneratedMembers(**gen) if gen else list(item.get("members", []))
            )
            cohorts.append(
                Cohort(
                    id=int(item["id"]),
                    name=str(item.get("name", f"Cohort {item['id']}")),
                    description=str(item.get("description", "")),
                    created=str(item.get("created", "2024-01-01 00:00:00")),
                    is_visible=int(item.get("is_visible", 1)),
                    members=members,
                )
            )
        for key in ("project_id", "service_accounts", "api_secret", "page_size"):
            if key in data:
                kwargs.setdefault(key, data[key])
        return cls(cohorts, data.get("profiles"), **kwargs)

    # ----------------------------------------------------------------- error bodies

    def _error(self, status: int, request: Request, message: str) -> Response:
        query = "&".join(f"{k}={v[0]}" for k, v in request.query.items())
        return Response(status, {"request": f"{request.path}?{query}", "error": message})

    def rate_limited(self) -> Response:
        """Mixpanel's 429 body for the query API (used for injected 429s too)."""
        with self.lock:
            running, last_hour = self._in_flight, len(self._window)
        return Response(
            429,
            {
                "request": "/api/query",
                "error": (
                    f"Query rate limit exceeded for project_id: {self.project_id}. "
                    f"{running}/{self.max_concurrent} queries running concurrently and "
                    f"{last_hour}/{self.max_queries_per_hour} queries running in the last hour. "
                    f"For more information, please consult our documentation at {RATE_DOC}"
                ),
            },
        )

    def server_error(self, status: int) -> Response:
        """A 5xx answer as Mixpanel's front end gives it."""
        return Response(status, {"error": "Internal server error", "status": "error"})

    # ----------------------------------------------------------------- auth

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return self._error(401, request, "Unauthorized: missing Basic authorization header")
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return self._error(401, request, "Unauthorized: malformed Basic authorization header")
        project = request.param("project_id")
        if user in self.service_accounts:
            if not secrets.compare_digest(password, self.service_accounts[user]):
                return self._error(401, request, "Invalid service account credentials")
            if not project:
                return self._error(
                    400, request, "project_id is required when using a service account"
                )
            if project != str(self.project_id):
                return self._error(
                    403,
                    request,
                    f"Permission denied: service account has no access to project {project}",
                )
            return None
        if self.api_secret and not password and secrets.compare_digest(user, self.api_secret):
            if project and project != str(self.project_id):
                return self._error(403, request, f"Project secret is not valid for {project}")
            return None
        return self._error(
            401,
            request,
            "Unauthorized, invalid project secret. See docs for more information: "
            "https://developer.mixpanel.com/reference/authentication#project-secret",
        )

    # ----------------------------------------------------------------- rate limit

    def _admit(self, counted: bool = True) -> bool:
        """Count a query against the sliding hour and the concurrency limit, or refuse it.

        Args:
            counted: False for a query the hourly window does not count (an engage follow-up
                page with ``count_follow_up_pages`` off); it still needs a concurrency slot.
        """
        with self.lock:
            now = self.clock.monotonic()
            while self._window and self._window[0] <= now - 3600.0:
                self._window.popleft()
            if (
                counted and len(self._window) >= self.max_queries_per_hour
            ) or self._in_flight >= self.max_concurrent:
                self.rate_limited_count += 1
                return False
            if counted:
                self._window.append(now)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return True

    def _done(self) -> None:
        with self.lock:
            self._in_flight -= 1

    # ----------------------------------------------------------------- dispatch

    def handle(self, request: Request) -> Response:
        """Route one request: auth, rate limit, then the endpoint."""
        path = request.path.rstrip("/")
        routes = {
            "/api/query/cohorts/list": self._cohorts_list,
            "/api/2.0/cohorts/list": self._cohorts_list,
            "/api/query/engage": self._engage,
            "/api/2.0/engage": self._engage,
            "/api/query/events": self._event_counts,
            "/api/2.0/events": self._event_counts,
        }
        route = routes.get(path)
        if route is None:
            return self._error(404, request, f"Unknown endpoint {request.path}")
        if request.method not in ("GET", "POST"):
            return self._error(405, request, "Method not allowed")
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if not self._admit(self._counted(path, request)):
            return self.rate_limited()
        try:
            with self.lock:
                self.queries[path.rsplit("/", 1)[-1]] += 1
                self.methods[request.method] += 1
            if self.on_query is not None:
                self.on_query(request)
            if self.query_seconds:
                threading.Event().wait(self.query_seconds)
            return route(request)
        finally:
            self._done()

    def _counted(self, path: str, request: Request) -> bool:
        """Whether the hourly window counts this query (see ``count_follow_up_pages``)."""
        if self.count_follow_up_pages or not path.endswith("/engage"):
            return True
        page = self._params(request).get("page", "0") or "0"
        return not (page.isdigit() and int(page) > 0)

    def _cohorts_list(self, request: Request) -> Response:
        with self.lock:
            listing = [c.listing(self.project_id) for c in self.cohorts.values()]
        return Response(200, listing)

    def _event_counts(self, request: Request) -> Response:
        if request.method != "GET":
            return self._error(405, request, "Method not allowed: GET /api/query/events")
        try:
            return Response(200, event_counts(self._params(request), self.events, self.timezone))
        except EventCountsError as exc:
            return self._error(400, request, str(exc))

    def _params(self, request: Request) -> dict[str, str]:
        params = {k: v[0] for k, v in request.query.items()}
        if request.body:
            params.update(request.form())
        return params

    def _engage(self, request: Request) -> Response:
        params = self._params(request)
        with self.lock:
            self.last_form = params
        try:
            query = self._engage_query(params)
        except _BadRequestError as exc:
            return self._error(400, request, str(exc))
        return Response(200, self._engage_page(query))

    def _engage_query(self, params: dict[str, str]) -> _EngageQuery:
        """The request's parameters, checked in Mixpanel's order (_BadRequestError on the first)."""
        page = _page_number(params)
        cohort_id = self._cohort_filter(params)
        wanted = _output_properties(params)
        include_all = params.get("include_all_users", "true").lower() != "false"
        page_size = self._page_size(params)
        try:
            kept = id_filter(params)
        except FilterError as exc:
            raise _BadRequestError(str(exc)) from None
        session_id, page_size = self._session(params.get("session_id"), page, cohort_id, page_size)
        return _EngageQuery(page, cohort_id, wanted, include_all, page_size, session_id, kept)

    def _cohort_filter(self, params: dict[str, str]) -> int | None:
        """The id of ``filter_by_cohort`` (an existing cohort), or None without one."""
        if "filter_by_cohort" not in params:
            return None
        if "behaviors" in params:
            raise _BadRequestError("behaviors and filter_by_cohort are mutually exclusive")
        try:
            raw_id = json.loads(params["filter_by_cohort"])["id"]
            cohort_id = int(raw_id[0] if isinstance(raw_id, list) else raw_id)
        except (ValueError, KeyError, TypeError, IndexError):
            raise _BadRequestError(
                'filter_by_cohort must be a JSON object like {"id": 12345}'
            ) from None
        if cohort_id not in self.cohorts:
            raise _BadRequestError(f"cohort {cohort_id} does not exist")
        return cohort_id

    def _page_size(self, params: dict[str, str]) -> int:
        """The requested page size (reported behaviour) or the default one."""
        raw = params.get("page_size")
        if not raw:
            return self.page_size
        size = int(raw) if raw.isdigit() else 0
        if not 1 <= size <= self.max_page_size:
            raise _BadRequestError(
                f"page_size must be an integer between 1 and {self.max_page_size}"
            )
        return size

    def _session(
        self, session_id: str | None, page: int, cohort_id: int | None, page_size: int
    ) -> tuple[str, int]:
        """(session id, page size): a new session on page 0, else the one the client names."""
        now = self.clock.monotonic()
        if page == 0 and not session_id:
            session_id = f"{int(self.clock.time())}-{secrets.token_hex(6).upper()}"
            with self.lock:
                self._sessions[session_id] = _Session(cohort_id, now, page_size)
            return session_id, page_size
        if not session_id:
            raise _BadRequestError("session_id is required when page > 0")
        with self.lock:
            session = self._sessions.get(session_id)
        expired = (
            session is not None
            and self.session_ttl is not None
            and now - session.created > self.session_ttl
        )
        if session is None or expired or session.cohort_id != cohort_id:
            raise _BadRequestError(f"Invalid or expired session_id: {session_id}")
        return session_id, session.page_size

    def _engage_page(self, query: _EngageQuery) -> dict[str, Any]:
        """The answer's body: one page of members with the wanted properties."""
        members = self._members(query.cohort_id, query.include_all, query.id_filter)
        begin = query.page * query.page_size
        results = []
        for distinct_id, props in members(begin, begin + query.page_size):
            wanted = query.wanted
            shown = props if wanted is None else {k: props[k] for k in wanted if k in props}
            results.append({"$distinct_id": distinct_id, "$properties": shown})
        if query.cohort_id is not None:
            with self.lock:
                self.pages_served[query.cohort_id] += 1
        body: dict[str, Any] = {
            "page": query.page,
            "page_size": query.page_size,
            "results": results,
            "session_id": query.session_id,
            "status": "ok",
        }
        if query.page == 0:
            body["total"] = members.total
        return body

    def _members(
        self, cohort_id: int | None, include_all: bool, kept: IdFilter | None = None
    ) -> _MemberView:
        with self.lock:
            if cohort_id is None:
                ids: list[Any] | GeneratedMembers = list(self.profiles)
            else:
                ids = self.cohorts[cohort_id].members
            profiles = self.profiles
        if kept is not None:
            everyone = (
                ids.slice(0, len(ids))
                if isinstance(ids, GeneratedMembers)
                else ((i, profiles.get(str(i), {})) for i in ids)
            )
            ids = [i for i, props in everyone if kept.keeps(i, props)]
        return _MemberView(ids, profiles, include_all)


class _MemberView:
    """Pages over a cohort's members, joining explicit ids with their profiles."""

    def __init__(
        self,
        ids: list[Any] | GeneratedMembers,
        profiles: dict[str, dict[str, Any]],
        include_all: bool,
    ) -> None:
        self.ids = ids
        self.profiles = profiles
        if not include_all and not isinstance(ids, GeneratedMembers):
            self.ids = [i for i in ids if str(i) in profiles]
        self.total = len(self.ids)

    def __call__(self, begin: int, end: int) -> Iterator[tuple[Any, dict[str, Any]]]:
        if isinstance(self.ids, GeneratedMembers):
            yield from self.ids.slice(begin, end)
            return
        for distinct_id in self.ids[begin:end]:
            yield distinct_id, dict(self.profiles.get(str(distinct_id), {}))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve the emulator until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cohorts", type=Path, help="JSON data file (see module docstring)")
    parser.add_argument("--max-queries-per-hour", type=int, default=60)
    parser.add_argument("--max-concurrent", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=None)
    parser.add_argument("--max-page-size", type=int, default=10_000)
    parser.add_argument(
        "--count-follow-up-pages",
        choices=("true", "false"),
        default="true",
        help="false: the hourly limit counts only each engage session's first page (reported)",
    )
    args = parser.parse_args(argv)
    data: dict[str, Any] = {}
    if args.cohorts:
        data = json.loads(args.cohorts.read_text(encoding="utf-8"))
    kwargs: dict[str, Any] = {
        "port": args.port,
        "max_queries_per_hour": args.max_queries_per_hour,
        "max_concurrent": args.max_concurrent,
        "max_page_size": args.max_page_size,
        "count_follow_up_pages": args.count_follow_up_pages == "true",
    }
    if args.page_size:
        kwargs["page_size"] = args.page_size
    emulator = MixpanelQueryEmulator.from_data(data, **kwargs)
    accounts = ", ".join(emulator.service_accounts) or "none"
    print(
        f"Mixpanel query emulator on {emulator.url} (project_id {emulator.project_id}, "
        f"service accounts: {accounts}, {len(emulator.cohorts)} cohorts)",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        emulator.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
