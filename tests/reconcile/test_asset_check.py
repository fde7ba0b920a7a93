"""The Dagster asset check on each backfill partition: a partition that did not land fails."""

from __future__ import annotations

import pytest

dg = pytest.importorskip("dagster", reason="the [dagster] extra is not installed")

from orchestration.backfill import currents_events, currents_hours  # noqa: E402
from orchestration.reconciliation import check_partition, landed_in_mixpanel  # noqa: E402
from tests.reconcile.conftest import Landed  # noqa: E402

HOUR_11 = 1_793_530_800  # 2026-11-01 11:00:00 UTC


def _environ(landed: Landed, query, **overrides) -> dict[str, str]:
    return {
        f"RECONCILE_EXPORT_LOOP_{name.upper()}": str(value)
        for name, value in landed.config(query, **overrides).items()
    }


def test_a_partition_that_did_not_land_fails_and_names_its_events(landed, query_emulator):
    environ = _environ(landed, query_emulator)
    assert check_partition("2026-11-01-10", environ).passed
    query_emulator.events = lambda: [
        e for e in landed.events if not HOUR_11 <= e["properties"]["time"] < HOUR_11 + 3600
    ]
    assert check_partition("2026-11-01-10", environ).passed
    missing = check_partition("2026-11-01-11", environ)
    assert not missing.passed
    assert missing.severity == dg.AssetCheckSeverity.ERROR
    drifted = missing.metadata["drifted_rows"].value
    assert drifted and all(
        row["found"] == 0 and row["hour"] == "2026-11-01 11:00:00" for row in drifted
    )
    assert missing.metadata["found"].value == 0
    assert missing.metadata["drift"].value == missing.metadata["expected"].value > 0


def test_without_settings_the_check_warns_what_to_set():
    result = check_partition("2026-11-01-10", {})
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert "RECONCILE_EXPORT_LOOP_STORAGE_URL" in (result.description or "")


def test_the_check_runs_with_the_partition_it_checks(landed, query_emulator, monkeypatch):
    for name, value in _environ(landed, query_emulator).items():
        monkeypatch.setenv(name, value)
    query_emulator.events = list  # nothing landed

    @dg.asset(key=currents_events.key, partitions_def=currents_hours())
    def stand_in() -> None:
        """The partition's import, already done (the test checks only the check)."""

    result = dg.materialize(
        [stand_in, landed_in_mixpanel], partition_key="2026-11-01-10", raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "landed_in_mixpanel"
    assert evaluation.passed is False
