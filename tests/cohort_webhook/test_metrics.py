"""``GET /metrics`` of the real receiver process: what it counts, and who may read it."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.cohort_webhook.conftest import PASSWORD, USER
from tests.cohort_webhook.pages import page_body, post

AUTH = (USER, PASSWORD)
PREFIX = "mixpanel_cohort_webhook_"


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(f"{url}metrics", auth=AUTH, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_metrics_count_pages_members_bytes_and_spool_trouble(receivers, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool's parent folder should be")
    receiver = receivers(blocker / "spool")
    # The spool is down: a 503 and a spool error; then it is back.
    assert post(receiver.url, page_body("7"), AUTH).status_code == 503
    blocker.unlink()
    bodies = [page_body("7", page=n, total=2) for n in (1, 2)]
    bodies.append(page_body("8", action="add_members"))
    sent = 0
    for body in bodies:
        answer = post(receiver.url, body, AUTH)
        assert answer.status_code == 200
        sent += len(answer.request.body or b"")
    assert post(receiver.url, b"not json", AUTH).status_code == 400
    assert post(receiver.url, {"action": "members"}, AUTH).status_code == 400
    assert post(receiver.url, page_body("7"), ("mixpanel-sync", "wrong")).status_code == 401

    metrics = _samples(receiver.url)
    assert metrics[PREFIX + "pages_accepted_total", (("action", "members"),)] == 2
    assert metrics[PREFIX + "pages_accepted_total", (("action", "add_members"),)] == 1
    members = sum(len(b["parameters"]["members"]) for b in bodies[:2])
    assert metrics[PREFIX + "members_received_total", (("action", "members"),)] == members
    refused = PREFIX + "pages_refused_total"
    assert metrics[refused, (("action", "unknown"), ("status", "400"))] == 1
    assert metrics[refused, (("action", "members"), ("status", "400"))] == 1
    assert metrics[refused, (("action", "unknown"), ("status", "401"))] == 1
    assert metrics[refused, (("action", "unknown"), ("status", "503"))] == 1
    assert metrics[PREFIX + "spool_errors_total", ()] == 1
    assert metrics[PREFIX + "spool_write_seconds_count", ()] == 3
    assert metrics[PREFIX + "received_bytes_total", ()] >= sent
    last = PREFIX + "last_accepted_page_timestamp_seconds"
    assert metrics[last, (("cohort_id", "7"),)] > 1.7e9
    assert (last, (("cohort_id", "8"),)) in metrics


def test_metrics_need_the_receivers_credentials(receiver):
    assert requests.get(f"{receiver.url}metrics", timeout=10).status_code == 401
    wrong = requests.get(f"{receiver.url}metrics", auth=(USER, "nope"), timeout=10)
    assert wrong.status_code == 401
    assert PASSWORD not in wrong.text
