"""The real receiver process: what it stores, what it refuses, and what it never logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from braze_mixpanel_common.cohort_spool import open_spool
from tests.cohort_webhook.conftest import PASSWORD, USER
from tests.cohort_webhook.pages import page_body, post, spooled_ids, stored_files, stored_pages
from tests.support.harness import leaks, secret_forms

AUTH = (USER, PASSWORD)


def test_pages_are_spooled_before_the_success_answer(receiver, spool_dir, cohort):
    for page in (2, 1, 3):  # out of order
        answer = post(receiver.url, page_body(cohort, page=page, total=3), AUTH)
        assert answer.status_code == 200
        assert answer.json() == {"action": "members", "status": "success"}
    stored = stored_files(spool_dir / f"cohort={cohort}")
    assert stored[1:] == [f"session=sess-1/members/page-00000{n}-of-000003.json" for n in (1, 2, 3)]
    assert stored[0].startswith("session=sess-1/arrival-members-")  # one marker, first arrival
    (session,) = open_spool(str(spool_dir)).scan(cohort)[cohort]
    assert session.complete
    pages = list(open_spool(str(spool_dir)).iter_pages(session))
    assert [p.parameters["page_info"]["page_count"] for p in pages] == [1, 2, 3]
    assert pages[0].parameters == page_body(cohort, page=1, total=3)["parameters"]
    assert pages[0].received_at.endswith("Z")


def test_a_retried_page_is_acknowledged_and_stored_once(receiver, spool_dir, cohort):
    first = page_body(cohort, action="add_members")
    assert post(receiver.url, first, AUTH).status_code == 200
    retry = page_body(cohort, action="add_members", members=[])
    answer = post(receiver.url, retry, AUTH)
    assert answer.status_code == 200 and answer.json()["status"] == "success"
    assert len(stored_files(spool_dir / f"cohort={cohort}")) == 2  # the page and its marker
    assert spooled_ids(f"{spool_dir}/cohort={cohort}") == {}  # not a spool root
    assert spooled_ids(str(spool_dir), cohort) == {"sess-1": [f"sess-1-p1-{i}" for i in range(3)]}
    assert f"Already had page 1/1 of add_members session sess-1 of cohort {cohort}" in (
        receiver.log()
    )


def test_an_empty_diff_is_stored_as_one_page(receiver, spool_dir, cohort):
    answer = post(receiver.url, page_body(cohort, action="remove_members", members=[]), AUTH)
    assert answer.json() == {"action": "remove_members", "status": "success"}
    (session,) = open_spool(str(spool_dir)).scan(cohort)[cohort]
    assert session.complete and session.total_pages == 1


@pytest.mark.parametrize(
    "auth",
    [None, (USER, "wrong"), ("someone-else", PASSWORD), (USER, PASSWORD + "x")],
    ids=["missing", "wrong-password", "wrong-user", "longer-password"],
)
def test_wrong_or_missing_credentials_401_nothing_stored(receiver, spool_dir, auth, cohort):
    before = stored_files(spool_dir)
    answer = post(receiver.url, page_body(cohort), auth)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert answer.json()["status"] == "failure" and answer.json()["error"]["code"] == 401
    assert stored_files(spool_dir) == before


def test_garbled_authorization_headers_are_401(receiver, spool_dir, cohort):
    before = stored_files(spool_dir)
    for header in ("Basic !!!", "Bearer abc", "Basic " + "bm9jb2xvbg==", "Basic"):
        answer = requests.post(
            receiver.url, json=page_body(cohort), headers={"Authorization": header}, timeout=10
        )
        assert answer.status_code == 401, header
    assert stored_files(spool_dir) == before


def _without(path: str) -> dict:
    body = page_body()
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    del target[last]
    return body


def _with(path: str, value: object) -> dict:
    body = page_body()
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    target[last] = value
    return body


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_BODIES = {
    "not-json": (b"{not json", "the body is not JSON"),
    "not-an-object": ([1, 2], "must be a JSON object"),
    "unknown-action": (_with("action", "delete_everything"), "unknown action 'delete_everything'"),
    "no-action": (_without("action"), "unknown action None"),
    "no-parameters": (_without("parameters"), "'parameters' must be an object"),
    "no-cohort-id": (
        _without("parameters.mixpanel_cohort_id"),
        "'parameters.mixpanel_cohort_id' is missing",
    ),
    "empty-session": (
        _with("parameters.mixpanel_session_id", ""),
        "'parameters.mixpanel_session_id' is missing or empty",
    ),
    "members-not-list": (
        _with("parameters.members", {"a": 1}),
        "'parameters.members' must be a list",
    ),
    "member-not-object": (
        _with("parameters.members", ["someone"]),
        "'parameters.members[0]' must be an object",
    ),
    "page-info-not-object": (
        _with("parameters.page_info", [1, 1]),
        "'parameters.page_info' must be an object",
    ),
    "page-over-total": (
        _with("parameters.page_info", {"total_pages": 2, "page_count": 3}),
        "page_count' is 3: must be between 1 and 2",
    ),
    "page-zero": (
        _with("parameters.page_info", {"total_pages": 2, "page_count": 0}),
        "page_count' is 0",
    ),
    "negative-total": (
        _with("parameters.page_info", {"total_pages": -1, "page_count": 1}),
        "total_pages' must be a whole number",
    ),
    "page-as-text": (
        _with("parameters.page_info", {"total_pages": "two", "page_count": 1}),
        "total_pages' must be a whole number",
    ),
    "long-cohort-id": (
        _with("parameters.mixpanel_cohort_id", "c" * 256),
        "'parameters.mixpanel_cohort_id' is 256 characters long: at most 255",
    ),
    "long-session-id": (
        _with("parameters.mixpanel_session_id", "s" * 300),
        "'parameters.mixpanel_session_id' is 300 characters long",
    ),
    "total-over-bound": (
        _with("parameters.page_info", {"total_pages": 1_000_000_000, "page_count": 1}),
        "total_pages' is 1000000000: at most 100000",
    ),
    "page-over-bound": (
        _with("parameters.page_info", {"total_pages": 100_001, "page_count": 100_001}),
        "at most 100000",
    ),
    "nested-deep-in-a-member": (
        _with("parameters.members", [{"mixpanel_distinct_id": "a", "x": _nested(20)}]),
        "'parameters.members[0]' is nested deeper than 16 levels",
    ),
    "nested-5000-deep": (
        b'{"action": "members", "parameters": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "nested too deep",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_body_not_in_mixpanels_format_400_names_the_problem(receiver, spool_dir, case):
    body, message = BAD_BODIES[case]
    before = stored_files(spool_dir)
    answer = post(receiver.url, body, AUTH)
    assert answer.status_code == 400
    failure = answer.json()
    assert failure["status"] == "failure" and failure["error"]["code"] == 400
    assert message in failure["error"]["message"]
    assert stored_files(spool_dir) == before


EMPTY_CALLS = {
    "one-page-no-members": {"total_pages": 1, "page_count": 1},
    "zero-of-zero": {"total_pages": 0, "page_count": 0},
    "one-of-zero": {"total_pages": 0, "page_count": 1},
    "zero-of-one": {"total_pages": 1, "page_count": 0},
    "absent": None,
}


@pytest.mark.parametrize("shape", list(EMPTY_CALLS))
def test_every_empty_call_shape_is_stored_as_one_empty_page(receiver, spool_dir, cohort, shape):
    for action in ("add_members", "remove_members"):
        body = page_body(cohort, session="quiet", action=action, members=[])
        if EMPTY_CALLS[shape] is None:
            del body["parameters"]["page_info"]
        else:
            body["parameters"]["page_info"] = EMPTY_CALLS[shape]
        if action == "remove_members":
            body["parameters"].pop("members")  # absent on an empty call: also accepted
        answer = post(receiver.url, body, AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"action": action, "status": "success"}
    add, remove = open_spool(str(spool_dir)).scan(cohort)[cohort]
    assert (add.action, remove.action) == ("add_members", "remove_members")  # both kept
    assert add.complete and remove.complete and add.total_pages == remove.total_pages == 1


def test_unknown_fields_and_members_without_the_property_are_stored(receiver, spool_dir, cohort):
    body = page_body(cohort, members=[{"mixpanel_distinct_id": "x", "phone_number": "1"}])
    body["schema_version"] = 2
    body["parameters"]["mixpanel_sync_id"] = {"new": ["field"]}
    answer = post(receiver.url, body, AUTH)
    assert answer.status_code == 200
    (session,) = open_spool(str(spool_dir)).scan(cohort)[cohort]
    (page,) = open_spool(str(spool_dir)).iter_pages(session)
    assert page.parameters["mixpanel_sync_id"] == {"new": ["field"]}


def test_a_sender_disconnecting_mid_body_leaves_one_line_no_traceback(receiver, spool_dir):
    import socket

    before = stored_files(spool_dir)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as raw:
            raw.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\nAuthorization: Basic "
                + _basic(USER, PASSWORD)
                + b'\r\n\r\n{"action": "members", "parameters": {'
            )
    deadline = time.monotonic() + 30
    while receiver.log().count("disconnected before") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the receiver notices each closed connection on its own schedule
    assert receiver.log().count("disconnected before its body arrived") == 3
    assert "Traceback" not in receiver.log()
    assert stored_files(spool_dir) == before  # nothing of a half body is stored
    assert post(receiver.url, page_body(), AUTH).status_code == 200  # still serving


def _basic(user: str, password: str) -> bytes:
    import base64

    return base64.b64encode(f"{user}:{password}".encode())


def test_the_failure_body_keeps_the_action_when_known(receiver):
    answer = post(receiver.url, _with("parameters.members", "x"), AUTH)
    assert answer.json()["action"] == "members"


def test_an_oversize_body_413_nothing_stored(receivers, tmp_path):
    spool_dir = tmp_path / "spool"
    receiver = receivers(spool_dir, args=["--max-body-mb", "0.01"])  # 10,485 bytes
    big = page_body(members=[{"mixpanel_distinct_id": f"user-{i}"} for i in range(1000)])
    answer = post(receiver.url, big, AUTH)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == 413
    # Without a Content-Length (chunked), the limit holds while the body streams in.
    chunks = (json.dumps(big)[i : i + 1000].encode() for i in range(0, len(json.dumps(big)), 1000))
    answer = requests.post(receiver.url, data=chunks, auth=AUTH, timeout=30)
    assert answer.status_code == 413
    assert post(receiver.url, page_body(), AUTH).status_code == 200  # small pages still pass
    assert len(stored_pages(spool_dir)) == 1


def test_spool_unavailable_503_then_mixpanels_retry_succeeds(receivers, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool's parent folder should be")
    spool_url = blocker / "spool"
    receiver = receivers(spool_url)
    health = requests.get(f"{receiver.url}healthz", timeout=10)
    assert health.status_code == 503 and health.json() == {"status": "unavailable"}
    assert "Health check failed: the spool" in receiver.log()
    answer = post(receiver.url, page_body(), AUTH)
    assert answer.status_code == 503
    assert answer.json()["error"]["message"] == "the spool is unavailable; retry later"
    assert "Spool unavailable, answering 503" in receiver.log()
    blocker.unlink()  # storage is back
    assert requests.get(f"{receiver.url}healthz", timeout=10).status_code == 200
    assert post(receiver.url, page_body(), AUTH).status_code == 200
    assert stored_pages(spool_url) == [
        "cohort=77/session=sess-1/members/page-000001-of-000001.json"
    ]


def test_concurrent_senders_and_duplicates_each_page_once(receiver, spool_dir, cohort):
    sessions = [f"s{n}" for n in range(8)]
    errors: list[str] = []

    def sender(index: int) -> None:
        http = requests.Session()
        http.auth = AUTH
        # Each sender delivers its own session and repeats the next sender's (as retries would).
        for session in (sessions[index], sessions[(index + 1) % 8]):
            for page in range(1, 11):
                answer = http.post(receiver.url, json=page_body(cohort, session, page, 10))
                if answer.status_code != 200:
                    errors.append(f"{session}/{page}: {answer.status_code}")

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(stored_pages(spool_dir / f"cohort={cohort}")) == 80
    found = spooled_ids(str(spool_dir), cohort)
    assert sorted(found) == sessions
    assert all(len(ids) == 30 and len(set(ids)) == 30 for ids in found.values())


def test_replicas_share_one_spool(receiver, receivers, spool_dir, cohort):
    second = receivers(spool_dir)
    for page in range(1, 5):
        target = receiver if page % 2 else second
        assert post(target.url, page_body(cohort, page=page, total=4), AUTH).status_code == 200
        retry = page_body(cohort, page=page, total=4)
        assert post(receiver.url, retry, AUTH).status_code == 200
    (session,) = open_spool(str(spool_dir)).scan(cohort)[cohort]
    assert session.complete and len(stored_pages(spool_dir / f"cohort={cohort}")) == 4


def test_healthz_leaves_nothing_behind(receiver, spool_dir):
    before = stored_files(spool_dir)
    for _ in range(3):
        answer = requests.get(f"{receiver.url}healthz", timeout=10)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert stored_files(spool_dir) == before


def test_logs_hold_no_credentials_and_no_member_data(receiver, cohort):
    body = page_body(cohort, page=1, total=2)
    post(receiver.url, body, AUTH)
    post(receiver.url, body, AUTH)  # a repeat
    post(receiver.url, page_body(cohort, page=2, total=2), (USER, "guessed-password"))  # a 401
    post(receiver.url, _with("parameters.members", "x"), AUTH)  # a 400
    log = receiver.log()
    assert f"Stored page 1/2 of members session sess-1 of cohort {cohort} (3 members)." in log
    forms = secret_forms([PASSWORD, "guessed-password"], [(USER, PASSWORD)])
    assert leaks(forms, {"receiver log": log}) == []
    for value in body["parameters"]["members"][0].values():
        assert value not in log, value


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if "MIXPANEL_WEBHOOK" not in k}
    return subprocess.run(
        [sys.executable, "-m", "mixpanel_cohort_webhook", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_refuses_to_start_without_credentials(tmp_path):
    result = _run_cli(["--spool-url", str(tmp_path)], {"MIXPANEL_WEBHOOK_USERNAME": "u"})
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "ERROR" in line and "MIXPANEL_WEBHOOK_PASSWORD" in line and "--no-auth" in line


def test_bad_spool_options_name_the_variable_not_the_value(tmp_path):
    env = {
        "MIXPANEL_WEBHOOK_USERNAME": "u",
        "MIXPANEL_WEBHOOK_PASSWORD": "p4ssword",
        "MIXPANEL_WEBHOOK_SPOOL_OPTIONS": '{"secret": "sekrit-key",',
    }
    result = _run_cli(["--spool-url", str(tmp_path)], env)
    assert result.returncode == 1
    assert "MIXPANEL_WEBHOOK_SPOOL_OPTIONS is not valid JSON" in result.stderr
    assert "sekrit-key" not in result.stderr and "p4ssword" not in result.stderr


def test_no_auth_must_be_explicit_and_then_accepts(receivers, tmp_path: Path):
    receiver = receivers(tmp_path / "spool", credentials=None)
    assert post(receiver.url, page_body(), None).status_code == 200
    assert "deliveries are accepted without credentials" in receiver.log()
