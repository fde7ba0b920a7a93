"""The closed loop in a box: a Mixpanel project that builds cohorts from the events it imported.

:class:`MixpanelLoop` runs the ``/import`` emulator and the query-API emulator side by side. Each
``cohorts/list`` query rebuilds the cohorts from the events ``/import`` has stored, following a
small JSON file of definitions, and gives every distinct_id a profile whose
``$braze_external_id`` is the distinct_id (Braze's Currents connector uses the Braze
``external_user_id`` as distinct_id, so the ids line up as they do in a real project)::

    {"cohorts": [
      {"id": 101, "name": "Purchased in the sample", "event": "Purchase"},
      {"id": 103, "name": "Repeat buyers", "event": "Purchase", "min_count": 2},
      {"id": 104, "name": "Active in the last 2 hours", "event": "Session Start",
       "within_hours": 2}
    ]}

``event`` is a Mixpanel event name or a list of names; ``min_count`` (default 1) is how many
such events a user needs; ``within_hours`` only counts events at most that many hours older
than the newest event the project holds (the sample's "now", so results do not depend on the
wall clock).

Run it as a command::

    python -m sandbox.loop.mixpanel_loop --cohorts demo/cohorts.json

which serves ``/import`` on 127.0.0.1:8765 and the query API on 127.0.0.1:8766 (the sandbox
environment's URLs) until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.emulators.mixpanel_event_rules import MS_THRESHOLD
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.mixpanel_query import Cohort, MixpanelQueryEmulator
from sandbox.emulators.server import Request

IMPORT_PORT = 8765
QUERY_PORT = 8766
USER_ID_PROPERTY = "$braze_external_id"


@dataclass(frozen=True)
class CohortDefinition:
    """One behavioural cohort: users with ``min_count`` of ``events`` (within a window)."""

    id: int
    name: str
    events: tuple[str, ...]
    min_count: int = 1
    within_hours: float | None = None
    description: str = ""

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> CohortDefinition:
        """Parse one entry of the definitions file; raise ValueError naming what is wrong."""
        try:
            raw_events = item["event"]
            cohort_id, name = int(item["id"]), str(item["name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"cohort definition needs id, name and event: {item!r}") from exc
        events = (raw_events,) if isinstance(raw_events, str) else tuple(map(str, raw_events))
        min_count = int(item.get("min_count", 1))
        if min_count < 1 or not events:
            raise ValueError(f"cohort {cohort_id}: min_count must be >= 1 and event non-empty")
        window = item.get("within_hours")
        return cls(
            id=cohort_id,
            name=name,
            events=events,
            min_count=min_count,
            within_hours=None if window is None else float(window),
            description=str(item.get("description", "")),
        )


def load_definitions(path: str | Path) -> list[CohortDefinition]:
    """Read a definitions file (``{"cohorts": [...]}``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    definitions = [CohortDefinition.from_json(item) for item in data["cohorts"]]
    ids = Counter(d.id for d in definitions)
    if duplicated := [i for i, n in ids.items() if n > 1]:
        raise ValueError(f"duplicate cohort ids in {path}: {duplicated}")
    return definitions


def _seconds(raw_time: float) -> float:
    return raw_time / 1000 if raw_time >= MS_THRESHOLD else float(raw_time)


def build_cohorts(
    definitions: Iterable[CohortDefinition], events: Iterable[dict[str, Any]]
) -> tuple[list[Cohort], dict[str, dict[str, Any]]]:
    """Evaluate the definitions over imported events.

    Args:
        definitions: The cohorts to build.
        events: Events as Mixpanel stores them (``event`` and ``properties``).

    Returns:
        The cohorts (members sorted) and a profile per distinct_id seen in the events.
    """
    occurrences: list[tuple[str, str, float]] = []
    for event in events:
        props = event["properties"]
        occurrences.append((event["event"], str(props["distinct_id"]), _seconds(props["time"])))
    newest = max((t for _, _, t in occurrences), default=0.0)
    profiles = {user: {USER_ID_PROPERTY: user} for _, user, _ in occurrences}
    cohorts = []
    for definition in definitions:
        since = None if definition.within_hours is None else newest - definition.within_hours * 3600
        counts: defaultdict[str, int] = defaultdict(int)
        for name, user, when in occurrences:
            if name in definition.events and (since is None or when > since):
                counts[user] += 1
        members = sorted(u for u, n in counts.items() if n >= definition.min_count)
        cohorts.append(
            Cohort(
                id=definition.id,
                name=definition.name,
                description=definition.description,
                created="2026-01-01 00:00:00",
                members=members,
            )
        )
    return cohorts, profiles


class MixpanelLoop:
    """``/import`` and the query API of one emulated project; cohorts follow the events.

    Args:
        definitions: Cohort definitions evaluated on every ``cohorts/list`` query.
        import_port: Port of the ``/import`` emulator (0 = any free port).
        query_port: Port of the query-API emulator (0 = any free port).
    """

    def __init__(
        self,
        definitions: list[CohortDefinition],
        *,
        import_port: int = 0,
        query_port: int = 0,
    ) -> None:
        self.definitions = definitions
        self.importer = MixpanelImportEmulator(port=import_port)
        # Aggregate Event Counts (the export-loop reconciliation) counts what /import stored.
        self.query = MixpanelQueryEmulator(port=query_port, events=lambda: self.importer.events)
        self.query.on_query = self._on_query
        self.rebuilds = 0
        self._rebuild_lock = threading.Lock()

    @property
    def import_url(self) -> str:
        """Base URL for target-mixpanel's ``api_url``."""
        return self.importer.url

    @property
    def query_url(self) -> str:
        """Base URL for tap-mixpanel-cohorts' ``api_url``."""
        return self.query.url

    def rebuild(self) -> list[Cohort]:
        """Recompute every cohort and profile from the events imported so far."""
        with self._rebuild_lock:
            cohorts, profiles = build_cohorts(self.definitions, self.importer.events)
            with self.query.lock:
                self.query.cohorts = {c.id: c for c in cohorts}
                self.query.profiles = profiles
            self.rebuilds += 1
        return cohorts

    def cohorts(self) -> list[Cohort]:
        """The cohorts as the query API currently serves them."""
        with self.query.lock:
            return list(self.query.cohorts.values())

    def _on_query(self, request: Request) -> None:
        if request.path.rstrip("/").endswith("cohorts/list"):
            self.rebuild()

    def start(self) -> MixpanelLoop:
        """Serve both emulators in background threads."""
        self.importer.start()
        self.query.start()
        return self

    def stop(self) -> None:
        """Stop both emulators."""
        self.importer.stop()
        self.query.stop()

    def __enter__(self) -> MixpanelLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the loop until interrupted."""
    parser = argparse.ArgumentParser(description="Mixpanel /import + query API with live cohorts")
    parser.add_argument("--cohorts", type=Path, default=Path("demo/cohorts.json"))
    parser.add_argument("--import-port", type=int, default=IMPORT_PORT)
    parser.add_argument("--query-port", type=int, default=QUERY_PORT)
    args = parser.parse_args(argv)
    loop = MixpanelLoop(
        load_definitions(args.cohorts), import_port=args.import_port, query_port=args.query_port
    )
    print(f"Mixpanel /import on {loop.import_url}, query API on {loop.query_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt), loop:
        threading.Event().wait()


if __name__ == "__main__":
    main()
