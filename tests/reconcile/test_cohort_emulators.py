"""The emulator endpoints the cohort reconciliation relies on, as the vendors document them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_query import Cohort, MixpanelQueryEmulator
from tests.support.braze import API_KEY
from tests.support.clock import FakeClock
from tests.support.cohorts import SA_SECRET, SA_USER

BEARER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def braze() -> Iterator[BrazeEmulator]:
    emulator = BrazeEmulator(
        api_key=API_KEY, existing_users=["a", "b"], export_rate_limit=3, clock=FakeClock()
    )
    emulator.users["a"] = {"mixpanel_cohorts": ["Buyers"], "first_name": "Ann"}
    with emulator:
        yield emulator


def export(braze: BrazeEmulator, body: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(
        f"{braze.url}/users/export/ids", json=body, headers=BEARER if headers is None else headers
    )


def test_export_ids_answers_custom_attributes_and_unknown_ids(braze):
    answer = export(braze, {"external_ids": ["a", "zz"], "fields_to_export": ["custom_attributes"]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["users"] == [
        {"external_id": "a", "custom_attributes": {"mixpanel_cohorts": ["Buyers"]}}
    ]
    assert body["invalid_user_ids"] == ["zz"]
    assert answer.headers["X-RateLimit-Limit"] == "3"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (
            {"external_ids": ["a"], "fields_to_export": ["email"]},
            {"Authorization": "Bearer x"},
            401,
        ),
        ({"external_ids": [f"u{i}" for i in range(51)], "fields_to_export": ["email"]}, None, 400),
        ({"external_ids": ["a"]}, None, 400),
        ({"external_ids": ["a"], "fields_to_export": ["mixpanel_cohorts"]}, None, 400),
        ({"external_ids": ["a"], "fields_to_export": 3}, None, 400),
    ],
    ids=["bad-key", "over-50-ids", "no-fields_to_export", "not-an-export-field", "not-an-array"],
)
def test_export_ids_refusals(braze, body, headers, status):
    answer = export(braze, body, headers)
    assert answer.status_code == status
    assert answer.json()["message"]


def test_export_ids_rate_limit_answers_429_with_reset_headers(braze):
    body = {"external_ids": ["a"], "fields_to_export": ["email"]}
    assert [export(braze, body).status_code for _ in range(4)] == [200, 200, 200, 429]
    limited = export(braze, body)
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > braze.clock.time()
    assert len(braze.export_requests) == 3  # only admitted requests are counted
    # /users/track keeps its own budget
    track = requests.post(f"{braze.url}/users/track", json={"attributes": []}, headers=BEARER)
    assert track.status_code == 201


def test_older_workspaces_export_every_field_without_fields_to_export(braze):
    braze.require_fields_to_export = False
    user = export(braze, {"external_ids": ["a"]}).json()["users"][0]
    assert user["first_name"] == "Ann" and user["custom_attributes"]["mixpanel_cohorts"]


@pytest.fixture
def mixpanel() -> Iterator[MixpanelQueryEmulator]:
    profiles = {"d1": {"$braze_external_id": "b1"}, "d2": {"$braze_external_id": "b2"}, "d3": {}}
    emulator = MixpanelQueryEmulator(
        [Cohort(1, "Buyers", "", "2024-01-01 00:00:00", 1, ["d1", "d2", "d3"])],
        profiles,
        service_accounts={SA_USER: SA_SECRET},
    )
    with emulator:
        yield emulator


def engage(mixpanel: MixpanelQueryEmulator, **form: str) -> requests.Response:
    return requests.post(
        f"{mixpanel.url}/api/query/engage",
        params={"project_id": "12345"},
        data={"filter_by_cohort": json.dumps({"id": 1}), **form},
        auth=(SA_USER, SA_SECRET),
    )


def ids(answer: requests.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["$distinct_id"] for r in answer.json()["results"]]


def test_engage_filters_a_cohort_by_distinct_ids_and_by_property(mixpanel):
    assert ids(engage(mixpanel, distinct_ids=json.dumps(["d3", "d9"]))) == ["d3"]
    where = 'properties["$braze_external_id"] == "b2" or properties["$braze_external_id"] == "x"'
    assert ids(engage(mixpanel, where=where)) == ["d2"]
    assert engage(mixpanel, where=where).json()["total"] == 1
    assert ids(engage(mixpanel, where=where, distinct_ids=json.dumps(["d1"]))) == []


@pytest.mark.parametrize(
    "form",
    [{"distinct_ids": "d1"}, {"where": 'defined(properties["x"])'}],
    ids=["ids-not-json", "unsupported-where"],
)
def test_engage_refuses_filters_it_cannot_read(mixpanel, form):
    answer = engage(mixpanel, **form)
    assert answer.status_code == 400
    assert answer.json()["error"]
