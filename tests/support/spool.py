"""Writing a cohort-sync spool for tests: pages as Mixpanel sends them, with chosen arrival times.

The spool orders deliveries by their arrival markers, whose keys come from the arrival time the
receiver passes in; tests pass one second per page written, from a fixed start, and set the pages'
modification times to match, so the order and the ages never depend on the machine's clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from braze_mixpanel_common.cohort_spool import open_spool

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def member(distinct_id: str, external_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A delivered member: Mixpanel's fixed fields, the Braze id property, extra properties."""
    found: dict[str, Any] = {
        "mixpanel_distinct_id": distinct_id,
        "email": f"{distinct_id}@mail.example",
        "first_name": "Ada",
        "last_name": f"Private-{distinct_id}",
    }
    if external_id is not None:
        found["$braze_external_id"] = external_id
    found.update(extra)
    return found


class SpoolWriter:
    """Writes pages into a local spool folder, each arriving one second after the previous one."""

    def __init__(self, root: Path, start: datetime = T0) -> None:
        self.root = root
        self.spool = open_spool(str(root))
        self.clock = start

    def page(
        self,
        cohort: object,
        session: str,
        page: int,
        total: int,
        action: str,
        members: list[dict[str, Any]],
        *,
        name: str = "Power users",
        description: str = "Top users",
    ) -> bool:
        """Spool one page (as the receiver would); True when newly stored."""
        self.clock += timedelta(seconds=1)
        body = {
            "action": action,
            "parameters": {
                "mixpanel_project_id": 12345,
                "mixpanel_cohort_id": cohort,
                "mixpanel_cohort_name": name,
                "mixpanel_cohort_description": description,
                "mixpanel_session_id": session,
                "page_info": {"total_pages": total, "page_count": page},
                "members": members,
            },
        }
        stored = self.spool.write_page(body, self.clock)
        if stored:
            path = self.spool.page_path(cohort, session, action, page, total)
            stamp = self.clock.timestamp()
            os.utime(path, (stamp, stamp))
        return stored

    def session(
        self,
        cohort: object,
        session: str,
        action: str,
        members: list[dict[str, Any]],
        *,
        per_page: int = 1000,
        name: str = "Power users",
        order: list[int] | None = None,
    ) -> None:
        """Spool a whole session, ``per_page`` members a page, pages in ``order`` (default 1..n)."""
        chunks = [members[i : i + per_page] for i in range(0, len(members), per_page)] or [[]]
        total = len(chunks)
        for number in order or range(1, total + 1):
            self.page(cohort, session, number, total, action, chunks[number - 1], name=name)
