"""Change records (cohort_member_changes) and one-cohort snapshots against the Braze emulator."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from target_braze.sync import RemovalGuardError
from tests.support.braze import changes, one_cohort_snapshots, run_target, snapshot

ATTR = "mixpanel_cohorts"


def arrays(braze, users):
    return {u: sorted(braze.attribute(u, ATTR) or []) for u in users}


def test_adds_and_removes_in_order_never_netted_away(braze, config, users):
    run_target(config, snapshot({1: ("Power", users[:10])}))
    braze.track_requests.clear()
    target = run_target(
        config,
        changes(
            [
                (1, "Power", "s1", "add", users[10:13]),
                (1, "Power", "s2", "remove", [users[0], users[10]]),
                (1, "Power", "s3", "add", [users[0]]),
            ]
        ),
    )
    assert braze.attribute("u000", ATTR) == ["Power"]  # removed, then back: stays
    assert not braze.attribute("u010", ATTR)  # added, then removed: never sent
    assert braze.attribute("u011", ATTR) == ["Power"]
    assert braze.attribute("u005", ATTR) == ["Power"]  # untouched
    # u000 needed nothing; u010 one object (its add was never confirmed: nothing to remove).
    counts = target.sync.summary()["cohorts"][("cohort_member_changes", "1")]
    assert counts["added"] == 2 and counts["removed"] == 0
    assert sum(braze.track_requests) == 2


def test_a_replayed_change_session_changes_nothing(braze, config, users):
    run_target(config, snapshot({1: ("Power", users[:10])}))
    session = changes(
        [(1, "Power", "s1", "add", users[10:12]), (1, "Power", "s2", "remove", users[:2])]
    )
    run_target(config, session)
    braze.track_requests.clear()
    target = run_target(config, session)
    assert braze.track_requests == []
    counts = target.sync.summary()["cohorts"][("cohort_member_changes", "1")]
    assert counts["added"] == 0 and counts["removed"] == 0
    assert arrays(braze, users[:3]) == {"u000": [], "u001": [], "u002": ["Power"]}


def test_changes_share_the_snapshot_ledger_and_pack_one_object_per_user(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:100]), 2: ("B", users[:100])}))
    braze.track_requests.clear()
    # 80 users leave both cohorts: 80 objects with two removals each, packed 75 + 5.
    run_target(
        {**config, "max_removal_fraction": 1},
        changes([(1, "A", "s1", "remove", users[:80]), (2, "B", "s1", "remove", users[:80])]),
    )
    assert sorted(braze.track_requests, reverse=True) == [75, 5]
    assert braze.attribute("u000", ATTR) == []
    assert braze.attribute("u090", ATTR) == ["A", "B"]
    # A later snapshot sees the ledger the changes left: nothing to do.
    braze.track_requests.clear()
    run_target(config, snapshot({1: ("A", users[80:100]), 2: ("B", users[80:100])}))
    assert braze.track_requests == []


def test_the_removal_guard_withholds_a_change_session(braze, config, users, caplog):
    run_target(config, snapshot({1: ("Power", users[:100])}))
    messages = changes(
        [
            (1, "Power", "s1", "remove", users[:10]),  # 10%: fine
            (1, "Power", "s2", "remove", users[10:70]),  # 60% of the ledger's 100: withheld
            (1, "Power", "s3", "add", users[100:105]),
        ]
    )
    with pytest.raises(RemovalGuardError) as error:
        run_target(config, messages)
    assert "cohort 'Power' (id 1) would lose 60 of 100 members" in str(error.value)
    assert "'max_removal_fraction'" in str(error.value)
    assert braze.attribute("u000", ATTR) == []  # s1 applied
    assert braze.attribute("u020", ATTR) == ["Power"]  # s2 withheld
    assert braze.attribute("u100", ATTR) == ["Power"]  # s3 applied
    # Raising the threshold applies it, and the replay of s1 and s3 changes nothing.
    braze.track_requests.clear()
    run_target({**config, "max_removal_fraction": 0.9}, messages)
    assert braze.attribute("u020", ATTR) == []
    assert sum(braze.track_requests) == 60


def test_a_renamed_cohort_moves_every_member_to_the_new_name(braze, config, users):
    run_target(config, snapshot({1: ("Trial", users[:20])}))
    braze.track_requests.clear()
    run_target(config, changes([(1, "Trial (EU)", "s1", "add", users[20:22])]))
    assert arrays(braze, ["u000", "u021"]) == {"u000": ["Trial (EU)"], "u021": ["Trial (EU)"]}
    assert sum(braze.track_requests) == 22
    braze.track_requests.clear()
    run_target(config, changes([(1, "Trial (EU)", "s2", "add", users[22:23])]))
    assert sum(braze.track_requests) == 1


def test_a_one_cohort_snapshot_leaves_other_cohorts_alone(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:30]), 2: ("B", users[:30])}))
    braze.track_requests.clear()
    run_target(config, one_cohort_snapshots({1: ("A", users[5:30])}))
    assert braze.attribute("u000", ATTR) == ["B"]  # left A, still in B
    assert braze.attribute("u010", ATTR) == ["A", "B"]
    assert sum(braze.track_requests) == 5


def test_an_empty_one_cohort_snapshot_empties_that_cohort_only(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:10]), 2: ("B", users[:10])}))
    run_target(config, one_cohort_snapshots({1: ("A", [])}))
    assert braze.attribute("u000", ATTR) == ["B"]


def test_a_one_cohort_snapshot_without_activate_version_only_adds(braze, config, users, caplog):
    run_target(config, snapshot({1: ("A", users[:10])}))
    run_target(config, one_cohort_snapshots({1: ("A", users[5:12])}, activate=False)[:-2])
    assert braze.attribute("u000", ATTR) == ["A"]
    assert braze.attribute("u011", ATTR) == ["A"]
    assert "ended without ACTIVATE_VERSION after cohort(s) 1" in caplog.text


def test_a_snapshot_then_changes_in_one_input(braze, config, users):
    messages = one_cohort_snapshots({1: ("A", users[:10])}) + changes(
        [(1, "A", "s2", "remove", users[:2]), (1, "A", "s3", "add", users[10:11])]
    )
    run_target(config, messages)
    assert arrays(braze, ["u000", "u005", "u010"]) == {
        "u000": [],
        "u005": ["A"],
        "u010": ["A"],
    }


def test_partner_mode_applies_changes(braze, config, users):
    partner = {
        **{k: v for k, v in config.items() if k != "api_key"},
        "mode": "partner_cohorts",
        "partner_name": "mixpanel",
        "partner_api_key": "partner-key-123",
        "data_import_key": "import-key-456",
    }
    run_target(partner, one_cohort_snapshots({7: ("Whales", users[:50])}))
    assert braze.cohort_members("7") == set(users[:50])
    before = braze.requests_seen
    messages = changes(
        [(7, "Whales", "s1", "remove", users[:5]), (7, "Whales", "s2", "add", users[50:52])]
    )
    run_target(partner, messages)
    assert braze.cohort_members("7") == set(users[5:52])
    assert braze.requests_seen - before == 2  # one add request, one removal request
    before = braze.requests_seen
    run_target(partner, messages)  # replay
    assert braze.requests_seen == before
    run_target(partner, changes([(7, "Whales 2", "s3", "add", [])]) + changes([]))
    run_target(partner, changes([(7, "Whales 2", "s4", "add", users[52:53])]))
    assert braze.cohorts["7"]["name"] == "Whales 2"


def test_rejected_changes_are_dead_lettered_and_not_recorded(braze, config, users):
    run_target(config, snapshot({1: ("Power", users[:5])}))
    braze.reject = {"u010": "invalid value for 'mixpanel_cohorts'"}
    target = run_target(config, changes([(1, "Power", "s1", "add", users[10:12])]))
    lines = [json.loads(x) for x in Path(config["dead_letter_path"]).read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["stream"] == "cohort_member_changes"
    assert lines[0]["payload"]["external_id"] == "u010"
    assert "invalid value" in lines[0]["message"]
    counts = target.sync.summary()["cohorts"][("cohort_member_changes", "1")]
    assert counts["added"] == 1 and counts["rejected"] == 1
    # Not in the ledger: a replay of the session tries it again.
    braze.reject = {}
    run_target(config, changes([(1, "Power", "s1", "add", users[10:12])]))
    assert braze.attribute("u010", ATTR) == ["Power"]


def test_bad_change_values_are_skipped_and_counted(braze, config, users, caplog):
    caplog.set_level(logging.WARNING)
    messages = changes([(1, "A", "s1", "add", users[:2])])
    messages[1]["record"]["change"] = "upsert"
    messages[2]["record"]["external_id"] = ""
    target = run_target(config, messages)
    counts = target.sync.summary()["cohorts"][("cohort_member_changes", "1")]
    assert counts["skipped"] == 2 and counts["added"] == 0
    assert "neither 'add' nor 'remove'" in caplog.text


def test_member_data_stays_out_of_logs(braze, config, users, caplog):
    caplog.set_level(logging.DEBUG)
    run_target(config, snapshot({1: ("A", users[:30])}))
    run_target(config, changes([(1, "A", "s1", "remove", users[:3])]))
    assert config["api_key"] not in caplog.text
    assert "d-u000" not in caplog.text
