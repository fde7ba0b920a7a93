"""target-braze test helpers: the emulator's API key, Singer message builders, a runner."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

from target_braze.target import TargetBraze
from tests.support.clock import FakeClock

API_KEY = "sk-test-braze-0123456789"

MEMBER_SCHEMA = {
    "type": "SCHEMA",
    "stream": "cohort_members",
    "key_properties": ["cohort_id", "distinct_id"],
    "schema": {
        "type": "object",
        "properties": {
            "cohort_id": {"type": "integer"},
            "cohort_name": {"type": ["string", "null"]},
            "distinct_id": {"type": "string"},
            "external_id": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
        },
    },
}
COHORT_SCHEMA = {
    "type": "SCHEMA",
    "stream": "cohorts",
    "key_properties": ["id"],
    "schema": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "count": {"type": ["integer", "null"]},
            "created": {"type": ["string", "null"]},
            "is_visible": {"type": ["boolean", "null"]},
            "project_id": {"type": ["integer", "null"]},
        },
    },
}


def snapshot(
    cohorts: dict[int, tuple[str, Iterable[str | None]]],
    *,
    complete: bool = True,
    listed: Iterable[tuple[int, str]] | None = None,
) -> list[dict[str, Any]]:
    """Messages of one tap-mixpanel-cohorts run: the cohort list, then the members."""
    messages: list[dict[str, Any]] = []
    listing = list(listed) if listed is not None else [(cid, n) for cid, (n, _) in cohorts.items()]
    messages.append(COHORT_SCHEMA)
    for cid, name in listing:
        record = {
            "id": cid,
            "name": name,
            "description": None,
            "count": 0,
            "created": "2024-01-02 03:04:05",
            "is_visible": True,
            "project_id": 1,
        }
        messages.append({"type": "RECORD", "stream": "cohorts", "record": record})
    messages.append(MEMBER_SCHEMA)
    for cid, (name, users) in cohorts.items():
        for index, user in enumerate(users):
            record = {
                "cohort_id": cid,
                "cohort_name": name,
                "distinct_id": f"d-{cid}-{index}",
                "external_id": user,
                "email": None,
            }
            messages.append({"type": "RECORD", "stream": "cohort_members", "record": record})
    if complete:
        messages.append({"type": "ACTIVATE_VERSION", "stream": "cohort_members", "version": 1})
    return messages


CHANGE_SCHEMA = {
    "type": "SCHEMA",
    "stream": "cohort_member_changes",
    "key_properties": ["cohort_id", "session_id", "distinct_id"],
    "schema": {
        "type": "object",
        "properties": {
            "cohort_id": {"type": "integer"},
            "cohort_name": {"type": ["string", "null"]},
            "external_id": {"type": "string"},
            "distinct_id": {"type": "string"},
            "change": {"type": "string", "enum": ["add", "remove"]},
            "session_id": {"type": "string"},
            "received_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}
SCOPED_SCHEMA = {
    **MEMBER_SCHEMA,
    "schema": {
        "type": "object",
        "properties": {
            **MEMBER_SCHEMA["schema"]["properties"],
            "session_id": {"type": ["string", "null"]},
            "received_at": {"type": ["string", "null"]},
        },
    },
}


LISTING_SCHEMA = {
    **COHORT_SCHEMA,
    "schema": {
        "type": "object",
        "properties": {
            **COHORT_SCHEMA["schema"]["properties"],
            "members_session_id": {"type": ["string", "null"]},
        },
    },
}


def changes(
    sessions: Iterable[tuple[int, str, str, str, Iterable[str]]],
) -> list[dict[str, Any]]:
    """Messages of change sessions ``(cohort, name, session, add|remove, users)``, in order."""
    messages: list[dict[str, Any]] = [CHANGE_SCHEMA]
    for cohort, name, session, change, users in sessions:
        for user in users:
            record = {
                "cohort_id": cohort,
                "cohort_name": name,
                "external_id": user,
                "distinct_id": f"d-{user}",
                "change": change,
                "session_id": session,
                "received_at": "2026-12-01T12:00:00.000000Z",
            }
            messages.append({"type": "RECORD", "stream": "cohort_member_changes", "record": record})
    return messages


def one_cohort_snapshots(
    cohorts: dict[int, tuple[str, Iterable[str]]], *, activate: bool = True
) -> list[dict[str, Any]]:
    """tap-mixpanel-cohorts' webhook source: each cohort's snapshot, then its ACTIVATE_VERSION."""
    messages: list[dict[str, Any]] = [SCOPED_SCHEMA]
    for version, (cohort, (name, users)) in enumerate(cohorts.items(), start=1):
        for user in users:
            record = {
                "cohort_id": cohort,
                "cohort_name": name,
                "distinct_id": f"d-{user}",
                "external_id": user,
                "email": None,
                "session_id": f"m-{cohort}",
                "received_at": "2026-12-01T12:00:00.000000Z",
            }
            messages.append({"type": "RECORD", "stream": "cohort_members", "record": record})
        if activate:
            messages.append(
                {"type": "ACTIVATE_VERSION", "stream": "cohort_members", "version": version}
            )
    listing: list[dict[str, Any]] = [LISTING_SCHEMA]
    for cohort, (name, _) in cohorts.items():
        record = {"id": cohort, "name": name, "members_session_id": f"m-{cohort}"}
        listing.append({"type": "RECORD", "stream": "cohorts", "record": record})
    return messages + listing


def run_target(
    config: dict[str, Any], messages: list[dict[str, Any]], clock: FakeClock | None = None
) -> TargetBraze:
    """Run the target in-process over ``messages``; exceptions propagate."""
    target = TargetBraze(config=config, clock=clock or FakeClock())
    text = "".join(json.dumps(m) + "\n" for m in messages)
    target.listen(io.StringIO(text))
    return target
