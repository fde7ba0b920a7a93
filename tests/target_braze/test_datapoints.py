"""Braze data points of /users/track attribute objects, in real and dry runs."""

from __future__ import annotations

import json
import logging

from braze_mixpanel_common.counters import Counters
from braze_mixpanel_common.progress import summaries
from target_braze.delivery.datapoints import data_points, total
from target_braze.report import UsersProgress
from tests.support.braze import run_target, snapshot
from tests.support.clock import FakeClock


def test_each_attribute_set_and_each_array_operation_is_one_data_point() -> None:
    assert data_points({"external_id": "u1", "_update_existing_only": True}) == 0
    assert data_points({"external_id": "u1", "plan": "gold", "age": None}) == 2
    assert data_points({"external_id": "u1", "cohorts": {"add": ["A", "B"]}}) == 1
    assert data_points({"braze_id": "b", "cohorts": {"add": ["A"], "remove": ["B"]}}) == 2
    assert data_points({"user_alias": {"alias_name": "a"}, "cohorts": {"remove": []}}) == 0
    assert data_points({"external_id": "u1", "tags": ["x", "y"], "nested": {"k": 1}}) == 2
    assert total([{"external_id": "u1", "a": 1}, {"external_id": "u2", "a": 1, "b": 2}]) == 3


def test_a_run_reports_the_data_points_braze_confirmed(braze, config, users, caplog) -> None:
    with caplog.at_level(logging.INFO):
        target = run_target(config, snapshot({1: ("A", users[:80]), 2: ("B", users[:10])}))
    (summary,) = summaries(caplog.text, "target-braze")
    # one object per user: 80 users gain A (10 of them also B in the same add) = 80 points
    assert summary["data_points"] == 80 and summary["users"] == 80
    assert summary["dry_run"] is False and summary["cohort_members_added"] == 90
    assert "Braze data points: 80 consumed by 80 users" in caplog.text
    assert target.sync.summary()["requests"] == summary["requests"] == 2


def test_a_dry_run_reports_what_a_real_run_would_consume(braze, config, users, tmp_path, caplog):
    out = tmp_path / "dry.jsonl"
    with caplog.at_level(logging.INFO):
        run_target(
            {**config, "dry_run": True, "dry_run_path": str(out)},
            snapshot({1: ("A", users[:80])}),
        )
    assert braze.requests_seen == 0
    bodies = [json.loads(line)["body"] for line in out.read_text().splitlines()]
    expected = sum(data_points(obj) for body in bodies for obj in body["attributes"])
    (summary,) = summaries(caplog.text, "target-braze")
    assert summary["dry_run"] is True and summary["data_points"] == expected == 80
    assert "Braze data points: 80 a real run would consume by 80 users" in caplog.text


def test_progress_line_counts_requests_users_and_data_points(caplog) -> None:
    counters = Counters()
    clock = FakeClock()
    progress = UsersProgress(counters, clock, logging.getLogger("target-braze"), dry_run=False)
    with caplog.at_level(logging.INFO, logger="target-braze"):
        counters.add(requests=1)
        progress.count(75, 80)  # not due yet
        clock.sleep(5)
        counters.add(requests=1, retries=1, rate_limited=1)
        progress.count(75, 75)
    assert [r.getMessage() for r in caplog.records] == [
        "target-braze progress: 2 requests (1 retries, 1 rate-limited), 150 users confirmed, "
        "155 data points, 30 users/s"
    ]


def test_partner_mode_counts_user_ids_and_no_data_points(braze, config, caplog) -> None:
    ids = [f"p{i:04d}" for i in range(1500)]
    braze.users.update({u: {} for u in ids})
    partner = {k: v for k, v in config.items() if k != "api_key"}
    partner |= {
        "mode": "partner_cohorts",
        "partner_name": "mixpanel",
        "partner_api_key": "partner-key-123",
        "data_import_key": "import-key-456",
    }
    with caplog.at_level(logging.INFO):
        run_target(partner, snapshot({7: ("Whales", ids)}))
    (summary,) = summaries(caplog.text, "target-braze")
    assert summary["mode"] == "partner_cohorts" and summary["users"] == 1500
    assert summary["data_points"] == 0 and summary["cohort_members_added"] == 1500
    assert "Braze data points" not in caplog.text
