"""Source 'webhook': spooled cohort-sync sessions become snapshots and change records, once."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from braze_mixpanel_common.errors import ConfigurationError
from tap_mixpanel_cohorts.webhook import WATERMARKS
from tests.support.clock import FakeClock
from tests.support.cohorts import RecordingTap
from tests.support.spool import SpoolWriter, member


@pytest.fixture
def writer(tmp_path: Path) -> SpoolWriter:
    return SpoolWriter(tmp_path / "spool")


def config(writer: SpoolWriter, **overrides: Any) -> dict[str, Any]:
    return {"source": "webhook", "spool_url": str(writer.root), **overrides}


def run(writer: SpoolWriter, state: dict | None = None, **overrides: Any) -> RecordingTap:
    tap = RecordingTap(
        config=config(writer, **overrides), state=state, parse_env_config=False, clock=FakeClock()
    )
    tap.sync_all()
    return tap


def records(tap: RecordingTap, stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in tap.messages if m["type"] == "RECORD" and m["stream"] == stream]


def kinds(tap: RecordingTap, stream: str) -> list[str]:
    wanted = ("RECORD", "ACTIVATE_VERSION")
    return [m["type"] for m in tap.messages if m.get("stream") == stream and m["type"] in wanted]


def final_state(tap: RecordingTap) -> dict:
    return json.loads(json.dumps(tap.state))


def members(n: int, prefix: str = "u") -> list[dict[str, Any]]:
    return [member(f"{prefix}{i}", f"ext-{prefix}{i}") for i in range(n)]


def test_first_full_sync_is_one_snapshot_per_cohort(writer, caplog):
    caplog.set_level(logging.INFO)
    writer.session(7, "s1", "members", members(25), per_page=10)
    writer.session(8, "s1", "members", members(3, "v"), name="Other")
    tap = run(writer)
    snap = records(tap, "cohort_members")
    assert [(r["cohort_id"], r["external_id"]) for r in snap[:2]] == [(7, "ext-u0"), (7, "ext-u1")]
    assert len(snap) == 28
    assert {r["session_id"] for r in snap} == {"s1"}
    assert snap[0]["cohort_name"] == "Power users" and snap[-1]["cohort_name"] == "Other"
    # Each cohort's snapshot ends with its own ACTIVATE_VERSION, carrying the records' version.
    types = kinds(tap, "cohort_members")
    assert types.count("ACTIVATE_VERSION") == 2
    assert (
        types[25] == "ACTIVATE_VERSION"
    )  # after cohort 7's 25 records and types[-1] == "ACTIVATE_VERSION"
    listed = records(tap, "cohorts")
    assert [(c["id"], c["name"], c["members_session_id"]) for c in listed] == [
        (7, "Power users", "s1"),
        (8, "Other", "s1"),
    ]
    assert listed[0]["description"] == "Top users" and listed[0]["project_id"] == 12345
    assert records(tap, "cohort_member_changes") == []
    state = final_state(tap)["bookmarks"]["cohort_members"][WATERMARKS]
    assert set(state) == {"7", "8"}
    # Read once: the next run emits nothing.
    again = run(writer, final_state(tap))
    assert records(again, "cohort_members") == [] and records(again, "cohorts") == []
    assert "ACTIVATE_VERSION" not in kinds(again, "cohort_members")


def test_diffs_become_change_records_in_delivery_order(writer):
    writer.session(7, "s1", "members", members(5))
    state = final_state(run(writer))
    writer.session(7, "s2", "add_members", [member("n1", "ext-n1"), member("n2", "ext-n2")])
    writer.session(7, "s3", "remove_members", [member("u0", "ext-u0"), member("n1", "ext-n1")])
    writer.session(7, "s4", "add_members", [member("u0", "ext-u0")], per_page=1)
    writer.session(7, "s5", "remove_members", [])  # the cycle's (empty) second call
    tap = run(writer, state)
    changes = records(tap, "cohort_member_changes")
    assert [(c["external_id"], c["change"], c["session_id"]) for c in changes] == [
        ("ext-n1", "add", "s2"),
        ("ext-n2", "add", "s2"),
        ("ext-u0", "remove", "s3"),
        ("ext-n1", "remove", "s3"),
        ("ext-u0", "add", "s4"),
    ]
    assert set(changes[0]) == {
        "cohort_id", "cohort_name", "external_id", "distinct_id", "change", "session_id",
        "received_at",
    }  # fmt: skip
    assert changes[0]["received_at"].startswith("2026-12-01T12:00:")
    assert records(tap, "cohort_members") == []
    assert [c["members_session_id"] for c in records(tap, "cohorts")] == [None]
    again = run(writer, final_state(tap))
    assert records(again, "cohort_member_changes") == []


def test_an_empty_diff_is_consumed_without_records(writer):
    writer.session(7, "s1", "members", members(2))
    state = final_state(run(writer))
    writer.session(7, "s2", "add_members", [])
    writer.session(7, "s2", "remove_members", [])  # both calls of a quiet cycle, one session id
    tap = run(writer, state)
    assert records(tap, "cohort_member_changes") == []
    marks = final_state(tap)["bookmarks"]["cohort_member_changes"][WATERMARKS]
    assert marks["7"].endswith("|s2")


def test_out_of_order_and_duplicate_pages_give_one_ordered_snapshot(writer):
    writer.session(7, "s1", "members", members(30), per_page=10, order=[3, 1])
    tap = run(writer)
    assert records(tap, "cohort_members") == []  # page 2 is missing: nothing yet
    writer.session(7, "s1", "members", members(30), per_page=10, order=[2, 3])  # 3 repeated
    tap = run(writer)
    assert [r["distinct_id"] for r in records(tap, "cohort_members")] == [
        f"u{i}" for i in range(30)
    ]


def test_an_incomplete_cycle_waits_until_it_completes(writer, caplog):
    writer.session(7, "s1", "members", members(2))
    state = final_state(run(writer))
    writer.page(7, "s2", 1, 2, "add_members", [member("a", "ext-a")])  # page 2 never comes
    writer.session(7, "s3", "remove_members", [member("u0", "ext-u0")])
    caplog.set_level(logging.INFO)
    tap = run(writer, state)
    assert records(tap, "cohort_member_changes") == []
    assert "1 in progress (waiting for pages or their remove_members call)" in caplog.text
    assert "still misses" in caplog.text  # the fake spool times are long past the warn age
    assert "first: 2" in caplog.text
    assert final_state(tap).get("bookmarks", {}).get("cohort_member_changes") in (None, {}, {
        WATERMARKS: {}
    })  # fmt: skip
    writer.page(7, "s2", 2, 2, "add_members", [member("b", "ext-b")])
    tap = run(writer, final_state(tap))
    assert [(c["external_id"], c["change"]) for c in records(tap, "cohort_member_changes")] == [
        ("ext-a", "add"),
        ("ext-b", "add"),
        ("ext-u0", "remove"),
    ]


def test_no_warning_before_the_warn_age(writer, caplog):
    writer.page(7, "s1", 1, 2, "members", members(1))
    caplog.set_level(logging.INFO)
    run(writer, incomplete_session_warn_minutes=10_000_000)
    assert "1 in progress" in caplog.text and "still misses" not in caplog.text


def test_a_complete_members_session_supersedes_what_came_before(writer, caplog):
    caplog.set_level(logging.INFO)
    writer.page(7, "s1", 1, 2, "members", members(1))  # never completed
    writer.session(7, "s2", "add_members", [member("x", "ext-x")])
    writer.session(7, "s3", "members", members(4, "w"), name="Renamed")
    writer.session(7, "s4", "remove_members", [member("w0", "ext-w0")], name="Renamed")
    tap = run(writer)
    assert [r["external_id"] for r in records(tap, "cohort_members")] == [
        f"ext-w{i}" for i in range(4)
    ]
    # The change after the snapshot follows in the next run, never before the snapshot.
    assert records(tap, "cohort_member_changes") == []
    assert "2 superseded by a later full export" in caplog.text
    tap = run(writer, final_state(tap))
    assert [(c["external_id"], c["change"]) for c in records(tap, "cohort_member_changes")] == [
        ("ext-w0", "remove")
    ]
    assert records(tap, "cohort_members") == []


def test_a_renamed_cohort_carries_its_new_name(writer):
    writer.session(7, "s1", "members", members(2), name="Old name")
    state = final_state(run(writer))
    writer.session(7, "s2", "add_members", [member("n", "ext-n")], name="New name")
    writer.session(7, "s2", "remove_members", [], name="New name")
    tap = run(writer, state)
    assert records(tap, "cohort_member_changes")[0]["cohort_name"] == "New name"
    assert records(tap, "cohorts")[0]["name"] == "New name"


def test_external_id_resolution_as_in_query_mode(writer, caplog):
    caplog.set_level(logging.INFO)
    delivered = [
        member("a", "ext-a"),
        member("b"),  # no $braze_external_id
        member("c", crm="crm-c"),
        {"email": "nobody@mail.example"},  # no distinct id
    ]
    writer.session(7, "s1", "members", delivered)
    tap = run(writer)
    assert [r["external_id"] for r in records(tap, "cohort_members")] == ["ext-a", "b", "c"]
    tap = run(writer, user_id_property="crm", fallback_to_distinct_id=False)
    assert [r["external_id"] for r in records(tap, "cohort_members")] == ["crm-c"]
    assert "1 members, 3 skipped (1 with no $distinct_id, 2 with no 'crm')" in caplog.text


def test_output_properties_are_emitted_by_name(writer):
    writer.session(7, "s1", "members", [member("a", "ext-a", plan="gold")])
    tap = run(writer, output_properties=["plan", "email"])
    record = records(tap, "cohort_members")[0]
    assert record["plan"] == "gold" and record["email"] == "a@mail.example"


def test_cohort_ids_limits_the_cohorts_read(writer):
    writer.session(7, "s1", "members", members(2))
    writer.session(8, "s1", "members", members(2))
    tap = run(writer, cohort_ids=[8])
    assert {r["cohort_id"] for r in records(tap, "cohort_members")} == {8}


def test_a_deselected_changes_stream_does_not_block_the_snapshots(writer):
    writer.session(7, "s1", "members", members(2))
    writer.session(7, "s2", "add_members", [member("n", "ext-n")])
    writer.session(7, "s2", "remove_members", [])
    tap = RecordingTap(config=config(writer), parse_env_config=False, clock=FakeClock())
    tap.streams["cohort_member_changes"].selected = False
    tap.sync_all()
    assert len(records(tap, "cohort_members")) == 2
    marks = final_state(tap)["bookmarks"]["cohort_members"][WATERMARKS]
    assert marks["7"].endswith("|s2")  # the change cycle nobody selected is passed over


def test_webhook_mode_needs_a_spool_but_no_mixpanel_credentials(writer):
    tap = RecordingTap(config=config(writer), parse_env_config=False)
    assert tap.settings.auth is None
    with pytest.raises(ConfigurationError, match="'spool_url' is required"):
        RecordingTap(config={"source": "webhook"}, parse_env_config=False)
    assert sorted(tap.streams) == ["cohort_member_changes", "cohort_members", "cohorts"]


def test_secrets_and_member_data_stay_out_of_logs(writer, caplog):
    caplog.set_level(logging.DEBUG)
    writer.session(7, "s1", "members", members(3))
    state = final_state(run(writer, spool_options={"auto_mkdir": True, "token": "TOPSECRET-1"}))
    writer.session(7, "s2", "add_members", [])
    writer.session(7, "s2", "remove_members", members(1))
    run(writer, state, spool_options={"auto_mkdir": True, "token": "TOPSECRET-1"})
    text = caplog.text
    for leaked in ("TOPSECRET-1", "mail.example", "Private-u", "ext-u0"):
        assert leaked not in text


def test_a_missing_spool_reads_as_empty(tmp_path):
    tap = run(SpoolWriter(tmp_path / "nothing-yet"))
    assert [m["type"] for m in tap.messages if m["type"] == "RECORD"] == []


def test_state_stays_one_watermark_per_cohort(writer):
    state = None
    for n in range(5):
        writer.session(7, f"s{n}", "members" if n == 0 else "add_members", members(2, f"r{n}"))
        tap = run(writer, state)
        state = final_state(tap)
    assert len(json.dumps(state)) < 400


def test_each_snapshot_activates_its_own_version(writer):
    writer.session(7, "s1", "members", members(3))
    writer.session(8, "s1", "members", members(2))
    tap = run(writer)
    stream = [m for m in tap.messages if m.get("stream") == "cohort_members"]
    stream = [m for m in stream if m["type"] in ("RECORD", "ACTIVATE_VERSION")]
    first, second = stream[:4], stream[4:]
    assert [m["type"] for m in first] == ["RECORD"] * 3 + ["ACTIVATE_VERSION"]
    assert {m["version"] for m in first} == {first[-1]["version"]}
    assert {m["version"] for m in second} == {second[-1]["version"]}
    assert second[-1]["version"] > first[-1]["version"]


def changes_of(tap: RecordingTap) -> list[tuple[str, str]]:
    return [(c["external_id"], c["change"]) for c in records(tap, "cohort_member_changes")]


def test_a_cycle_is_emitted_only_once_both_calls_are_complete(writer, caplog):
    """Add completes, remove fails: nothing of the cycle reaches Braze; the next cycle does."""
    writer.session(7, "s1", "members", members(3))
    state = final_state(run(writer))
    # Cycle 2 (one shared session id): add_members complete, remove_members stops at page 1 of 2.
    writer.session(7, "s2", "add_members", [member("j", "ext-j")])
    writer.page(7, "s2", 1, 2, "remove_members", [member("u0", "ext-u0")])
    tap = run(writer, state)  # the pipeline runs in between
    assert changes_of(tap) == []
    state = final_state(tap)
    # Cycle 3 is computed from the snapshot of cycle 1: j joined and left again, u0 left.
    writer.session(7, "s3", "add_members", [])
    writer.session(7, "s3", "remove_members", [member("u0", "ext-u0")])
    caplog.set_level(logging.INFO)
    tap = run(writer, state)
    assert changes_of(tap) == [("ext-u0", "remove")]  # j never reached Braze
    assert "1 discarded as failed" in caplog.text
    assert "discarded the failed cycle add_members session s2 (1 of 1 pages) + remove_members" in (
        caplog.text
    )
    # The late page 2 of the failed cycle changes nothing.
    writer.page(7, "s2", 2, 2, "remove_members", [member("u1", "ext-u1")])
    assert changes_of(run(writer, final_state(tap))) == []


def test_shared_session_ids_keep_both_calls(writer):
    writer.session(7, "s1", "members", members(3))
    state = final_state(run(writer))
    writer.session(7, "c2", "add_members", [member("n", "ext-n")])
    writer.session(7, "c2", "remove_members", [member("u1", "ext-u1")])  # same page 1 of 1
    tap = run(writer, state)
    assert changes_of(tap) == [("ext-n", "add"), ("ext-u1", "remove")]


def test_an_add_without_its_remove_is_discarded_once_a_later_cycle_completes(writer, caplog):
    writer.session(7, "s1", "members", members(3))
    state = final_state(run(writer))
    writer.session(7, "a2", "add_members", [member("j", "ext-j")])  # its remove never came
    writer.session(7, "a3", "add_members", [member("k", "ext-k")])
    writer.session(7, "r3", "remove_members", [])
    caplog.set_level(logging.INFO)
    tap = run(writer, state)
    assert changes_of(tap) == [("ext-k", "add")]
    assert "1 add_members without a remove_members after it" in caplog.text


def test_a_cycle_repeated_from_the_top_is_applied_once(writer):
    writer.session(7, "s1", "members", members(3))
    state = final_state(run(writer))
    writer.page(7, "s2", 1, 2, "add_members", [member("a", "ext-a")])  # fails on page 2
    writer.session(7, "s2", "add_members", [member("a", "ext-a"), member("b", "ext-b")], per_page=1)
    writer.session(7, "s2", "remove_members", [])
    tap = run(writer, state)
    assert changes_of(tap) == [("ext-a", "add"), ("ext-b", "add")]
    assert changes_of(run(writer, final_state(tap))) == []


def test_members_without_the_id_property_are_counted_and_named(writer, caplog):
    caplog.set_level(logging.INFO)
    writer.session(7, "s1", "members", [member("a", "ext-a"), member("b"), member("c")])
    tap = run(writer)
    assert [r["external_id"] for r in records(tap, "cohort_members")] == ["ext-a", "b", "c"]
    assert (
        "cohort_members: cohort 7: 2 member(s) delivered without the property "
        "'$braze_external_id' (2 sent to Braze under their Mixpanel distinct id, 0 skipped)"
    ) in caplog.text
    assert "Properties to Export" in caplog.text
    caplog.clear()
    tap = run(writer, fallback_to_distinct_id=False)
    assert [r["external_id"] for r in records(tap, "cohort_members")] == ["ext-a"]
    assert "(0 sent to Braze under their Mixpanel distinct id, 2 skipped)" in caplog.text


def test_pages_of_the_earlier_layout_are_counted_not_read(writer, caplog):
    writer.session(7, "s1", "members", members(2))
    old = writer.root / "cohort=7" / "session=old" / "page-000001-of-000001.json"
    old.parent.mkdir()
    old.write_text("{}")
    caplog.set_level(logging.INFO)
    tap = run(writer)
    assert len(records(tap, "cohort_members")) == 2
    assert "Spool: 1 page(s) are stored in the layout of an earlier release" in caplog.text
