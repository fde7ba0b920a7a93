"""Both streams against the emulator: fields, id resolution, selection, pagination, snapshots."""

from __future__ import annotations

import json
import logging

import pytest

from braze_mixpanel_common.errors import ConfigurationError
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers
from tap_mixpanel_cohorts.client import MixpanelQueryError, PageStats
from tests.support.cohorts import config_for, make_tap, records, run_tap


def test_cohorts_stream_lists_visible_cohorts_with_typed_fields(emulator, clock):
    tap = run_tap(config_for(emulator), clock)
    cohorts = records(tap, "cohorts")
    assert [c["id"] for c in cohorts] == [1, 2]
    assert cohorts[0] == {
        "id": 1,
        "name": "Buyers",
        "description": "Bought twice",
        "count": 4,
        "created": "2024-01-02T03:04:05+00:00",
        "is_visible": True,
        "project_id": 12345,
    }
    # Both streams share one cohorts/list query.
    assert emulator.queries["list"] == 1


def test_cohort_members_resolve_external_ids_and_fallback(emulator, clock):
    tap = run_tap(config_for(emulator, output_properties=["$email"]), clock)
    members = records(tap, "cohort_members")
    buyers = {m["distinct_id"]: m for m in members if m["cohort_id"] == 1}
    assert buyers["u1"] == {
        "cohort_id": 1,
        "cohort_name": "Buyers",
        "distinct_id": "u1",
        "external_id": "braze-1",
        "$email": "u1@example.com",
    }
    assert buyers["u2"]["external_id"] == "u2"  # no $braze_external_id: falls back
    assert buyers["42"]["external_id"] == "4242"  # int distinct id and int property
    assert buyers["u4"]["external_id"] == "u4"  # blank id counts as missing
    big = [m for m in members if m["cohort_id"] == 2]
    assert len(big) == 2500
    assert len({m["distinct_id"] for m in big}) == 2500
    assert big[1]["external_id"] == "ext-big-1"
    assert big[0]["external_id"] == "big-0"
    # Only what is needed is asked for, form-encoded, by POST.
    assert json.loads(emulator.last_form["output_properties"]) == ["$braze_external_id", "$email"]
    assert emulator.methods["GET"] == 0


def test_requested_properties_keep_their_json_types(emulator, clock):
    config = config_for(emulator, cohort_ids=[1], output_properties=["tags", "address", "crm_id"])
    tap = run_tap(config, clock)
    by_id = {m["distinct_id"]: m for m in records(tap, "cohort_members")}
    assert by_id["u1"]["tags"] == ["a", "b"]
    assert by_id["u1"]["address"] == {"city": "Lyon", "zip": 69001}
    assert by_id["u2"]["crm_id"] == 7
    assert by_id["u2"]["tags"] is None


def test_members_without_id_are_skipped_and_counted(emulator, clock, caplog):
    caplog.set_level(logging.INFO)
    tap = run_tap(config_for(emulator, fallback_to_distinct_id=False), clock)
    members = records(tap, "cohort_members")
    assert {m["distinct_id"] for m in members if m["cohort_id"] == 1} == {"u1", "42"}
    assert len([m for m in members if m["cohort_id"] == 2]) == 2250
    log = caplog.text
    assert "Cohort 1 'Buyers': 2 members, 2 skipped (2 with no '$braze_external_id')" in log
    assert "Cohort 2 'Big': 2250 members, 250 skipped" in log
    assert "3 pages, 3 queries used" in log


def test_custom_user_id_property(emulator, clock):
    config = config_for(emulator, user_id_property="crm_id", cohort_ids=[1])
    tap = run_tap(config, clock)
    ids = {m["distinct_id"]: m["external_id"] for m in records(tap, "cohort_members")}
    assert ids == {"u1": "c-1", "u2": "7", "42": "42", "u4": "u4"}
    assert json.loads(emulator.last_form["output_properties"]) == ["crm_id"]


def test_cohort_ids_select_both_streams_including_hidden(emulator, clock):
    tap = run_tap(config_for(emulator, cohort_ids=[3, 1]), clock)
    assert [c["id"] for c in records(tap, "cohorts")] == [3, 1]
    assert {m["cohort_id"] for m in records(tap, "cohort_members")} == {1, 3}
    assert 2 not in emulator.pages_served


def test_unknown_cohort_id_is_a_clear_error(emulator, clock):
    tap = make_tap(config_for(emulator, cohort_ids=[1, 99]), clock)
    with pytest.raises(ConfigurationError, match=r"'cohort_ids': cohort\(s\) 99 not found"):
        tap.sync_all()


def test_pagination_follows_session_until_a_short_page(make_emulator, clock):
    emulator = make_emulator(page_size=100)
    tap = run_tap(config_for(emulator, cohort_ids=[2]), clock)
    assert len(records(tap, "cohort_members")) == 2500
    # 2,500 members in pages of 100: 25 full pages and an empty one ends it.
    assert emulator.pages_served[2] == 26
    assert emulator.queries["engage"] == 26


def test_pagination_stops_on_a_short_page(make_emulator, clock):
    emulator = make_emulator(page_size=1000)
    run_tap(config_for(emulator, cohort_ids=[2]), clock)
    assert emulator.pages_served[2] == 3  # 1000 + 1000 + 500


def test_members_stream_page_by_page(make_emulator, clock):
    """The client asks for the next page only when the current one is consumed."""
    emulator = make_emulator(page_size=100)
    tap = make_tap(config_for(emulator), clock)
    pages = tap.client.iter_member_pages(2, ["$braze_external_id"], PageStats())
    first = next(pages)
    assert len(first) == 100
    assert emulator.pages_served[2] == 1
    next(pages)
    assert emulator.pages_served[2] == 2


def test_activate_version_closes_a_complete_snapshot(emulator, clock):
    tap = run_tap(config_for(emulator), clock)
    stream_messages = [m for m in tap.messages if m.get("stream") == "cohort_members"]
    kinds = [m["type"] for m in stream_messages]
    assert kinds[0] == "SCHEMA"
    assert kinds[-1] == "ACTIVATE_VERSION"
    assert kinds.count("ACTIVATE_VERSION") == 1
    version = stream_messages[-1]["version"]
    assert all(m["version"] == version for m in stream_messages if m["type"] == "RECORD")
    cohort_kinds = [m["type"] for m in tap.messages if m.get("stream") == "cohorts"]
    assert cohort_kinds[-1] == "ACTIVATE_VERSION"


def test_activate_version_can_be_turned_off(emulator, clock):
    tap = run_tap(config_for(emulator, emit_activate_version_messages=False), clock)
    assert not [m for m in tap.messages if m["type"] == "ACTIVATE_VERSION"]


def test_no_activate_version_after_a_failed_snapshot(make_emulator, clock):
    emulator = make_emulator(page_size=500)

    def revoke_after_two_pages(request):
        if emulator.pages_served[2] >= 2:
            emulator.service_accounts.clear()

    emulator.on_query = revoke_after_two_pages
    tap = make_tap(config_for(emulator, cohort_ids=[1, 2]), clock)
    with pytest.raises(ConfigurationError, match="401"):
        tap.sync_all()
    assert records(tap, "cohort_members")  # some members went out ...
    assert not [
        m
        for m in tap.messages
        if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "cohort_members"
    ]  # ... but the snapshot was never activated


def test_no_activate_version_when_retries_run_out(make_emulator, clock):
    emulator = make_emulator(page_size=500)

    def fail_page_three(request):
        if emulator.pages_served[2] >= 2:
            raise RuntimeError("backend down")  # the emulator answers 500

    emulator.on_query = fail_page_three
    tap = make_tap(config_for(emulator, cohort_ids=[2]), clock)
    with pytest.raises(MixpanelQueryError, match="after 8 attempts"):
        tap.sync_all()
    assert len(records(tap, "cohort_members")) == 1000
    assert not [m for m in tap.messages if m["type"] == "ACTIVATE_VERSION"]


def test_expired_session_restarts_the_cohort_once(make_emulator, clock, caplog):
    emulator = make_emulator(page_size=1000, session_ttl=600)
    expired = []

    def expire_once(request):
        if "session_id" in request.form() and not expired:
            expired.append(True)
            clock.sleep(700)

    emulator.on_query = expire_once
    tap = run_tap(config_for(emulator, cohort_ids=[2]), clock)
    ids = [m["distinct_id"] for m in records(tap, "cohort_members")]
    assert set(ids) == {f"big-{i}" for i in range(2500)}
    assert len(ids) == 3500  # page 0 was emitted twice; consumers key on cohort + distinct id
    assert "Restarting the cohort from page 0 once" in caplog.text
    kinds = [m["type"] for m in tap.messages if m.get("stream") == "cohort_members"]
    assert kinds[-1] == "ACTIVATE_VERSION"


def test_session_expiring_twice_fails(make_emulator, clock):
    emulator = make_emulator(page_size=1000, session_ttl=600)

    def always_expire(request):
        if "session_id" in request.form():
            clock.sleep(700)

    emulator.on_query = always_expire
    tap = make_tap(config_for(emulator, cohort_ids=[2]), clock)
    with pytest.raises(MixpanelQueryError, match="400"):
        tap.sync_all()
    assert not [m for m in tap.messages if m["type"] == "ACTIVATE_VERSION"]


def test_empty_cohort_costs_one_query(make_emulator, clock):
    emulator = make_emulator([Cohort(5, "Nobody", members=[])])
    tap = run_tap(config_for(emulator), clock)
    assert records(tap, "cohort_members") == []
    assert emulator.pages_served[5] == 1
    assert [m["type"] for m in tap.messages if m.get("stream") == "cohort_members"][-1] == (
        "ACTIVATE_VERSION"
    )


def test_integer_distinct_ids(make_emulator, clock):
    emulator = make_emulator([Cohort(6, "Ints", members=GeneratedMembers(1200, int_ids=True))])
    tap = run_tap(config_for(emulator), clock)
    ids = [m["distinct_id"] for m in records(tap, "cohort_members")]
    assert ids[:2] == ["0", "1"]
    assert len(ids) == 1200
