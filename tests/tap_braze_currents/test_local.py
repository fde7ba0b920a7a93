"""tap-braze-currents against export trees on the local disk."""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from braze_mixpanel_common.currents import known_event_types, stream_name
from sandbox.loop.currents_gen import (
    DRIFT_FIELDS,
    EventFactory,
    avro_schema,
    generate_export,
    write_avro,
)
from tap_braze_currents.reader import CorruptFileError
from tap_braze_currents.tap import TapBrazeCurrents
from tests.support.harness import run_cli

CUSTOM = "users.behaviors.CustomEvent"
STREAM = "users_behaviors_customevent"


@pytest.fixture
def export(tmp_path: Path):
    return generate_export(tmp_path / "bucket", seed=7, events_per_file=30)


def config_for(export, **extra):
    return {"storage_url": str(export.root / "currents"), **extra}


def discover(config) -> dict[str, dict]:
    tap = TapBrazeCurrents(config=config, parse_env_config=False)
    catalog = tap.catalog_dict
    return {entry["stream"]: entry for entry in catalog["streams"]}


def ids_by_stream(output) -> dict[str, collections.Counter]:
    return {s: collections.Counter(r["id"] for r in recs) for s, recs in output.records.items()}


def test_discovery_lists_every_known_type_even_without_files(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    streams = discover({"storage_url": str(tmp_path / "empty")})
    assert set(streams) == {stream_name(t) for t in known_event_types()}
    for seed_type in (
        "users.messages.newsfeedcard.Click",
        "users.messages.sms.CarrierSend",
        "users.messages.webhook.Send",
        "users.messages.inappmessage.Impression",
        "users.messages.contentcard.Dismiss",
    ):
        assert stream_name(seed_type) in streams
    custom = streams["users_behaviors_customevent"]
    assert custom["key_properties"] == ["id"]
    props = custom["schema"]["properties"]
    assert props["time"] == {"type": ["integer"]}
    assert props["external_user_id"] == {"type": ["null", "string"]}
    assert props["ad_tracking_enabled"] == {"type": ["null", "boolean"]}
    assert "_sdc_source_file" in props


def test_discovery_finds_unknown_event_types_and_unions_drifted_schemas(export, tmp_path):
    integration = next((export.root / "currents").iterdir())
    schema = {
        "type": "record",
        "name": "Poke",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "time", "type": "long"},
            {"name": "tags", "type": {"type": "map", "values": "string"}},
        ],
    }
    folder = integration / "event_type=users.messages.hologram.Poke" / "date=2026-11-01-11"
    write_avro(folder / "version=10" / "us-01" / "x+0+1.avro", schema, [])
    newer = avro_schema(CUSTOM)
    newer["fields"].append({"name": "brand_new_field", "type": ["null", "int"], "default": None})
    folder = integration / f"event_type={CUSTOM}" / "date=2026-11-01-12" / "version=11" / "us-01"
    write_avro(folder / "y+0+1.avro", newer, [])

    streams = discover(config_for(export))
    poke = streams["users_messages_hologram_poke"]["schema"]["properties"]
    assert poke["time"] == {"type": ["integer"]}
    assert poke["tags"] == {"type": ["object"], "additionalProperties": {"type": ["string"]}}
    custom = streams["users_behaviors_customevent"]["schema"]["properties"]
    assert custom["brand_new_field"] == {"type": ["null", "integer"]}
    assert "app_group_id" in custom  # in the catalogue and the current files, not the old ones


def test_sync_emits_every_record_of_every_file_as_written(export, run_tap):
    output = run_tap(TapBrazeCurrents, config_for(export))
    expected = collections.defaultdict(collections.Counter)
    for event_type, record in export.events:
        expected[stream_name(event_type)][record["id"]] += 1
    assert ids_by_stream(output) == expected  # duplicates (at-least-once) passed through

    by_id = {r["id"]: r for _, r in export.events}
    for record in output.all_records():
        source = record.pop("_sdc_source_file")
        assert source.startswith("file://") and source.endswith(".avro")
        assert record == by_id[record["id"]]
    customs = output.records["users_behaviors_customevent"]
    assert all(isinstance(r["time"], int) for r in customs)
    assert any(r["external_user_id"] is None for r in customs)
    assert any(r["name"] == "注册完成" or "🎮" in r["name"] for r in customs)
    assert all(isinstance(json.loads(r["properties"]), dict) for r in customs)


def test_both_layouts_and_several_integrations_under_one_prefix(tmp_path, run_tap):
    root = tmp_path / "bucket"
    first = generate_export(root, seed=1, layout="version", corrupt=False, drift=False)
    second = generate_export(
        root,
        seed=2,
        layout="schema_id",
        integration_id="5a1b2c3d4e5f60718293a4b5",
        connection="S3",
        corrupt=False,
    )
    output = run_tap(TapBrazeCurrents, {"storage_url": f"file://{root}/currents"})
    got = collections.Counter(r["id"] for r in output.all_records())
    assert got == collections.Counter(first.expected_ids() + second.expected_ids())


def test_drifted_files_are_read_into_one_stream(export, run_tap):
    output = run_tap(TapBrazeCurrents, config_for(export, event_types=[CUSTOM]))
    records = output.records["users_behaviors_customevent"]
    newest = [name for name, _ in known_event_types()[CUSTOM]][-DRIFT_FIELDS:]
    old = [r for r in records if "/version=9/" in r["_sdc_source_file"]]
    new = [r for r in records if "/version=10/" in r["_sdc_source_file"]]
    assert old and new
    assert all(not set(newest) & set(r) for r in old)
    assert all(set(newest) <= set(r) for r in new)
    assert set(newest) <= set(output.schemas["users_behaviors_customevent"]["properties"])


def test_corrupt_files_are_skipped_named_and_counted(export, run_tap, caplog):
    not_avro = export.files[0].parent / "garbage+0+1.avro"
    not_avro.write_bytes(b"this is not avro at all, just text\n" * 20)
    (export.files[0].parent / "notes.txt").write_text("not an export file")
    caplog.set_level("INFO")
    output = run_tap(TapBrazeCurrents, config_for(export, event_types=[CUSTOM]))
    assert len(output.records["users_behaviors_customevent"]) == len(export.expected_ids(CUSTOM))
    text = caplog.text
    assert "empty+0+9999999991.avro: empty file (0 bytes)" in text
    assert "truncated+0+9999999990.avro: truncated Avro file" in text
    assert "garbage+0+1.avro: not an Avro container file" in text
    assert "3 corrupt" in text
    assert "1 non-.avro files ignored" in text


def test_corrupt_file_with_fail_policy_stops_with_a_clear_error(export, run_tap):
    output = run_tap(
        TapBrazeCurrents,
        config_for(export, event_types=[CUSTOM], on_corrupt_file="fail"),
        expect_error=True,
    )
    assert isinstance(output.error, CorruptFileError)
    message = str(output.error)
    assert "truncated+0+9999999990.avro" in message or "empty+0+9999999991.avro" in message
    assert "on_corrupt_file=fail" in message


def test_corrupt_files_are_not_reread_on_the_next_run(export, run_tap, caplog):
    config = config_for(export, event_types=[CUSTOM])
    first = run_tap(TapBrazeCurrents, config)
    caplog.clear()
    caplog.set_level("INFO")
    second = run_tap(TapBrazeCurrents, config, state=first.state)
    assert second.all_records() == []
    assert "0 corrupt" in caplog.text


def test_event_types_and_start_date_filters(export, run_tap):
    output = run_tap(
        TapBrazeCurrents,
        config_for(
            export,
            event_types=[CUSTOM, "users.messages.email.Open"],
            start_date="2026-11-01T11:00:00Z",
        ),
    )
    assert set(output.records) == {"users_behaviors_customevent", "users_messages_email_open"}
    hours = {r["_sdc_source_file"].split("date=")[1][:13] for r in output.all_records()}
    assert hours == {"2026-11-01-11", "2026-11-01-12"}


def test_end_date_is_exclusive_on_the_partition_hour(export, run_tap):
    output = run_tap(
        TapBrazeCurrents,
        config_for(export, event_types=[CUSTOM], end_date="2026-11-01T12:00:00Z"),
    )
    hours = {r["_sdc_source_file"].split("date=")[1][:13] for r in output.all_records()}
    assert hours == {"2026-11-01-10", "2026-11-01-11"}


def test_missing_storage_url_is_a_config_error_naming_it():
    with pytest.raises(ConfigValidationError) as error:
        TapBrazeCurrents(config={}, parse_env_config=False)
    assert any("storage_url" in e for e in error.value.errors)


def test_incremental_three_runs_pick_up_late_and_new_files_only(export, run_tap):
    config = config_for(export, event_types=[CUSTOM])
    first = run_tap(TapBrazeCurrents, config)
    assert len(first.all_records()) == len(export.expected_ids(CUSTOM))

    second = run_tap(TapBrazeCurrents, config, state=first.state)
    assert second.all_records() == []

    factory = EventFactory(99)
    schema = avro_schema(CUSTOM)
    base = export.files[0].parents[3]  # .../event_type=users.behaviors.CustomEvent
    late_hour = datetime(2026, 11, 1, 10, tzinfo=UTC)  # an older partition, already read
    late = [factory.record(CUSTOM, schema, late_hour) for _ in range(5)]
    write_avro(base / "date=2026-11-01-10" / "version=10" / "us-01" / "late+0+1.avro", schema, late)
    new_hour = datetime(2026, 11, 1, 14, tzinfo=UTC)
    new = [factory.record(CUSTOM, schema, new_hour) for _ in range(7)]
    write_avro(base / "date=2026-11-01-14" / "version=10" / "us-01" / "new+0+1.avro", schema, new)

    third = run_tap(TapBrazeCurrents, config, state=second.state)
    assert sorted(r["id"] for r in third.all_records()) == sorted(r["id"] for r in late + new)


def test_state_stays_bounded_to_the_lookback_window(tmp_path, run_tap):
    export = generate_export(
        tmp_path / "b",
        event_types=[CUSTOM],
        hours=10,
        files_per_hour=3,
        events_per_file=2,
        corrupt=False,
    )
    config = config_for(export, lookback_hours=4)
    output = run_tap(TapBrazeCurrents, config)
    bookmark = output.state["bookmarks"]["users_behaviors_customevent"]
    assert bookmark["floor"] == "2026-11-01-15"  # newest partition 19h minus 4h
    assert sorted(bookmark["files"]) == [f"2026-11-01-{h}" for h in range(15, 20)]
    assert sum(len(v) for v in bookmark["files"].values()) == 15  # not 30: old hours dropped
    again = run_tap(TapBrazeCurrents, config, state=output.state)
    assert again.all_records() == []


def test_interrupted_run_resumes_without_skipping_files(export, run_tap):
    config = config_for(export, event_types=[CUSTOM])
    full = run_tap(TapBrazeCurrents, config)
    sources = list(dict.fromkeys(r["_sdc_source_file"] for r in full.all_records()))
    # The state emitted right after the second file: what a run killed during the third leaves.
    partial_state = next(
        s
        for s in full.states
        if sum(len(v) for v in s["bookmarks"][STREAM].get("files", {}).values()) == 2
    )
    resumed = run_tap(TapBrazeCurrents, config, state=partial_state)
    assert {r["_sdc_source_file"] for r in resumed.all_records()} == set(sources[2:])
    before_kill = [r["id"] for r in full.all_records() if r["_sdc_source_file"] in sources[:2]]
    got = collections.Counter(before_kill + [r["id"] for r in resumed.all_records()])
    assert got == collections.Counter(export.expected_ids(CUSTOM))


def test_a_file_that_changes_is_read_again(export, run_tap):
    config = config_for(export, event_types=[CUSTOM])
    first = run_tap(TapBrazeCurrents, config)
    schema = avro_schema(CUSTOM)
    when = datetime(2026, 11, 1, 11, tzinfo=UTC)
    records = [EventFactory(5).record(CUSTOM, schema, when) for _ in range(3)]
    write_avro(export.files[2], schema, records)
    second = run_tap(TapBrazeCurrents, config, state=first.state)
    assert sorted(r["id"] for r in second.all_records()) == sorted(r["id"] for r in records)


def test_stream_maps_and_flattening_still_apply(export, run_tap):
    config = config_for(
        export,
        event_types=[CUSTOM],
        stream_maps={STREAM: {"device_id": None, "event_name": "name"}},
    )
    output = run_tap(TapBrazeCurrents, config)
    records = output.records[STREAM]
    assert records and all("device_id" not in r for r in records)
    assert all(r["event_name"] == r["name"] for r in records)


# -- SDK hooks the tap relies on (docs/sdk-deviations.md) ----------------------------------------


def summary_lines(caplog) -> list[int]:
    """Indexes of the end-of-run summary among the captured log records."""
    return [
        i
        for i, r in enumerate(caplog.records)
        if r.getMessage().startswith("Currents sync summary")
    ]


def test_summary_is_logged_once_after_every_stream_synced(export, run_tap, caplog):
    caplog.set_level("INFO")
    run_tap(TapBrazeCurrents, config_for(export, event_types=[CUSTOM, "users.messages.email.Open"]))
    summaries = summary_lines(caplog)
    assert len(summaries) == 1
    starts = [i for i, r in enumerate(caplog.records) if "Beginning sync" in r.getMessage()]
    assert len(starts) == 2 and summaries[0] > max(starts)


def test_summary_is_logged_once_when_the_sync_fails(export, run_tap, caplog):
    caplog.set_level("INFO")
    run_tap(
        TapBrazeCurrents,
        config_for(export, event_types=[CUSTOM], on_corrupt_file="fail"),
        expect_error=True,
    )
    assert len(summary_lines(caplog)) == 1
    assert "1 corrupt" in caplog.text


def test_records_take_the_fast_path_unless_a_map_changes_them(export):
    plain = TapBrazeCurrents(
        config=config_for(export, event_types=[CUSTOM]), parse_env_config=False
    )
    assert plain.streams[STREAM]._pass_through
    mapped = TapBrazeCurrents(
        config=config_for(export, event_types=[CUSTOM], stream_maps={STREAM: {"name": None}}),
        parse_env_config=False,
    )
    assert not mapped.streams[STREAM]._pass_through


def test_discover_with_a_bad_storage_url_ends_in_one_line(tmp_path):
    result = run_cli(
        "tap-braze-currents", {"storage_url": "nope://bucket/x"}, tmp_path, args=["--discover"]
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "ERROR" in result.last_error_line and "storage_url" in result.last_error_line
    assert result.stdout == ""


def test_schema_and_state_only_for_types_with_files_or_listed(export, run_tap, caplog):
    present = {stream_name(t) for t, _ in export.events}
    with caplog.at_level("INFO"):
        output = run_tap(TapBrazeCurrents, config_for(export))
    assert set(output.schemas) == present
    assert set(output.state["bookmarks"]) <= present
    assert any("known event type(s) have no files under" in m for m in caplog.messages)
    # A type named in event_types gets its SCHEMA (a table downstream) before its first file.
    sms = "users.messages.sms.Delivery"
    assert stream_name(sms) not in present
    listed = run_tap(TapBrazeCurrents, config_for(export, event_types=[CUSTOM, sms]))
    assert set(listed.schemas) == {STREAM, stream_name(sms)}
    assert stream_name(sms) not in listed.records
    # Discovery still lists every known type, so a catalog can select one in advance.
    assert {stream_name(t) for t in known_event_types()} <= set(discover(config_for(export)))


def test_a_selected_type_without_files_starts_once_its_first_file_arrives(export, run_tap):
    sms = "users.messages.sms.Delivery"
    before = run_tap(TapBrazeCurrents, config_for(export))
    assert stream_name(sms) not in before.schemas
    integration = next((export.root / "currents").iterdir())
    folder = integration / f"event_type={sms}" / "date=2026-11-01-12"
    folder.mkdir(parents=True)
    factory = EventFactory(3)
    schema = avro_schema(sms)
    records = [factory.record(sms, schema, datetime(2026, 11, 1, 12, tzinfo=UTC)) for _ in range(4)]
    write_avro(folder / "part-0.avro", schema, records)
    after = run_tap(TapBrazeCurrents, config_for(export), state=before.state)
    assert stream_name(sms) in after.schemas
    assert len(after.records[stream_name(sms)]) == 4
