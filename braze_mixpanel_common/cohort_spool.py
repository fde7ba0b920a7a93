"""The cohort-sync spool: Mixpanel's webhook pages, one object per page, read back by the tap.

This module is the one place that knows the layout. The receiver (``mixpanel-cohort-webhook``)
writes pages; tap-mixpanel-cohorts (``source: webhook``) scans and reads them.

Layout below the root (an fsspec URL or a plain path)::

    cohort=<cohort_id>/session=<session_id>/arrival-<action>-<arrival key>
    cohort=<cohort_id>/session=<session_id>/<action>/page-<page_count:06d>-of-<total:06d>.json

A *delivery* is one action of one session: the action is part of a page's identity, because the
``add_members`` and ``remove_members`` calls of one cycle may share a session id. Ids are
percent-encoded outside ``[A-Za-z0-9._-]``; an id whose encoding would not fit a file name
(over 180 characters) is stored as ``~`` and a SHA-256 prefix, and the page keeps the id itself.
Each page object holds ``{"received_at": "<UTC ISO-8601, microseconds>", "action": ...,
"parameters": {...}}`` with the parameters exactly as received (members included). An empty call
(``page_info`` absent or ``total_pages`` 0, see :func:`page_numbers`) is stored as page 1 of 1.

Writes are atomic and idempotent: the first delivery of a page wins and a retry is acknowledged
without rewriting. Object stores get one conditional PUT (``If-None-Match: *`` on S3, generation 0
on GCS, no-overwrite on Azure); a local folder gets a temporary file in the same folder, fsync, and
a hard link to the final name (which, unlike a rename, refuses to replace an existing page), and
every folder it creates is made durable in its parent before the answer.

Order without trusting the store's clock: before the first page of a delivery is stored, the
receiver writes an *arrival marker* whose name holds the receiver's arrival time in microseconds
and a random suffix. Deliveries of a cohort are ordered by their earliest marker (a delivery
without one, say from a crash between the two writes, falls back to its pages' listing time), so
two sessions written in the same second on S3 still sort in the order they arrived.
:attr:`SessionInfo.order_key` is that order as one string, so a reader can keep a per-cohort
watermark and skip consumed deliveries from the listing alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
import msgspec
from fsspec.implementations.local import LocalFileSystem

from braze_mixpanel_common.errors import PluginError, SourceError

ACTIONS = ("members", "add_members", "remove_members")
COHORT_PREFIX = "cohort="
SESSION_PREFIX = "session="
ARRIVAL_PREFIX = "arrival-"
MAX_PAGES = 100_000
"""The highest ``total_pages`` / ``page_count`` stored (100 million members a session)."""
_PAGE_NAME = re.compile(r"^page-(\d{6,})-of-(\d{6,})\.json$")
_ARRIVAL_NAME = re.compile(r"^arrival-(members|add_members|remove_members)-(\d{8}T\d{12}Z-\w+)$")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_KEY_FORMAT = "%Y%m%dT%H%M%S%fZ"
_TEMP_PREFIX = ".tmp-"
_HASHED = "~"
_HASHED_ID = re.compile(r"^~[0-9a-f]{40}$")
_LONGEST_SEGMENT = 180
_NEVER = datetime.min.replace(tzinfo=UTC)


class SpoolError(PluginError, RuntimeError):
    """The spool cannot be written or listed (storage down, permission, a full disk)."""


def encode_id(value: object) -> str:
    """A cohort or session id as a path segment: percent-encoded outside ``[A-Za-z0-9._-]``.

    An encoding longer than 180 characters (a file name holds 255 bytes) becomes ``~`` and the
    first 40 hex digits of the id's SHA-256: still one segment per id, no longer reversible.
    """
    text = str(value)
    if _HASHED_ID.match(text):  # a hashed segment read back from the listing
        return text
    encoded = "".join(
        char if char in _SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )
    if len(encoded) > _LONGEST_SEGMENT:
        return _HASHED + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
    return encoded


def decode_id(segment: str) -> str:
    """The id a path segment was encoded from (a hashed segment stands for itself)."""
    from urllib.parse import unquote

    if segment.startswith(_HASHED):
        return segment
    return unquote(segment, errors="strict")


def format_time(moment: datetime) -> str:
    """A time as the spool writes it: UTC, ISO-8601, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def arrival_key(moment: datetime) -> str:
    """An arrival key: the time to the microsecond, fixed width, then a random suffix."""
    return f"{moment.astimezone(UTC).strftime(_KEY_FORMAT)}-{uuid.uuid4().hex[:12]}"


def page_name(page_count: int, total_pages: int) -> str:
    """The object name of one page of a delivery."""
    return f"page-{page_count:06d}-of-{total_pages:06d}.json"


def page_numbers(parameters: Mapping[str, Any]) -> tuple[int, int]:
    """``(page_count, total_pages)`` of a validated body, an empty call counting as page 1 of 1.

    Mixpanel does not document the ``page_info`` of an empty ``add_members`` /
    ``remove_members`` call: ``{total_pages, page_count}`` ``{1, 1}``, ``{0, 0}``, ``{0, 1}``
    and an absent ``page_info`` are all read as the one and only page (the receiver turns an
    empty "page 0 of 1" into total 0 first).
    """
    info = parameters.get("page_info")
    if not isinstance(info, Mapping):
        return 1, 1
    total = int(info.get("total_pages") or 0)
    if total < 1:
        return 1, 1
    return int(info.get("page_count") or 0), total


def listing_time(info: Mapping[str, Any]) -> datetime | None:
    """The modification time in one fsspec listing entry, as an aware UTC datetime.

    Each filesystem names it differently: ``mtime`` (local: epoch seconds; gcsfs: a datetime),
    ``LastModified`` (s3fs), ``last_modified`` (adlfs), ``updated`` (older gcsfs: a string).
    """
    for key in ("LastModified", "last_modified", "mtime", "updated"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


@dataclass(frozen=True)
class Page:
    """One stored page: when the receiver accepted it, the action and the parameters as sent."""

    received_at: str
    action: str
    parameters: dict[str, Any]

    @property
    def members(self) -> list[dict[str, Any]]:
        """The page's members (an empty list for an empty diff)."""
        members = self.parameters.get("members")
        return members if isinstance(members, list) else []


@dataclass
class SessionInfo:
    """One delivery (one action of one export session) of one cohort, from the listing alone.

    ``arrival`` is the earliest arrival marker's key (None without a marker); ``first_seen`` the
    earliest listing time of its pages. ``total_pages`` is 0 while only the marker is stored.
    """

    cohort_id: str
    session_id: str
    total_pages: int
    pages_present: set[int] = field(default_factory=set)
    first_seen: datetime = _NEVER
    action: str = "members"
    arrival: str | None = None

    @property
    def complete(self) -> bool:
        """Every page from 1 to ``total_pages`` is stored."""
        return (
            self.total_pages > 0
            and len(self.pages_present) == self.total_pages
            and self.pages_present == set(range(1, self.total_pages + 1))
        )

    @property
    def missing_pages(self) -> list[int]:
        """Page numbers not stored yet, ascending."""
        return sorted(set(range(1, self.total_pages + 1)) - self.pages_present)

    @property
    def order_key(self) -> str:
        """``<arrival key>|<action>|<session_id>``: sorts in delivery order.

        Kept as a watermark in a reader's state: deliveries with a key ``<=`` it are consumed.
        Without a marker the arrival is the earliest listing time of the pages.
        """
        arrival = self.arrival or self.first_seen.strftime(_KEY_FORMAT) + "-"
        return f"{arrival}|{self.action}|{self.session_id}"


class Spool:
    """A spool root opened with fsspec; see the module docstring for the layout."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **dict(options or {}))
        self.root = root.rstrip("/") or root
        self._local = isinstance(self.fs, LocalFileSystem)
        self.older_layout_pages = 0
        """Pages the last :meth:`scan` saw in an earlier release's layout (not read)."""

    # -- paths ---------------------------------------------------------------------------------

    def session_path(self, cohort_id: object, session_id: object) -> str:
        """The folder (or key prefix) holding one session's deliveries and arrival markers."""
        return (
            f"{self.root}/{COHORT_PREFIX}{encode_id(cohort_id)}"
            f"/{SESSION_PREFIX}{encode_id(session_id)}"
        )

    def page_path(
        self, cohort_id: object, session_id: object, action: str, page_count: int, total: int
    ) -> str:
        """The object holding one page of one delivery."""
        return f"{self.session_path(cohort_id, session_id)}/{action}/{page_name(page_count, total)}"

    def display(self, path: str) -> str:
        """A path as the user would write it (with the protocol), for logs and errors."""
        return str(self.fs.unstrip_protocol(path))

    # -- writing -------------------------------------------------------------------------------

    def write_page(self, body: Mapping[str, Any], received_at: datetime) -> bool:
        """Store one validated webhook body; True when newly stored, False for a repeat.

        ``body`` must already be Mixpanel's format (the receiver validates it). Raises
        :class:`SpoolError` when the storage cannot be written.
        """
        parameters = body["parameters"]
        action = str(body["action"])
        page, total = page_numbers(parameters)
        session = self.session_path(
            parameters["mixpanel_cohort_id"], parameters["mixpanel_session_id"]
        )
        path = f"{session}/{action}/{page_name(page, total)}"
        data = msgspec.json.encode(
            {"received_at": format_time(received_at), "action": action, "parameters": parameters}
        )
        marker = f"{session}/{ARRIVAL_PREFIX}{action}-{arrival_key(received_at)}"
        try:
            if self._local:  # the hard link refuses an existing page by itself
                return self._write_local(path, data, action, marker)
            if self.fs.exists(path):  # a retry costs a HEAD, not a PUT of the whole page
                return False
            self._mark_arrival(session, action, marker)
            try:
                self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return False
        except SpoolError:
            raise
        except Exception as error:
            raise SpoolError(
                f"cannot write {self.display(path)}: {type(error).__name__}: {error}"
            ) from error
        return True

    def _mark_arrival(self, session: str, action: str, marker: str) -> None:
        """Write the delivery's arrival marker unless it has one (before its first page)."""
        prefix = f"{ARRIVAL_PREFIX}{action}-"
        try:
            names = [os.path.basename(p.rstrip("/")) for p in self.fs.ls(session, detail=False)]
        except FileNotFoundError:
            names = []
        if not any(name.startswith(prefix) for name in names):
            self.fs.pipe_file(marker, b"")

    def _write_local(self, path: str, data: bytes, action: str, marker: str) -> bool:
        if os.path.exists(path):
            return False
        folder = os.path.dirname(path)
        session = os.path.dirname(folder)
        _make_durable_folders(session)
        prefix = f"{ARRIVAL_PREFIX}{action}-"
        if not any(name.startswith(prefix) for name in os.listdir(session)):
            _create_durably(marker, b"")
        _make_durable_folders(folder)
        temp = os.path.join(folder, f"{_TEMP_PREFIX}{uuid.uuid4().hex}-{os.path.basename(path)}")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, path)  # atomic, and refuses to replace a page already there
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        _fsync_folder(folder)
        return True

    def check_writable(self) -> None:
        """Write and delete a probe object below the root; :class:`SpoolError` if that fails."""
        probe = f"{self.root}/{_TEMP_PREFIX}probe-{uuid.uuid4().hex}"
        try:
            if self._local:
                _make_durable_folders(self.root)
            self.fs.pipe_file(probe, b"{}")
            self.fs.rm_file(probe)
        except Exception as error:
            raise SpoolError(
                f"the spool {self.url} is not writable: {type(error).__name__}: {error}"
            ) from error

    # -- reading -------------------------------------------------------------------------------

    def scan(self, cohort_id: object | None = None) -> dict[str, list[SessionInfo]]:
        """Every delivery in the spool (or of one cohort), per cohort id, in delivery order.

        One recursive listing; no page is read. Names that are neither pages nor arrival
        markers (temporary files of a write in progress, stray objects) are ignored; pages in the
        layout of an earlier release (no action folder) are counted in
        :attr:`older_layout_pages`, not read.
        """
        self.older_layout_pages = 0
        base = (
            self.root if cohort_id is None else f"{self.root}/{COHORT_PREFIX}{encode_id(cohort_id)}"
        )
        try:
            self.fs.invalidate_cache()  # another process (a receiver replica) writes here
            entries = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as error:
            raise SpoolError(
                f"cannot list the spool {self.url}: {type(error).__name__}: {error}"
            ) from error
        deliveries: dict[tuple[str, str, str], SessionInfo] = {}
        for path, info in entries.items():
            if info.get("type") == "directory":
                continue
            parsed = self._parse(path)
            if parsed is None:
                self.older_layout_pages += _older_layout(path)
                continue
            cohort, session, action, page, total = parsed
            current = deliveries.get((cohort, session, action))
            if current is None:
                current = deliveries[(cohort, session, action)] = SessionInfo(
                    cohort, session, 0, set(), datetime.max.replace(tzinfo=UTC), action
                )
            if isinstance(total, str):  # an arrival marker: its key
                current.arrival = min(current.arrival or total, total)
                continue
            current.first_seen = min(current.first_seen, listing_time(info) or datetime.now(UTC))
            if total > current.total_pages:  # a re-export with more pages: count against it
                current.total_pages = total
                current.pages_present = {page}
            elif total == current.total_pages:
                current.pages_present.add(page)
        result: dict[str, list[SessionInfo]] = {}
        for delivery in sorted(deliveries.values(), key=lambda s: s.order_key):
            if delivery.first_seen == datetime.max.replace(tzinfo=UTC):
                delivery.first_seen = _marker_time(delivery.arrival)
            result.setdefault(delivery.cohort_id, []).append(delivery)
        return result

    def _parse(self, path: str) -> tuple[str, str, str, int, int | str] | None:
        """``(cohort, session, action, page, total)`` of a page; ``(..., 0, key)`` of a marker."""
        relative = path[len(self.root) :].strip("/").split("/")
        if len(relative) not in (3, 4):
            return None
        cohort, session = relative[0], relative[1]
        if not (cohort.startswith(COHORT_PREFIX) and session.startswith(SESSION_PREFIX)):
            return None
        ids = (decode_id(cohort[len(COHORT_PREFIX) :]), decode_id(session[len(SESSION_PREFIX) :]))
        if len(relative) == 3:
            marker = _ARRIVAL_NAME.match(relative[2])
            return (*ids, marker.group(1), 0, marker.group(2)) if marker else None
        action, name = relative[2], relative[3]
        match = _PAGE_NAME.match(name)
        if not (match and action in ACTIONS):
            return None
        page, total = int(match.group(1)), int(match.group(2))
        if not 1 <= page <= total:
            return None
        return (*ids, action, page, total)

    def read_page(self, session: SessionInfo, page: int) -> Page:
        """One stored page of a delivery; :class:`SourceError` naming the object if unreadable."""
        path = self.page_path(
            session.cohort_id, session.session_id, session.action, page, session.total_pages
        )
        try:
            raw = self.fs.cat_file(path)
        except Exception as error:
            raise SourceError(
                f"cannot read {self.display(path)}: {type(error).__name__}: {error}"
            ) from error
        try:
            content = msgspec.json.decode(raw)
            return Page(
                received_at=str(content["received_at"]),
                action=str(content["action"]),
                parameters=dict(content["parameters"]),
            )
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as error:
            raise SourceError(f"{self.display(path)} is not a spooled page: {error}") from error

    def iter_pages(self, session: SessionInfo) -> Iterator[Page]:
        """A complete delivery's pages in page order, one in memory at a time."""
        if not session.complete:
            raise SourceError(
                f"{session.action} session {session.session_id} of cohort {session.cohort_id} "
                f"is incomplete: pages {session.missing_pages[:10]} of {session.total_pages} "
                "are missing"
            )
        for page in range(1, session.total_pages + 1):
            yield self.read_page(session, page)

    def delete_session(self, session: SessionInfo) -> None:
        """Remove a consumed session's deliveries (for retention; the spool never does it)."""
        path = self.session_path(session.cohort_id, session.session_id)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)


def open_spool(url: str, options: Mapping[str, Any] | None = None) -> Spool:
    """Open a spool root (fsspec URL or plain path) with its storage options."""
    if not url:
        raise SpoolError("no spool URL given")
    try:
        return Spool(url, options)
    except Exception as error:
        raise SpoolError(f"cannot open the spool {url}: {type(error).__name__}: {error}") from error


def _older_layout(path: str) -> bool:
    """A page as an earlier release stored it: ``cohort=…/session=…/page-…json``."""
    parts = path.rstrip("/").split("/")
    return (
        len(parts) >= 3
        and bool(_PAGE_NAME.match(parts[-1]))
        and parts[-2].startswith(SESSION_PREFIX)
        and parts[-3].startswith(COHORT_PREFIX)
    )


def _marker_time(key: str | None) -> datetime:
    """The arrival time in a marker key (for the age of a delivery with no page yet)."""
    if key is None:
        return datetime.now(UTC)
    return datetime.strptime(key.split("-", 1)[0], _KEY_FORMAT).replace(tzinfo=UTC)


def _make_durable_folders(folder: str) -> None:
    """Create ``folder`` and its missing parents, each made durable in its parent's entry."""
    missing = []
    current = os.path.abspath(folder)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        _fsync_folder(os.path.dirname(path))


def _create_durably(path: str, data: bytes) -> None:
    """Create a file (never replacing one), fsync it and its folder's entry."""
    with contextlib.suppress(FileExistsError), open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_folder(os.path.dirname(path))


def _fsync_folder(folder: str) -> None:
    """Make a new directory entry durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
