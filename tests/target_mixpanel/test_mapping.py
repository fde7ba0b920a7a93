"""Record -> Mixpanel event: the Currents rules, property expansion, limits, generic streams."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from braze_mixpanel_common.currents import stream_name
from target_mixpanel.events import (
    EVENT_NAMES,
    EVENT_TYPE_BY_STREAM,
    KNOWN_EVENT_TYPES,
)
from target_mixpanel.mapping import (
    MAX_PROPERTIES,
    CurrentsMapper,
    GenericMapper,
    RejectRecord,
    SkipRecord,
    is_currents_stream,
    parse_event_time,
    record_hash_id,
    stable_insert_id,
)
from target_mixpanel.sinks import encode_event
from target_mixpanel.stats import RunStats
from tests.support.mixpanel import currents_record

MIN_2010 = 1_262_304_000.0

# Every seed group of the design's rules table.
NAMES = [
    ("users.behaviors.Purchase", "Purchase"),
    ("users.behaviors.app.SessionStart", "Session Start"),
    ("users.behaviors.app.FirstSession", "First Session"),
    ("users.behaviors.app.SessionEnd", "Session End"),
    ("users.behaviors.Location", "Location"),
    ("users.behaviors.InstallAttribution", "Install Attribution"),
    ("users.behaviors.Uninstall", "Uninstall"),
    ("users.behaviors.subscription.GlobalStateChange", "Global Subscription State Change"),
    ("users.behaviors.subscriptiongroup.StateChange", "Subscription Group State Change"),
    ("users.campaigns.Conversion", "Campaign Conversion"),
    ("users.campaigns.EnrollInControl", "Campaign Enroll In Control"),
    ("users.canvas.Entry", "Canvas Entry"),
    ("users.canvas.Conversion", "Canvas Conversion"),
    ("users.canvas.exit.MatchedAudience", "Exit Match Audience"),
    ("users.canvas.exit.PerformedEvent", "Exit Perform Event"),
    ("users.messages.email.Send", "Email Send"),
    ("users.messages.email.Open", "Email Open"),
    ("users.messages.email.Click", "Email Click"),
    ("users.messages.email.Delivery", "Email Delivery"),
    ("users.messages.email.Bounce", "Email Bounce"),
    ("users.messages.email.SoftBounce", "Email Soft Bounce"),
    ("users.messages.email.MarkAsSpam", "Email Mark As Spam"),
    ("users.messages.email.Unsubscribe", "Email Unsubscribe"),
    ("users.messages.email.Abort", "Email Abort"),
    ("users.messages.pushnotification.Send", "Push Notification Send"),
    ("users.messages.pushnotification.Open", "Push Notification Open"),
    ("users.messages.pushnotification.Bounce", "Push Notification Bounce"),
    ("users.messages.sms.Send", "SMS Send"),
    ("users.messages.sms.Delivery", "SMS Delivery"),
    ("users.messages.sms.CarrierSend", "SMS Send to Carrier"),
    ("users.messages.sms.InboundReceive", "SMS Inbound Received"),
    ("users.messages.sms.DeliveryFailure", "SMS Delivery Failure"),
    ("users.messages.sms.Rejection", "SMS Rejection"),
    ("users.messages.webhook.Send", "Webhook Send"),
    ("users.messages.contentcard.Click", "Content Card Click"),
    ("users.messages.inappmessage.Impression", "In-App Message Impression"),
    ("users.messages.newsfeedcard.Click", "News Feed Card Click"),
]


def mapper(event_type: str, stats: RunStats | None = None, **kw) -> CurrentsMapper:
    return CurrentsMapper(
        stream_name(event_type),
        stats or RunStats(),
        min_time=kw.pop("min_time", MIN_2010),
        ip=kw.pop("ip", "0"),
    )


@pytest.mark.parametrize(("event_type", "name"), NAMES)
def test_event_names_follow_brazes_glossary(event_type: str, name: str) -> None:
    record = currents_record(1, properties=None)
    event = mapper(event_type).map(record)
    assert event["event"] == name


def test_every_known_type_has_a_stream_and_a_name() -> None:
    assert len(KNOWN_EVENT_TYPES) >= 94
    for event_type in KNOWN_EVENT_TYPES:
        stream = stream_name(event_type)
        assert EVENT_TYPE_BY_STREAM[stream] == event_type
        assert EVENT_NAMES[event_type].strip()
        assert is_currents_stream(stream, {})
    assert stream_name("users.behaviors.CustomEvent") == "users_behaviors_customevent"


def test_unknown_currents_type_falls_back_to_title_case_and_is_kept() -> None:
    schema = {"properties": {"id": {}, "time": {}, "external_user_id": {}}}
    assert is_currents_stream("users_messages_email_newthing", schema)
    assert not is_currents_stream("users", schema)
    assert not is_currents_stream("users_messages_email_newthing", {"properties": {"id": {}}})
    event = CurrentsMapper(
        "users_messages_email_newthing", RunStats(), min_time=MIN_2010, ip="0"
    ).map(currents_record(3))
    assert event["event"] == "Email Newthing"
    event = CurrentsMapper(
        "x", RunStats(), min_time=MIN_2010, ip="0", event_type="users.messages.kakao.FriendAdd"
    ).map(currents_record(3))
    assert event["event"] == "Kakao Friend Add"


def test_custom_event_is_prefixed_and_properties_expanded() -> None:
    props = {"sku": "a1", "qty": 3, "price": 9.5, "gift": True, "tags": ["x", "y"], "n": {"a": 1}}
    record = currents_record(7, name="Added To Cart", properties=json.dumps(props))
    event = mapper("users.behaviors.CustomEvent").map(record)
    assert event["event"] == "[Braze Custom Event] Added To Cart"
    p = event["properties"]
    assert p["[Custom event property] sku"] == "a1"
    assert p["[Custom event property] qty"] == 3
    assert p["[Custom event property] price"] == 9.5
    assert p["[Custom event property] gift"] is True
    assert p["[Custom event property] tags"] == ["x", "y"]
    assert p["[Custom event property] n"] == {"a": 1}
    assert "properties" not in p
    assert p["distinct_id"] == "user-007"
    assert p["time"] == 1_760_000_007
    assert p["$insert_id"] == "evt-000007"
    assert p["$partner_id"] == "braze"
    assert p["$device"] == "Pixel 9"
    assert p["$os"] == "Android 15"
    assert p["ip"] == "0"
    assert p["name"] == "Added To Cart"
    assert p["user_id"] == f"{7:024x}"
    assert not any(k.startswith("_sdc_") for k in p)
    for consumed in ("id", "external_user_id", "device_model", "os_version"):
        assert consumed not in p


def test_purchase_properties_get_their_prefix_and_nulls_are_dropped() -> None:
    record = currents_record(2, properties='{"quantity": 2}', device_model=None, price=12.5)
    event = mapper("users.behaviors.Purchase").map(record)
    p = event["properties"]
    assert p["[Purchase property] quantity"] == 2
    assert p["price"] == 12.5
    assert "$device" not in p
    assert "device_model" not in p


def test_configured_ip_and_empty_ip() -> None:
    assert (
        mapper("users.canvas.Entry", ip="1.2.3.4").map(currents_record(1))["properties"]["ip"]
        == "1.2.3.4"
    )
    assert "ip" not in mapper("users.canvas.Entry", ip=None).map(currents_record(1))["properties"]


def test_events_without_external_user_id_or_too_old_are_skipped() -> None:
    m = mapper("users.messages.email.Send")
    with pytest.raises(SkipRecord) as skipped:
        m.map(currents_record(1, external_user_id=None))
    assert skipped.value.reason == "no_external_user_id"
    with pytest.raises(SkipRecord):
        m.map(currents_record(1, external_user_id=""))
    with pytest.raises(SkipRecord) as old:
        m.map(currents_record(1, time=1_000_000_000))  # 2001
    assert old.value.reason == "before_min_event_time"
    with pytest.raises(RejectRecord):
        m.map(currents_record(1, time=None))


def test_invalid_properties_json_keeps_the_raw_string_and_is_counted() -> None:
    stats = RunStats()
    m = mapper("users.behaviors.CustomEvent", stats)
    event = m.map(currents_record(1, properties='{"broken": '))
    assert event["properties"]["properties"] == '{"broken": '
    event = m.map(currents_record(2, properties="[1, 2]"))
    assert event["properties"]["properties"] == "[1, 2]"
    assert stats.invalid_properties_json == 2
    event = m.map(currents_record(3, properties=""))
    assert "properties" not in event["properties"]
    assert stats.invalid_properties_json == 2


def test_long_strings_are_truncated_and_counted() -> None:
    stats = RunStats()
    long = "é" * 300
    props = json.dumps({"long": long, "nested": {"deep": [long]}, "k" * 300: 1})
    record = currents_record(1, properties=props, campaign_name=long)
    event = mapper("users.behaviors.CustomEvent", stats).map(record)
    p = event["properties"]
    assert p["campaign_name"] == "é" * 255
    assert p["[Custom event property] long"] == "é" * 255
    assert p["[Custom event property] nested"] == {"deep": ["é" * 255]}
    assert ("[Custom event property] " + "k" * 300)[:255] in p
    assert stats.truncated_strings == 4
    custom = mapper("users.behaviors.CustomEvent", stats).map(currents_record(1, name="n" * 300))
    assert len(custom["event"]) == 255


def test_too_many_properties_are_dropped_never_the_event() -> None:
    stats = RunStats()
    many = {f"p{i:03d}": i for i in range(400)}
    event = mapper("users.behaviors.CustomEvent", stats).map(
        currents_record(1, properties=json.dumps(many))
    )
    p = event["properties"]
    assert len(p) == MAX_PROPERTIES
    for required in ("time", "distinct_id", "$insert_id", "$partner_id", "ip", "$device", "$os"):
        assert required in p
    assert stats.dropped_properties > 0
    assert stats.dropped_properties + MAX_PROPERTIES == len(p) + stats.dropped_properties


@pytest.mark.parametrize(
    "raw",
    ["a" * 37, "evt:1:2", "null", "0", "", "ünïcode"],
)
def test_insert_id_is_hashed_when_mixpanel_would_refuse_it(raw: str) -> None:
    value = stable_insert_id(raw)
    assert value != raw
    assert len(value) <= 36
    assert value.replace("-", "").isalnum()
    assert stable_insert_id(raw) == value  # stable: replays dedupe


def test_valid_insert_id_is_kept_as_is() -> None:
    uid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert stable_insert_id(uid) == uid


def test_currents_event_without_id_gets_a_stable_content_hash() -> None:
    m = mapper("users.canvas.Entry")
    a = m.map(currents_record(1, id=None, _sdc_source_file="one"))
    b = m.map(currents_record(1, id=None, _sdc_source_file="two"))
    c = m.map(currents_record(2, id=None))
    assert a["properties"]["$insert_id"] == b["properties"]["$insert_id"]
    assert a["properties"]["$insert_id"] != c["properties"]["$insert_id"]


@pytest.mark.parametrize(
    ("value", "sent", "seconds"),
    [
        (1_700_000_000, 1_700_000_000, 1_700_000_000.0),
        (1_700_000_000_123, 1_700_000_000_123, 1_700_000_000.123),
        ("1700000000", 1_700_000_000, 1_700_000_000.0),
        (Decimal("1700000000.5"), 1_700_000_000_500, 1_700_000_000.5),
        ("2023-11-14T22:13:20Z", 1_700_000_000, 1_700_000_000.0),
        ("2023-11-14T22:13:20.250+00:00", 1_700_000_000_250, 1_700_000_000.25),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000, 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000, 1_700_000_000.0),
    ],
)
def test_parse_event_time(value, sent, seconds) -> None:
    got_sent, got_seconds = parse_event_time(value)
    assert got_sent == sent
    assert got_seconds == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, True, "yesterday", "", float("nan")])
def test_parse_event_time_rejects_non_times(value) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_event_time(value)


def generic(**kw) -> GenericMapper:
    defaults = {
        "min_time": MIN_2010,
        "ip": "0",
        "event_name": None,
        "distinct_id_field": "distinct_id",
        "time_field": "time",
        "insert_id_field": None,
    }
    defaults.update(kw)
    return GenericMapper("orders", RunStats(), **defaults)


def test_generic_stream_defaults() -> None:
    record = {
        "distinct_id": 42,
        "time": "2024-05-01T10:00:00Z",
        "total": Decimal("19.99"),
        "lines": [{"sku": "a"}],
        "_sdc_extracted_at": "2024-05-02T00:00:00Z",
        "note": None,
    }
    event = generic().map(record)
    assert event["event"] == "orders"
    p = event["properties"]
    assert p["distinct_id"] == "42"
    assert p["time"] == 1_714_557_600
    assert p["total"] == Decimal("19.99")
    assert p["lines"] == [{"sku": "a"}]
    assert "note" not in p and "_sdc_extracted_at" not in p
    assert p["$insert_id"] == record_hash_id("orders", record)
    again = dict(record, _sdc_extracted_at="2025-01-01T00:00:00Z")
    assert generic().map(again)["properties"]["$insert_id"] == p["$insert_id"]
    changed = dict(record, total=Decimal("20.00"))
    assert generic().map(changed)["properties"]["$insert_id"] != p["$insert_id"]
    assert b'"total":19.99' in encode_event(event)


def test_generic_stream_configured_fields() -> None:
    m = generic(
        event_name="Order Placed",
        distinct_id_field="customer",
        time_field="ts",
        insert_id_field="order_id",
    )
    event = m.map({"customer": "c-1", "ts": 1_714_557_600_000, "order_id": "o:1", "time": "x"})
    p = event["properties"]
    assert event["event"] == "Order Placed"
    assert p["distinct_id"] == "c-1"
    assert p["time"] == 1_714_557_600_000
    assert p["$insert_id"] == stable_insert_id("o:1")
    assert p["customer"] == "c-1"
    with pytest.raises(SkipRecord):
        m.map({"ts": 1_714_557_600, "order_id": "o-2"})
    with pytest.raises(RejectRecord) as bad:
        m.map({"customer": "c-1", "order_id": "o-3"})
    assert bad.value.field == "ts"


@pytest.mark.parametrize(
    ("record_name", "expected"),
    [
        ("Signed Up", "Signed Up"),
        (7, "7"),
        (Decimal("1.5"), "1.5"),
        ("", "Order Placed"),
        ("   ", "Order Placed"),
        (None, "Order Placed"),
    ],
)
def test_event_name_field_names_the_event_and_is_not_a_property(record_name, expected) -> None:
    m = generic(event_name="Order Placed", event_name_field="event")
    record = {"distinct_id": "u1", "time": 1_714_557_600, "event": record_name, "plan": "pro"}
    event = m.map(record)
    assert event["event"] == expected
    assert "event" not in event["properties"]
    assert event["properties"]["plan"] == "pro"
    assert m.stats.event_name_fallbacks == (1 if expected == "Order Placed" else 0)


def test_event_name_field_missing_falls_back_to_the_stream_name() -> None:
    event = generic(event_name_field="action").map({"distinct_id": "u1", "time": 1_714_557_600})
    assert event["event"] == "orders"


def test_event_name_field_holding_an_object_is_a_dead_letter() -> None:
    m = generic(event_name_field="action")
    with pytest.raises(RejectRecord) as bad:
        m.map({"distinct_id": "u1", "time": 1_714_557_600, "action": {"x": 1}})
    assert bad.value.field == "action"
    assert "dict, not text" in bad.value.message
