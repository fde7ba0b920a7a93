"""Aggregate Event Counts in the query emulator: answer shape, errors, auth and the query limit."""

from __future__ import annotations

import json

import requests

from sandbox.emulators.mixpanel_query import DEFAULT_PROJECT_ID, MixpanelQueryEmulator

SA = ("sa-user", "sa-secret")
T0 = 1_793_527_200  # 2026-11-01 10:00:00 UTC


def _event(name: str, time: int, insert_id: str) -> dict:
    return {
        "event": name,
        "properties": {"time": time, "distinct_id": "u", "$insert_id": insert_id},
    }


def _get(emulator: MixpanelQueryEmulator, auth=SA, **params):
    query = {
        "project_id": str(DEFAULT_PROJECT_ID),
        "event": json.dumps(["Purchase", "Email Send"]),
        "type": "general",
        "unit": "hour",
        "from_date": "2026-11-01",
        "to_date": "2026-11-01",
        **params,
    }
    return requests.get(f"{emulator.url}/api/query/events", params=query, auth=auth, timeout=10)


def test_counts_per_event_and_hour_in_the_project_timezone():
    events = [_event("Purchase", T0 + 5, "a"), _event("Purchase", T0 + 3700, "b")]
    events.append(_event("Other", T0, "c"))
    emulator = MixpanelQueryEmulator(service_accounts=dict([SA]), events=lambda: events).start()
    try:
        body = _get(emulator).json()
        assert body["legend_size"] == 2
        assert len(body["data"]["series"]) == 24
        assert body["data"]["values"]["Purchase"]["2026-11-01 10:00:00"] == 1
        assert body["data"]["values"]["Purchase"]["2026-11-01 11:00:00"] == 1
        assert set(body["data"]["values"]["Email Send"].values()) == {0}
        assert "Other" not in body["data"]["values"]
        assert emulator.queries["events"] == 1
    finally:
        emulator.stop()


def test_errors_auth_and_the_hourly_query_limit():
    emulator = MixpanelQueryEmulator(
        service_accounts=dict([SA]), events=list, max_queries_per_hour=3
    ).start()
    try:
        assert _get(emulator, auth=("sa-user", "wrong")).status_code == 401
        assert _get(emulator, event="Purchase").status_code == 400
        hourly_uniques = _get(emulator, type="unique")
        assert hourly_uniques.status_code == 400
        assert "hourly uniques" in hourly_uniques.json()["error"]
        params = {"project_id": str(DEFAULT_PROJECT_ID)}
        url = f"{emulator.url}/api/query/events"
        assert requests.post(url, params=params, auth=SA, timeout=10).status_code == 405
        # The 400s and the 405 were admitted queries; the hour's third is now spent.
        assert emulator.queries["events"] == 3
        refused = _get(emulator)
        assert refused.status_code == 429
        assert "3/3 queries" in refused.json()["error"]
    finally:
        emulator.stop()
