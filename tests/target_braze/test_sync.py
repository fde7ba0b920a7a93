"""End-to-end syncs of cohort membership against the Braze emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from target_braze.sync import RemovalGuardError
from tests.support.braze import run_target, snapshot

ATTR = "mixpanel_cohorts"


def arrays(braze, users):
    return {u: sorted(braze.attribute(u, ATTR) or []) for u in users}


def test_first_sync_adds_names_one_object_per_user(braze, config, users):
    messages = snapshot({1: ("Power users", users[:100]), 2: ("Churn risk", users[50:120])})
    target = run_target(config, messages)

    assert braze.attribute("u000", ATTR) == ["Power users"]
    assert sorted(braze.attribute("u060", ATTR)) == ["Churn risk", "Power users"]
    assert braze.attribute("u110", ATTR) == ["Churn risk"]
    assert braze.attribute("u200", ATTR) is None
    # 120 distinct users -> one object each, packed 75 + 45
    assert sorted(braze.track_requests, reverse=True) == [75, 45]
    summary = target.sync.summary()
    assert summary["cohorts"][("cohort_members", "1")]["added"] == 100
    assert summary["cohorts"][("cohort_members", "2")]["added"] == 70


def test_second_sync_joins_leaves_and_rename(braze, config, users):
    run_target(config, snapshot({1: ("Power users", users[:30]), 2: ("Trial", users[30:40])}))
    braze.track_requests.clear()
    # cohort 1: u000-u004 leave, u030-u031 join; cohort 2 renamed "Trial" -> "Trial (EU)"
    second = snapshot({1: ("Power users", users[5:32]), 2: ("Trial (EU)", users[30:40])})
    run_target(config, second)

    assert braze.attribute("u000", ATTR) == []
    assert braze.attribute("u010", ATTR) == ["Power users"]
    assert sorted(braze.attribute("u031", ATTR)) == ["Power users", "Trial (EU)"]
    assert braze.attribute("u035", ATTR) == ["Trial (EU)"]
    # only changed users are sent: 5 leavers + 10 renamed (2 of them also joined)
    assert sum(braze.track_requests) == 15
    # a third identical run sends nothing
    braze.track_requests.clear()
    run_target(config, second)
    assert braze.track_requests == []


def test_aborted_snapshot_adds_but_never_removes(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:30])}))
    run_target(config, snapshot({1: ("A", users[20:40])}, complete=False))
    assert braze.attribute("u000", ATTR) == ["A"]  # not removed
    assert braze.attribute("u035", ATTR) == ["A"]  # added
    # the next complete run removes the leavers
    run_target(config, snapshot({1: ("A", users[20:40])}))
    assert braze.attribute("u000", ATTR) == []
    assert braze.attribute("u035", ATTR) == ["A"]


def test_record_after_activate_version_reopens_snapshot(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:10])}))
    # SDK-style taps send ACTIVATE_VERSION first; records after it mean "not complete yet"
    messages = snapshot({1: ("A", users[5:10])})
    activate = messages.pop()
    index = next(
        i
        for i, m in enumerate(messages)
        if m.get("stream") == "cohort_members" and m["type"] == "RECORD"
    )
    messages.insert(index, activate)
    run_target(config, messages)
    assert braze.attribute("u000", ATTR) == ["A"]


def test_vanished_cohort_loses_members_without_guard(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:50]), 2: ("B", users[:40])}))
    # cohort 2 deleted in Mixpanel: absent from both streams
    run_target(config, snapshot({1: ("A", users[:50])}))
    assert braze.attribute("u000", ATTR) == ["A"]
    assert braze.attribute("u039", ATTR) == ["A"]


def test_empty_cohort_still_listed_trips_the_guard(braze, config, users):
    run_target(config, snapshot({1: ("A", users[:50]), 2: ("B", users[100:140])}))
    with pytest.raises(RemovalGuardError) as info:
        run_target(
            config,
            snapshot({1: ("A", users[:60])}, listed=[(1, "A"), (2, "B")]),
        )
    message = str(info.value)
    assert "'B'" in message and "max_removal_fraction" in message
    assert braze.attribute("u100", ATTR) == ["B"]  # withheld
    assert braze.attribute("u055", ATTR) == ["A"]  # the rest was synced


def test_removal_guard_withholds_then_allows(braze, config, users):
    run_target(config, snapshot({1: ("Big", users[:100]), 2: ("Other", users[200:210])}))
    drop = snapshot({1: ("Big", users[:30]), 2: ("Other", users[200:205])})
    with pytest.raises(RemovalGuardError, match="cohort 'Big' \\(id 1\\) would lose 70 of 100"):
        run_target(config, drop)
    assert braze.attribute("u050", ATTR) == ["Big"]
    assert braze.attribute("u207", ATTR) == []  # small cohort: below the guard's minimum size
    run_target({**config, "max_removal_fraction": 1}, drop)
    assert braze.attribute("u050", ATTR) == []
    assert braze.attribute("u010", ATTR) == ["Big"]


def test_shared_name_is_kept_while_another_cohort_holds_it(braze, config, users):
    run_target(config, snapshot({1: ("VIP", users[:5]), 2: ("VIP", users[:3])}))
    run_target(config, snapshot({1: ("VIP", users[3:5]), 2: ("VIP", users[:3])}))
    assert braze.attribute("u000", ATTR) == ["VIP"]


def test_users_without_external_id_are_skipped_and_counted(braze, config, users):
    target = run_target(config, snapshot({1: ("A", [users[0], None, "", users[1]])}))
    counts = target.sync.summary()["cohorts"][("cohort_members", "1")]
    assert counts["added"] == 2 and counts["skipped"] == 2


def test_update_existing_only_never_creates_users(braze, config):
    run_target(config, snapshot({1: ("A", ["unknown-1", "u001"])}))
    assert "unknown-1" not in braze.users
    assert braze.not_created == 1
    run_target(
        {**config, "update_existing_only": False, "ledger_path": config["ledger_path"] + "2"},
        snapshot({1: ("A", ["unknown-2"])}),
    )
    assert braze.attribute("unknown-2", ATTR) == ["A"]


def test_dead_letters_keep_brazes_message_and_stay_out_of_the_ledger(braze, config, users):
    braze.reject = {"u003": "invalid value for 'mixpanel_cohorts'"}
    target = run_target(config, snapshot({1: ("A", users[:10])}))
    lines = Path(config["dead_letter_path"]).read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "invalid value for 'mixpanel_cohorts'"
    assert entry["payload"]["external_id"] == "u003"
    assert entry["status"] == 201
    assert oct(Path(config["dead_letter_path"]).stat().st_mode & 0o777) == "0o600"
    assert target.sync.summary()["dead_letters"] == 1
    assert braze.attribute("u004", ATTR) == ["A"]
    # the rejected user is retried next run (not recorded as synced)
    braze.reject = {}
    run_target(config, snapshot({1: ("A", users[:10])}))
    assert braze.attribute("u003", ATTR) == ["A"]


def test_fully_rejected_request_is_dead_lettered(braze, config, users):
    braze.reject = dict.fromkeys(users[:3], "user is blocked")
    run_target(config, snapshot({1: ("A", users[:3])}))
    entries = [json.loads(x) for x in Path(config["dead_letter_path"]).read_text().splitlines()]
    assert {e["payload"]["external_id"] for e in entries} == set(users[:3])
    assert {e["status"] for e in entries} == {400}


def test_dry_run_writes_bodies_and_sends_nothing(braze, config, users, tmp_path):
    out = tmp_path / "dry.jsonl"
    run_target(
        {**config, "dry_run": True, "dry_run_path": str(out)}, snapshot({1: ("A", users[:80])})
    )
    assert braze.requests_seen == 0
    assert not Path(config["ledger_path"]).exists()
    bodies = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(b["body"]["attributes"]) for b in bodies] == [75, 5]
    assert bodies[0]["url"].endswith("/users/track")
    first = bodies[0]["body"]["attributes"][0]
    assert first == {"external_id": "u000", ATTR: {"add": ["A"]}, "_update_existing_only": True}
    assert config["api_key"] not in out.read_text()


def test_crash_between_request_and_ledger_update_converges(braze, config, users, monkeypatch):
    from target_braze import ledger as ledger_module

    run_target(config, snapshot({1: ("A", users[:100])}))
    original = ledger_module.Ledger.apply
    calls = {"n": 0}

    def crashing_apply(self, ns, changes):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")  # like a kill after Braze answered
        return original(self, ns, changes)

    monkeypatch.setattr(ledger_module.Ledger, "apply", crashing_apply)
    target_snapshot = snapshot({1: ("A", users[40:150]), 2: ("B", users[:20])})
    with pytest.raises(KeyboardInterrupt):
        run_target({**config, "max_concurrency": 1}, target_snapshot)
    monkeypatch.setattr(ledger_module.Ledger, "apply", original)
    run_target({**config, "max_removal_fraction": 1}, target_snapshot)

    expected = {}
    for u in users[:150]:
        names = (["A"] if u in users[40:150] else []) + (["B"] if u in users[:20] else [])
        expected[u] = sorted(names)
    assert arrays(braze, users[:150]) == expected
    # and a further run has nothing left to send
    braze.track_requests.clear()
    run_target({**config, "max_removal_fraction": 1}, target_snapshot)
    assert braze.track_requests == []


def test_generic_stream_upserts_attributes(braze, config):
    messages = [
        {
            "type": "SCHEMA",
            "stream": "profiles",
            "key_properties": [],
            "schema": {
                "type": "object",
                "properties": {
                    "external_id": {"type": "string"},
                    "plan": {"type": "string"},
                    "ltv": {"type": "number"},
                    "seen": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "nick": {"type": ["string", "null"]},
                },
            },
        },
        {
            "type": "RECORD",
            "stream": "profiles",
            "record": {
                "external_id": "u001",
                "plan": "pro",
                "ltv": 12.5,
                "seen": "2024-05-01T10:00:00Z",
                "tags": ["a", "b", "a"],
                "nick": None,
            },
        },
        {"type": "RECORD", "stream": "profiles", "record": {"plan": "free"}},
    ]
    target = run_target(config, messages)
    user = braze.users["u001"]
    assert user["plan"] == "pro" and user["ltv"] == 12.5
    assert user["seen"].startswith("2024-05-01T10:00:00")
    assert user["tags"] == ["a", "b"]
    assert "nick" not in user
    up = target.sync.upserts["profiles"]
    assert (up.sent, up.skipped) == (1, 1)


def test_configurable_membership_fields(braze, config):
    messages = [
        {
            "type": "SCHEMA",
            "stream": "segments",
            "key_properties": [],
            "schema": {
                "type": "object",
                "properties": {
                    "seg": {"type": "string"},
                    "label": {"type": "string"},
                    "user": {"type": "string"},
                },
            },
        },
        {
            "type": "RECORD",
            "stream": "segments",
            "record": {"seg": "s1", "label": "Label 1", "user": "u007"},
        },
        {"type": "ACTIVATE_VERSION", "stream": "segments", "version": 1},
    ]
    cfg = {
        **config,
        "cohort_id_field": "seg",
        "cohort_name_field": "label",
        "user_id_field": "user",
        "cohort_attribute": "segments",
    }
    run_target(cfg, messages)
    assert braze.attribute("u007", "segments") == ["Label 1"]


def test_array_length_warning(braze, config, users, caplog):
    cohorts = {i: (f"C{i}", users[:2]) for i in range(1, 5)}
    with caplog.at_level("WARNING"):
        run_target({**config, "max_array_length": 3}, snapshot(cohorts))
    assert sum("more than 3 cohorts" in r.getMessage() for r in caplog.records) == 1


def test_state_is_written_only_after_braze_confirmed_the_changes(braze, config, users, capsys):
    state = {"type": "STATE", "value": {"bookmarks": {"cohort_members": {"run": 1}}}}
    messages = snapshot({1: ("Power users", users[:10])})
    messages.insert(len(messages) - 1, state)  # a state line before the end of the snapshot

    braze.faults.rate_5xx = 1.0  # Braze answers 5xx until the retries run out
    with pytest.raises(Exception):  # noqa: B017 - which error is the client's business
        run_target({**config, "max_concurrency": 1}, messages)
    assert '"run"' not in capsys.readouterr().out

    braze.faults.rate_5xx = 0.0
    run_target(config, messages)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    bookmarks = lines[-1]["bookmarks"]
    assert bookmarks["cohort_members"] == {"run": 1}  # the tap's state, passed on
    assert bookmarks["_target_braze_ledger"]["generation"] == 2  # and the ledger published
    assert braze.attribute("u000", ATTR) == ["Power users"]


def test_activate_version_disabled_means_no_removals(braze, config, users, caplog):
    run_target(config, snapshot({1: ("A", users[:10])}))
    disabled = {**config, "process_activate_version_messages": False}
    with caplog.at_level("WARNING"):
        run_target(disabled, snapshot({1: ("A", users[5:12])}))
    assert braze.attribute("u000", ATTR) == ["A"]  # not removed: the snapshot never completed
    assert braze.attribute("u011", ATTR) == ["A"]  # joins still go out
    assert any("no removals can be applied" in r.getMessage() for r in caplog.records)
