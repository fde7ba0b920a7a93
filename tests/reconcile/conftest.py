"""One Currents export, loaded into the /import emulator once, for every export-loop test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.mixpanel_query import DEFAULT_PROJECT_ID, MixpanelQueryEmulator
from sandbox.loop.currents_gen import Export, generate_export
from tests.support.mixpanel import run_pipeline

SA_USER = "sa-user.mp-service-account"
SA_SECRET = "sa-secret-reconcile-7c1d"


@dataclass
class Landed:
    """The export, and the events the /import emulator holds after the loop ran."""

    root: Path
    export: Export
    events: list[dict[str, Any]]

    def config(self, query: MixpanelQueryEmulator, **overrides: Any) -> dict[str, Any]:
        config = {
            "storage_url": str(self.root / "currents"),
            "api_url": query.url,
            "project_id": str(DEFAULT_PROJECT_ID),
            "service_account_username": SA_USER,
            "service_account_secret": SA_SECRET,
        }
        config.update(overrides)
        return config


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landed]:
    tmp = tmp_path_factory.mktemp("export-loop")
    export = generate_export(tmp / "bucket", seed=26, events_per_file=30, hours=2)
    importer = MixpanelImportEmulator().start()
    try:
        run_pipeline(tmp, tmp / "bucket", importer)
        yield Landed(tmp / "bucket", export, importer.events)
    finally:
        importer.stop()


@pytest.fixture
def query_emulator(landed: Landed) -> Iterator[MixpanelQueryEmulator]:
    emulator = MixpanelQueryEmulator(service_accounts={SA_USER: SA_SECRET})
    emulator.events = lambda: landed.events
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
