"""mode: partner_cohorts against the emulator's cohort-import endpoints."""

from __future__ import annotations

import pytest

from braze_mixpanel_common.errors import DestinationError
from tests.support.braze import run_target, snapshot


@pytest.fixture
def partner_config(config):
    cfg = {k: v for k, v in config.items() if k != "api_key"}
    return {
        **cfg,
        "mode": "partner_cohorts",
        "partner_name": "mixpanel",
        "partner_api_key": "partner-key-123",
        "data_import_key": "import-key-456",
    }


@pytest.fixture
def many_users(braze):
    ids = [f"p{i:05d}" for i in range(2500)]
    braze.users.update({u: {} for u in ids})
    return ids


def test_partner_mode_names_cohorts_and_sends_1000_ids_per_request(
    braze, partner_config, many_users
):
    run_target(partner_config, snapshot({7: ("Whales", many_users), 8: ("Few", many_users[:3])}))
    assert braze.cohorts["7"]["name"] == "Whales"
    assert braze.cohorts["7"]["created_at"] == "2024-01-02 03:04:05"
    assert braze.cohort_members("7") == set(many_users)
    assert braze.cohort_members("8") == set(many_users[:3])
    # 2500 ids -> 3 requests for cohort 7 (+1 for cohort 8, +2 name calls)
    assert braze.requests_seen == 6

    before = braze.requests_seen
    run_target(
        {**partner_config, "max_removal_fraction": 1},
        snapshot({7: ("Whales (renamed)", many_users[:2000]), 8: ("Few", many_users[:3])}),
    )
    assert braze.cohorts["7"]["name"] == "Whales (renamed)"
    assert braze.cohort_members("7") == set(many_users[:2000])
    assert braze.requests_seen - before == 2  # one rename + one removal request


def test_partner_mode_guard_and_vanished(braze, partner_config, many_users):
    run_target(partner_config, snapshot({7: ("W", many_users[:100]), 8: ("V", many_users[:50])}))
    with pytest.raises(DestinationError, match="'W'"):
        run_target(partner_config, snapshot({7: ("W", many_users[:10])}))
    assert braze.cohort_members("7") == set(many_users[:100])
    assert braze.cohort_members("8") == set()  # vanished: removed without the guard


def test_partner_401_names_setting_without_secret(braze, partner_config):
    bad = {**partner_config, "data_import_key": "disabled-secret-777"}
    with pytest.raises(DestinationError) as info:
        run_target(bad, snapshot({7: ("W", ["u001"])}))
    assert "'partner_name'" in str(info.value)
    assert "disabled-secret-777" not in str(info.value)
    with pytest.raises(DestinationError, match="'partner_api_key'"):
        run_target({**partner_config, "partner_api_key": "nope"}, snapshot({7: ("W", ["u001"])}))


def test_partner_dry_run_redacts_credentials(braze, partner_config, tmp_path):
    out = tmp_path / "dry.jsonl"
    run_target(
        {**partner_config, "dry_run": True, "dry_run_path": str(out)},
        snapshot({7: ("W", ["u001", "u002"])}),
    )
    text = out.read_text()
    assert "partner-key-123" not in text and "import-key-456" not in text
    assert '"user_ids":["u001","u002"]' in text
    assert braze.requests_seen == 0
