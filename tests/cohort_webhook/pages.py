"""Webhook bodies as Mixpanel sends them, and what the spool holds afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from braze_mixpanel_common.cohort_spool import open_spool


def page_body(
    cohort: str = "77",
    session: str = "sess-1",
    page: int = 1,
    total: int = 1,
    action: str = "members",
    members: list[dict[str, Any]] | None = None,
    name: str = "Power users",
) -> dict[str, Any]:
    if members is None:
        members = [member(f"{session}-p{page}-{i}") for i in range(3)]
    return {
        "action": action,
        "parameters": {
            "mixpanel_project_id": "12345",
            "mixpanel_cohort_id": cohort,
            "mixpanel_cohort_name": name,
            "mixpanel_cohort_description": "Top 1% by sessions",
            "mixpanel_session_id": session,
            "page_info": {"total_pages": total, "page_count": page},
            "members": members,
        },
    }


def member(distinct_id: str) -> dict[str, Any]:
    return {
        "mixpanel_distinct_id": distinct_id,
        "email": f"{distinct_id}@example.com",
        "first_name": "Ada",
        "last_name": f"Lovelace-{distinct_id}",
        "$braze_external_id": f"ext-{distinct_id}",
    }


def post(url: str, body: Any, auth: tuple[str, str] | None, **kwargs: Any) -> requests.Response:
    if isinstance(body, bytes | str):
        return requests.post(url, data=body, auth=auth, timeout=30, **kwargs)
    return requests.post(url, json=body, auth=auth, timeout=30, **kwargs)


def stored_files(spool: Path) -> list[str]:
    """Every file below the spool folder, relative, sorted (temporary files included)."""
    if not spool.exists():
        return []
    return sorted(str(p.relative_to(spool)) for p in spool.rglob("*") if p.is_file())


def stored_pages(spool: Path) -> list[str]:
    """The page files below the spool folder, relative, sorted (no arrival markers)."""
    return [name for name in stored_files(spool) if "/arrival-" not in f"/{name}"]


def spooled_ids(
    spool_url: str, cohort: str | None = None, options: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """Per session id, the distinct ids of its pages in page order (complete sessions only)."""
    spool = open_spool(spool_url, options)
    found: dict[str, list[str]] = {}
    for sessions in spool.scan(cohort).values():
        for session in sessions:
            if session.complete:
                found[session.session_id] = [
                    m["mixpanel_distinct_id"] for p in spool.iter_pages(session) for m in p.members
                ]
    return found
