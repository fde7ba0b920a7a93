"""The cohort-sync spool: Mixpanel's webhook pages, one object per page, read back by the tap.

This module is the one place that knows the layout. The receiver (``mixpanel-cohort-webhook``)
writes pages; tap-mixpanel-cohorts (``source: webhook``) scans and reads them.

Layout below the root (an fsspec URL or a plain path)::

    cohort=<cohort_id>/session=<session_id>/page-<page_count:06d>-of-<total_pages:06d>.json

Ids are percent-encoded outside ``[A-Za-z0-9._-]``. Each object holds
``{"received_at": "<UTC ISO-8601, microseconds>", "action": ..., "parameters": {...}}`` with the
parameters exactly as received (members included).

Writes are atomic and idempotent: the first delivery of a page wins and a retry is acknowledged
without rewriting. Object stores get one conditional PUT (``If-None-Match: *`` on S3, generation 0
on GCS, no-overwrite on Azure); a local folder gets a temporary file in the same folder, fsync, and
a hard link to the final name (which, unlike a rename, refuses to replace an existing page).

Sessions of a cohort are ordered by the earliest modification time of their page objects, as the
storage listing reports it, ties broken by session id. :attr:`SessionInfo.order_key` is that order
as one string, so a reader can keep a per-cohort watermark and skip consumed sessions from the
listing alone.
"""

from __future__ import annotations

import contextlib
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
_PAGE_NAME = re.compile(r"^page-(\d{6,})-of-(\d{6,})\.json$")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TEMP_PREFIX = ".tmp-"
_NEVER = datetime.min.replace(tzinfo=UTC)


class SpoolError(PluginError, RuntimeError):
    """The spool cannot be written or listed (storage down, permission, a full disk)."""


def encode_id(value: object) -> str:
    """A cohort or session id as a path segment: percent-encoded outside ``[A-Za-z0-9._-]``."""
    text = str(value)
    return "".join(
        char if char in _SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )


def decode_id(segment: str) -> str:
    """The id a path segment was encoded from (the inverse of :func:`encode_id`)."""
    from urllib.parse import unquote

    return unquote(segment, errors="strict")


def format_time(moment: datetime) -> str:
    """A time as the spool writes it: UTC, ISO-8601, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def page_name(page_count: int, total_pages: int) -> str:
    """The object name of one page of a session."""
    return f"page-{page_count:06d}-of-{total_pages:06d}.json"


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
    """One export session of one cohort, as the listing shows it (no page is read)."""

    cohort_id: str
    session_id: str
    total_pages: int
    pages_present: set[int] = field(default_factory=set)
    first_seen: datetime = _NEVER

    @property
    def complete(self) -> bool:
        """Every page from 1 to ``total_pages`` is stored."""
        return len(self.pages_present) == self.total_pages and self.pages_present == set(
            range(1, self.total_pages + 1)
        )

    @property
    def missing_pages(self) -> list[int]:
        """Page numbers not stored yet, ascending."""
        return sorted(set(range(1, self.total_pages + 1)) - self.pages_present)

    @property
    def order_key(self) -> str:
        """``<first_seen, fixed-width UTC>|<session_id>``: sorts like (first_seen, session_id).

        Kept as a watermark in a reader's state: sessions with a key ``<=`` it are consumed.
        """
        return f"{format_time(self.first_seen)}|{self.session_id}"


class Spool:
    """A spool root opened with fsspec; see the module docstring for the layout."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **dict(options or {}))
        self.root = root.rstrip("/") or root
        self._local = isinstance(self.fs, LocalFileSystem)

    # -- paths ---------------------------------------------------------------------------------

    def session_path(self, cohort_id: object, session_id: object) -> str:
        """The folder (or key prefix) holding one session's pages."""
        return (
            f"{self.root}/{COHORT_PREFIX}{encode_id(cohort_id)}"
            f"/{SESSION_PREFIX}{encode_id(session_id)}"
        )

    def page_path(
        self, cohort_id: object, session_id: object, page_count: int, total_pages: int
    ) -> str:
        """The object holding one page."""
        return f"{self.session_path(cohort_id, session_id)}/{page_name(page_count, total_pages)}"

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
        info = parameters["page_info"]
        path = self.page_path(
            parameters["mixpanel_cohort_id"],
            parameters["mixpanel_session_id"],
            int(info["page_count"]),
            int(info["total_pages"]),
        )
        data = msgspec.json.encode(
            {
                "received_at": format_time(received_at),
                "action": body["action"],
                "parameters": parameters,
            }
        )
        try:
            if self._local:  # the hard link refuses an existing page by itself
                return self._write_local(path, data)
            if self.fs.exists(path):  # a retry costs a HEAD, not a PUT of the whole page
                return False
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

    def _write_local(self, path: str, data: bytes) -> bool:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
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
                os.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"{}")
            self.fs.rm_file(probe)
        except Exception as error:
            raise SpoolError(
                f"the spool {self.url} is not writable: {type(error).__name__}: {error}"
            ) from error

    # -- reading -------------------------------------------------------------------------------

    def scan(self, cohort_id: object | None = None) -> dict[str, list[SessionInfo]]:
        """Every session in the spool (or of one cohort), per cohort id, in session order.

        One recursive listing; no page is read. Names that are not pages (temporary files of a
        write in progress, stray objects) are ignored.
        """
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
        sessions: dict[tuple[str, str], SessionInfo] = {}
        for path, info in entries.items():
            parsed = self._parse(path)
            if parsed is None or info.get("type") == "directory":
                continue
            cohort, session, page, total = parsed
            seen = listing_time(info) or datetime.now(UTC)
            current = sessions.get((cohort, session))
            if current is None:
                sessions[(cohort, session)] = SessionInfo(cohort, session, total, {page}, seen)
                continue
            current.first_seen = min(current.first_seen, seen)
            if total > current.total_pages:  # a re-export with more pages: count against it
                current.total_pages = total
                current.pages_present = {page}
            elif total == current.total_pages:
                current.pages_present.add(page)
        result: dict[str, list[SessionInfo]] = {}
        for session_info in sorted(sessions.values(), key=lambda s: s.order_key):
            result.setdefault(session_info.cohort_id, []).append(session_info)
        return result

    def _parse(self, path: str) -> tuple[str, str, int, int] | None:
        relative = path[len(self.root) :].strip("/").split("/")
        if len(relative) != 3:
            return None
        cohort, session, name = relative
        match = _PAGE_NAME.match(name)
        if not (match and cohort.startswith(COHORT_PREFIX) and session.startswith(SESSION_PREFIX)):
            return None
        page, total = int(match.group(1)), int(match.group(2))
        if not 1 <= page <= total:
            return None
        return (
            decode_id(cohort[len(COHORT_PREFIX) :]),
            decode_id(session[len(SESSION_PREFIX) :]),
            page,
            total,
        )

    def read_page(
        self, cohort_id: object, session_id: object, page: int, total_pages: int | None = None
    ) -> Page:
        """One stored page; :class:`SourceError` naming the object if it cannot be read.

        Without ``total_pages`` the session's folder is listed to find the page's object.
        """
        if total_pages is None:
            found = self.scan(cohort_id).get(str(cohort_id), [])
            sessions = [s for s in found if s.session_id == str(session_id)]
            total_pages = sessions[0].total_pages if sessions else page
        path = self.page_path(cohort_id, session_id, page, total_pages)
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
        """A complete session's pages in page order, one in memory at a time."""
        if not session.complete:
            raise SourceError(
                f"session {session.session_id} of cohort {session.cohort_id} is incomplete: "
                f"pages {session.missing_pages[:10]} of {session.total_pages} are missing"
            )
        for page in range(1, session.total_pages + 1):
            yield self.read_page(session.cohort_id, session.session_id, page, session.total_pages)

    def delete_session(self, session: SessionInfo) -> None:
        """Remove a consumed session's pages (for retention; the spool never does it itself)."""
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
