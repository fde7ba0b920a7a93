"""The query-API emulator keeps the documented contract the tap is built against."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.cohorts import API_SECRET, SA_SECRET, SA_USER

ROOT = Path(__file__).resolve().parents[2]


def _auth(user: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


SA = _auth(SA_USER, SA_SECRET)
PID = {"project_id": "12345"}


def engage(emulator, data, headers=SA, params=PID):
    return requests.post(
        f"{emulator.url}/api/query/engage", params=params, data=data, headers=headers, timeout=10
    )


def test_cohorts_list_is_a_bare_array_by_get_or_post(emulator):
    for method in ("GET", "POST"):
        answer = requests.request(
            method, f"{emulator.url}/api/query/cohorts/list", params=PID, headers=SA, timeout=10
        )
        assert answer.status_code == 200
        body = answer.json()
        assert isinstance(body, list)
        assert body[0] == {
            "count": 4,
            "is_visible": 1,
            "description": "Bought twice",
            "created": "2024-01-02 03:04:05",
            "project_id": 12345,
            "id": 1,
            "name": "Buyers",
        }


def test_engage_pages_with_session_and_total_only_on_page_zero(make_emulator):
    emulator = make_emulator(page_size=1000)
    first = engage(emulator, {"filter_by_cohort": '{"id": 2}'}).json()
    assert first["page"] == 0 and first["page_size"] == 1000 and first["total"] == 2500
    assert first["status"] == "ok" and len(first["results"]) == 1000
    session = first["session_id"]
    second = engage(
        emulator, {"filter_by_cohort": '{"id": 2}', "page": 1, "session_id": session}
    ).json()
    assert "total" not in second
    assert second["results"][0]["$distinct_id"] == "big-1000"
    third = engage(
        emulator, {"filter_by_cohort": '{"id": 2}', "page": 2, "session_id": session}
    ).json()
    assert len(third["results"]) == 500


def test_engage_refuses_unknown_or_missing_session(emulator):
    unknown = engage(emulator, {"filter_by_cohort": '{"id": 2}', "page": 1, "session_id": "nope"})
    assert unknown.status_code == 400
    assert "session_id" in unknown.json()["error"]
    missing = engage(emulator, {"filter_by_cohort": '{"id": 2}', "page": 1})
    assert missing.status_code == 400


def test_engage_output_properties_and_include_all_users(emulator):
    body = engage(
        emulator, {"filter_by_cohort": '{"id": 1}', "output_properties": '["$email"]'}
    ).json()
    assert body["results"][0] == {"$distinct_id": "u1", "$properties": {"$email": "u1@example.com"}}
    assert body["results"][2]["$distinct_id"] == 42  # ints pass through as Mixpanel types them
    with_profiles = engage(
        emulator, {"filter_by_cohort": '{"id": 1}', "include_all_users": "false"}
    ).json()
    assert with_profiles["total"] == 4


def test_engage_by_query_string_and_get(emulator):
    answer = requests.get(
        f"{emulator.url}/api/query/engage",
        params={**PID, "filter_by_cohort": '{"id": 1}'},
        headers=SA,
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.json()["total"] == 4


def test_auth_answers(emulator):
    assert engage(emulator, {}, headers=_auth(SA_USER, "bad")).status_code == 401
    assert engage(emulator, {}, headers={}).status_code == 401
    assert engage(emulator, {}, params={"project_id": "1"}).status_code == 403
    assert engage(emulator, {}, params={}).status_code == 400
    legacy = engage(
        emulator, {"filter_by_cohort": '{"id": 1}'}, headers=_auth(API_SECRET), params={}
    )
    assert legacy.status_code == 200
    bad = engage(emulator, {}, headers=_auth("wrong"), params={})
    assert bad.status_code == 401
    assert "invalid project secret" in bad.json()["error"]


def test_rate_limit_sliding_hour_with_mixpanel_body(make_emulator, clock):
    emulator = make_emulator(max_queries_per_hour=3)
    codes = [engage(emulator, {"filter_by_cohort": '{"id": 1}'}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    body = engage(emulator, {}).json()
    assert body["error"].startswith("Query rate limit exceeded for project_id: 12345.")
    assert "3/3 queries running in the last hour" in body["error"]
    clock.sleep(3601)
    assert engage(emulator, {"filter_by_cohort": '{"id": 1}'}).status_code == 200


def test_rate_limit_concurrency(make_emulator):
    import concurrent.futures

    emulator = make_emulator(max_concurrent=2, query_seconds=0.2, max_queries_per_hour=1000)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: engage(emulator, {}).status_code, range(6)))
    assert codes.count(429) >= 1
    assert emulator.max_in_flight == 2


def test_runs_as_a_command_with_a_data_file(tmp_path):
    data = {
        "service_accounts": {"me": "pw"},
        "profiles": {"a": {"$braze_external_id": "A"}},
        "cohorts": [
            {"id": 9, "name": "From data", "members": ["a", "b"]},
            {"id": 10, "name": "Gen", "generate": {"count": 3000}},
        ],
    }
    path = tmp_path / "cohorts.json"
    path.write_text(json.dumps(data))
    with socket.socket() as probe:  # borrow a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.emulators.mixpanel_query",
            "--port",
            str(port),
            "--cohorts",
            str(path),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "Mixpanel query emulator on" in proc.stderr.readline()
        url = f"http://127.0.0.1:{port}"
        listing = requests.post(
            f"{url}/api/query/cohorts/list", params=PID, headers=_auth("me", "pw"), timeout=10
        ).json()
        assert [(c["id"], c["count"]) for c in listing] == [(9, 2), (10, 3000)]
        page = requests.post(
            f"{url}/api/query/engage",
            params=PID,
            headers=_auth("me", "pw"),
            data={"filter_by_cohort": '{"id": 9}'},
            timeout=10,
        ).json()
        assert page["results"][0] == {
            "$distinct_id": "a",
            "$properties": {"$braze_external_id": "A"},
        }
        assert page["results"][1] == {"$distinct_id": "b", "$properties": {}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
