"""A local Braze REST emulator: ``/users/track``, ``/users/export/ids`` and partner cohort import.

Implements the documented contract: Bearer auth (401 ``Invalid API key``), at most 75 attribute
objects per request (400 ``Max Input Length Exceeded``), per-object errors in a non-fatal
``{"message": "success", "errors": [...]}`` answer, array attributes as ordered sets with
``add``/``remove``/replace, ``_update_existing_only``, the 3,000 requests / 3 s limit with
``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (epoch seconds) and 429, and the partner endpoints
with their documented 400/401 messages and the 1,000-id rule. ``/users/export/ids`` takes at most
50 ``external_ids`` (400), requires ``fields_to_export`` (as for workspaces onboarded after August
2024; 400) and has its own limit, 250 requests a minute with the same headers and 429; custom
attributes come back under ``custom_attributes`` and unknown ids in ``invalid_user_ids``. Braze
documents the limits but not the text of these 400s, so only the status is to be relied on.
Faults come from the base class.

Braze's docs it follows: https://www.braze.com/docs/api/endpoints/user_data/post_user_track/,
https://www.braze.com/docs/api/objects_filters/user_attributes_object/,
https://www.braze.com/docs/api/api_limits/,
https://www.braze.com/docs/api/endpoints/export/user_data/post_users_identifier/ and
https://www.braze.com/docs/partners/isv_partners/cohort_import/.

Run it for a demo: ``python -m sandbox.emulators.braze --port 8790 --api-key demo-key``; the users'
attributes are at ``GET /_emulator/users``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import threading
from collections.abc import Iterable
from typing import Any

from braze_mixpanel_common.clock import Clock, SystemClock
from sandbox.emulators.server import Emulator, Faults, Request, Response

IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email", "phone")
_NOT_ATTRIBUTES = frozenset((*IDENTIFIERS, "_update_existing_only"))
_ARRAY_OPERATIONS = frozenset(("add", "remove"))
ID_REQUIRED = "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
TOO_MANY_IDS = "Only 1,000 `user_ids`, `device_ids`, and `aliases` are allowed per request"
EXPORT_MAX_IDS = 50
TOO_MANY_EXPORT_IDS = "Too many external_ids: at most 50 per request"
FIELDS_REQUIRED = "fields_to_export is required"
STANDARD_FIELDS = frozenset(
    (
        "apps", "attributed_campaign", "attributed_source", "attributed_adgroup", "attributed_ad",
        "braze_id", "campaigns_received", "canvases_received", "cards_clicked", "country",
        "created_at", "custom_attributes", "custom_events", "devices", "dob", "email",
        "email_subscribe", "external_id", "first_name", "gender", "home_city", "language",
        "last_coordinates", "last_name", "phone", "purchases", "push_subscribe", "push_tokens",
        "random_bucket", "time_zone", "total_revenue", "uninstalled_at", "user_aliases",
    )
)  # fmt: skip
"""The documented ``fields_to_export`` values."""
BAD_CHANGES = (
    "`cohort_changes` must be an array of objects each with key `user_ids` and/or `device_ids` "
    "mapping to an array of strings, or an `aliases` object"
)


class BrazeEmulator(Emulator):
    """In-memory Braze workspace behind a real HTTP server.

    Args:
        api_key: The REST API key accepted as Bearer token.
        existing_users: External ids that already exist (for ``_update_existing_only``).
        rate_limit: Requests allowed per ``rate_window`` seconds on ``/users/track``.
        rate_window: Window length in seconds (fixed windows aligned on the epoch).
        max_array_length: Elements kept in an array attribute (Braze's default is 25).
        partners: Partner name -> partner API key accepted by the cohort endpoints.
        data_import_keys: Data Import Keys (``client_secret``) of this workspace.
        reject: External id -> per-object error message to answer for it.
        export_rate_limit: ``/users/export/ids`` requests allowed per ``export_rate_window``.
        export_rate_window: That window in seconds (Braze: 250 a minute by default).
        require_fields_to_export: Refuse an export without ``fields_to_export`` (newer
            workspaces); False emulates an older workspace, which exports every field.
        clock: Time source for the rate-limit windows (share a FakeClock with the client).
        faults: Injected faults (429, 5xx, connection resets, slow answers).
    """

    def __init__(
        self,
        *,
        api_key: str = "test-api-key",
        existing_users: Iterable[str] = (),
        rate_limit: int = 3000,
        rate_window: float = 3.0,
        max_array_length: int = 25,
        partners: dict[str, str] | None = None,
        data_import_keys: Iterable[str] = (),
        reject: dict[str, str] | None = None,
        export_rate_limit: int = 250,
        export_rate_window: float = 60.0,
        require_fields_to_export: bool = True,
        clock: Clock | None = None,
        faults: Faults | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(faults=faults, port=port)
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {uid: {} for uid in existing_users}
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.max_array_length = max_array_length
        self.partners = dict(partners or {})
        self.data_import_keys = set(data_import_keys)
        self.reject = dict(reject or {})
        self.clock = clock or SystemClock()
        self.cohorts: dict[str, dict[str, Any]] = {}
        self.track_requests: list[int] = []  # attribute objects per accepted request
        self.not_created = 0
        self.rate_limited_count = 0
        self.export_rate_limit = export_rate_limit
        self.export_rate_window = export_rate_window
        self.require_fields_to_export = require_fields_to_export
        self.export_requests: list[tuple[float, int]] = []
        """(clock time, ids) of every export request admitted by the rate limit."""
        self._windows: dict[str, tuple[int, int]] = {}
        self._state_lock = threading.Lock()

    # -- helpers for assertions -------------------------------------------------------------

    def attribute(self, external_id: str, name: str) -> Any:
        """Current value of attribute ``name`` of a user (None when absent)."""
        return self.users.get(external_id, {}).get(name)

    def cohort_members(self, cohort_id: str) -> set[str]:
        """Members of a partner cohort."""
        return set(self.cohorts.get(str(cohort_id), {}).get("members", set()))

    # -- errors -----------------------------------------------------------------------------

    def rate_limited(self) -> Response:
        """Braze's 429 answer."""
        with self.lock:
            self.rate_limited_count += 1
        reset = math.ceil(self.clock.time()) + 1
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        }
        return Response(429, {"message": "Rate Limited"}, headers)

    def server_error(self, status: int) -> Response:
        """Braze's 5xx answer."""
        return Response(status, {"message": "Internal Server Error"})

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one request."""
        if request.method == "GET" and request.path == "/_emulator/users":
            with self._state_lock:
                return Response(200, {"users": self.users})
        if request.method != "POST":
            return Response(404, {"message": "Not Found"})
        if request.path == "/users/track":
            return self._track(request)
        if request.path == "/users/export/ids":
            return self._export_ids(request)
        parts = request.path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "partners" and parts[2] == "cohorts":
            if len(parts) == 3:
                return self._partner_cohort(parts[1], request)
            if len(parts) == 4 and parts[3] == "users":
                return self._partner_users(parts[1], request)
        return Response(404, {"message": "Not Found"})

    # -- /users/track -----------------------------------------------------------------------

    def _budget(self, endpoint: str = "track") -> tuple[bool, dict[str, str]]:
        """Take one request of ``endpoint``'s fixed window: (allowed, rate-limit headers)."""
        limit, window = (
            (self.export_rate_limit, self.export_rate_window)
            if endpoint == "export"
            else (self.rate_limit, self.rate_window)
        )
        now = self.clock.time()
        bucket = int(now // window)
        with self.lock:
            current, used = self._windows.get(endpoint, (-1, 0))
            if current != bucket:
                current, used = bucket, 0
            allowed = used < limit
            if allowed:
                used += 1
            self._windows[endpoint] = (current, used)
            if not allowed:
                self.rate_limited_count += 1
        reset = math.ceil((bucket + 1) * window)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(limit - used, 0)),
            "X-RateLimit-Reset": str(reset),
        }
        return allowed, headers

    def _unauthorized(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] != self.api_key:
            presented = auth[7:] if auth.startswith("Bearer ") else auth
            return Response(401, {"message": f"Invalid API key: {presented}"})
        return None

    def _track(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        allowed, headers = self._budget()
        if not allowed:
            return Response(429, {"message": "Rate Limited"}, headers)
        try:
            body = request.json()
        except ValueError:
            return Response(400, {"message": "Bad Request"}, headers)
        if not isinstance(body, dict):
            return Response(400, {"message": "Bad Request"}, headers)
        attributes = body.get("attributes") or []
        if not isinstance(attributes, list):
            return Response(400, {"message": "Bad Request"}, headers)
        if len(attributes) > 75 or len(body.get("events") or []) > 75:
            return Response(400, {"message": "Max Input Length Exceeded"}, headers)
        errors = []
        processed = 0
        with self._state_lock:
            for index, obj in enumerate(attributes):
                error = self._apply_attributes(obj)
                if error:
                    errors.append({"type": error, "input_array": "attributes", "index": index})
                else:
                    processed += 1
            self.track_requests.append(len(attributes))
        if attributes and processed == 0:
            return Response(400, {"message": "Bad Request", "errors": errors}, headers)
        answer: dict[str, Any] = {"message": "success", "attributes_processed": processed}
        if errors:
            answer["errors"] = errors
        return Response(201, answer, headers)

    # -- /users/export/ids -------------------------------------------------------------------

    def _export_ids(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        allowed, headers = self._budget("export")
        if not allowed:
            return Response(429, {"message": "Rate Limited"}, headers)
        try:
            body = request.json()
        except ValueError:
            body = None
        ids = body.get("external_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return Response(400, {"message": "external_ids must be an array of strings"}, headers)
        with self.lock:
            self.export_requests.append((self.clock.time(), len(ids)))
        wanted, problem = _export_fields(body, len(ids), self.require_fields_to_export)
        if problem is not None:
            return Response(400, {"message": problem}, headers)
        return Response(200, self._exported(ids, wanted), headers)

    def _exported(self, ids: list[str], wanted: set[str]) -> dict[str, Any]:
        """The ``/users/export/ids`` answer for ``ids`` with the ``wanted`` fields."""
        users, invalid = [], []
        with self._state_lock:
            for uid in dict.fromkeys(ids):
                if uid not in self.users:
                    invalid.append(uid)
                    continue
                exported: dict[str, Any] = {"external_id": uid}
                attributes = self.users[uid]
                if "custom_attributes" in wanted:
                    custom = {k: v for k, v in attributes.items() if k not in STANDARD_FIELDS}
                    exported["custom_attributes"] = custom
                exported.update({k: attributes[k] for k in wanted if k in attributes})
                users.append(exported)
        answer: dict[str, Any] = {"users": users, "message": "success"}
        if invalid:
            answer["invalid_user_ids"] = invalid
        return answer

    def _apply_attributes(self, obj: Any) -> str | None:
        """Apply one attribute object to its user: the per-object error, or None."""
        if not isinstance(obj, dict):
            return "attribute object must be an object"
        if not any(obj.get(key) for key in IDENTIFIERS):
            return ID_REQUIRED
        uid = str(obj.get("external_id") or obj.get("braze_id") or obj.get("email") or "")
        if uid in self.reject:
            return self.reject[uid]
        updates = {key: value for key, value in obj.items() if key not in _NOT_ATTRIBUTES}
        error = _invalid_attribute(updates)
        if error:
            return error
        user = self._user_to_update(uid, existing_only=obj.get("_update_existing_only") is True)
        if user is not None:
            for key, value in updates.items():
                self._set_attribute(user, key, value)
        return None

    def _user_to_update(self, uid: str, *, existing_only: bool) -> dict[str, Any] | None:
        """The user's attributes, created unless ``_update_existing_only`` (then None)."""
        if uid not in self.users:
            if existing_only:
                self.not_created += 1
                return None
            self.users[uid] = {}
        return self.users[uid]

    def _set_attribute(self, user: dict[str, Any], key: str, value: Any) -> None:
        """A null removes the attribute, ``add``/``remove`` edit an array, an array replaces it."""
        if value is None:
            user.pop(key, None)
        elif _is_array_operation(value):
            user[key] = self._edited_array(user.get(key), value)
        elif isinstance(value, list):
            user[key] = list(dict.fromkeys(map(_hashable, value)))[-self.max_array_length :]
        else:
            user[key] = value

    def _edited_array(self, current: Any, operation: dict[str, Any]) -> list[Any]:
        """``current`` after ``add`` (appended, or moved to the end) and ``remove``."""
        items = list(current) if isinstance(current, list) else []
        for item in operation.get("add", []):
            if item in items:
                items.remove(item)  # adding an existing element moves it to the end
            items.append(item)
        removed = set(map(_hashable, operation.get("remove", [])))
        items = [x for x in items if _hashable(x) not in removed]
        return items[-self.max_array_length :]

    # -- partner cohort import --------------------------------------------------------------

    def _partner_auth(self, partner: str, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return Response(400, {"message": "Bad Request"})
        if self.partners.get(partner) is None or body.get("partner_api_key") != self.partners.get(
            partner
        ):
            return Response(401, {"message": "Invalid Partner API key"})
        secret = body.get("client_secret")
        if not isinstance(secret, str) or secret not in self.data_import_keys:
            if isinstance(secret, str) and secret.startswith("disabled-"):
                return Response(
                    401, {"message": f"Partner not enabled for client with client secret: {secret}"}
                )
            return Response(401, {"message": "Invalid client secret"})
        if not isinstance(body.get("cohort_id"), str) or not body["cohort_id"]:
            return Response(400, {"message": "`cohort_id` must be a valid string"})
        return None

    def _partner_request(self, partner: str, request: Request) -> dict[str, Any] | Response:
        """The JSON body of an authenticated partner request, or the error answer."""
        try:
            body = request.json()
        except ValueError:
            return Response(400, {"message": "Bad Request"})
        error = self._partner_auth(partner, body)
        return body if error is None else error

    def _partner_cohort(self, partner: str, request: Request) -> Response:
        body = self._partner_request(partner, request)
        if isinstance(body, Response):
            return body
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return Response(400, {"message": "`name` must be a non-empty string"})
        try:
            dt.datetime.fromisoformat(str(body.get("created_at")).replace("Z", "+00:00"))
        except ValueError:
            return Response(
                400, {"message": "`created_at` must be a valid time as an ISO-8601 string"}
            )
        with self._state_lock:
            cohort = self.cohorts.setdefault(body["cohort_id"], {"members": set()})
            cohort["name"] = name
            cohort["created_at"] = body["created_at"]
        return Response(201, {"message": "success"})

    def _partner_users(self, partner: str, request: Request) -> Response:
        body = self._partner_request(partner, request)
        if isinstance(body, Response):
            return body
        changes = body.get("cohort_changes")
        if not isinstance(changes, list) or not changes:
            return Response(400, {"message": BAD_CHANGES})
        total = 0
        for change in changes:
            if not isinstance(change, dict) or not (
                {"user_ids", "device_ids", "aliases"} & set(change)
            ):
                return Response(400, {"message": BAD_CHANGES})
            for key in ("user_ids", "device_ids"):
                ids = change.get(key, [])
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    return Response(400, {"message": BAD_CHANGES})
                total += len(ids)
            total += len(change.get("aliases") or [])
        if total > 1000:
            return Response(400, {"message": TOO_MANY_IDS})
        with self._state_lock:
            cohort = self.cohorts.setdefault(body["cohort_id"], {"members": set()})
            for change in changes:
                for uid in change.get("user_ids", []):
                    if uid not in self.users:
                        continue  # cohort import never creates users
                    if change.get("should_remove"):
                        cohort["members"].discard(uid)
                    else:
                        cohort["members"].add(uid)
        return Response(201, {"message": "success"})


def _is_array_operation(value: Any) -> bool:
    return isinstance(value, dict) and bool(set(value) & _ARRAY_OPERATIONS)


def _invalid_attribute(updates: dict[str, Any]) -> str | None:
    """The error of the first attribute Braze refuses, or None."""
    for key, value in updates.items():
        if key.startswith("$"):
            return f"custom attribute '{key}' must not start with '$'"
        if not _is_array_operation(value):
            continue
        if set(value) - _ARRAY_OPERATIONS:
            return f"array attribute '{key}' accepts only 'add' and 'remove'"
        for op in ("add", "remove"):
            if op in value and not isinstance(value[op], list):
                return f"'{op}' of array attribute '{key}' must be an array"
    return None


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, dict | list) else repr(value)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: serve the emulator until interrupted."""
    parser = argparse.ArgumentParser(description="Local Braze REST emulator")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--api-key", default="demo-braze-key")
    parser.add_argument("--existing-users", default="", help="file with one external_id a line")
    parser.add_argument("--partner", default="", help="partner_name:partner_api_key")
    parser.add_argument("--data-import-key", default="")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-5xx", type=float, default=0.0)
    args = parser.parse_args(argv)
    existing: list[str] = []
    if args.existing_users:
        with open(args.existing_users, encoding="utf-8") as handle:
            existing = [line.strip() for line in handle if line.strip()]
    partners = dict([args.partner.split(":", 1)]) if args.partner else {}
    emulator = BrazeEmulator(
        api_key=args.api_key,
        existing_users=existing,
        partners=partners,
        data_import_keys=[args.data_import_key] if args.data_import_key else [],
        faults=Faults(rate_429=args.rate_429, rate_5xx=args.rate_5xx),
        port=args.port,
    )
    print(f"Braze emulator listening on {emulator.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        emulator.serve_forever()


if __name__ == "__main__":
    main()


def _export_fields(body: dict[str, Any], count: int, required: bool) -> tuple[set[str], str | None]:
    """The fields an export of ``count`` ids asks for, or the 400 message Braze answers."""
    if count > EXPORT_MAX_IDS:
        return set(), TOO_MANY_EXPORT_IDS
    fields = body.get("fields_to_export")
    if fields is None and required:
        return set(), FIELDS_REQUIRED
    if not isinstance(fields, list | None):
        return set(), "fields_to_export must be an array"
    wanted = set(STANDARD_FIELDS if fields is None else map(str, fields))
    if not wanted <= STANDARD_FIELDS:
        return set(), f"Invalid fields_to_export: {sorted(wanted - STANDARD_FIELDS)}"
    return wanted, None
