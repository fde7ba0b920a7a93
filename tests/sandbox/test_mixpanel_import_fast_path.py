"""The /import emulator's fast path (msgspec parse, quick validity check) answers exactly as the
reference path (json.loads, the full `validate`): same status, body, counters and stored events.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.emulators import mixpanel_import
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.server import Request

NOW = 1_800_000_000.0
AUTH = "Basic " + base64.b64encode(b"sa-user.mp-service-account:sa-secret").decode()
NDJSON, ARRAY = "application/x-ndjson", "application/json"


def answer(body: bytes, content_type: str, keep: str, strict: str, *, reference: bool) -> Any:
    """Status, body, counters and stored events after one /import of ``body``."""
    emu = MixpanelImportEmulator(keep=keep, now=lambda: NOW)
    try:
        with pytest.MonkeyPatch.context() as patch:
            if reference:  # json.loads, the full checks, a dedupe key for every event
                store = MixpanelImportEmulator._store
                patch.setattr(mixpanel_import, "_parse_fast", lambda body, content_type: None)
                patch.setattr(mixpanel_import, "plainly_valid", lambda event, latest: False)
                patch.setattr(emu, "_store", lambda events, unsure: store(emu, events))
            request = Request(
                "POST",
                "/import",
                {"strict": [strict], "project_id": ["12345"]},
                {"authorization": AUTH, "content-type": content_type},
                body,
            )
            try:
                response = emu.handle(request)
                answered: Any = (response.status, response.body)
            except Exception as exc:  # the server turns it into a 500 with this repr
                answered = repr(exc)
        return answered, emu.stats, emu.events, emu.event_keys()
    finally:
        emu.stop()


def assert_same(body: bytes, content_type: str = NDJSON) -> None:
    for keep in ("count", "keys", "events"):
        for strict in ("0", "1"):
            fast = answer(body, content_type, keep, strict, reference=False)
            slow = answer(body, content_type, keep, strict, reference=True)
            assert repr(fast) == repr(slow), (keep, strict)


def event(**props: Any) -> dict[str, Any]:
    base = {"time": 1_790_000_000, "distinct_id": "user-1", "$insert_id": "abc-1"}
    return {"event": "Email Send", "properties": {**base, **props}}


def line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


EDGE_EVENTS = [
    event(),
    event(time=1_790_000_000_123),
    event(time=1_790_000_000.5),
    event(time=True),
    event(time="1790000000"),
    event(time=10),
    event(time=NOW + 3601),
    event(time=NOW + 3600),
    event(distinct_id=0),
    event(distinct_id=-1),
    event(distinct_id=42),
    event(distinct_id="NULL"),
    event(distinct_id=False),
    event(distinct_id=None),
    event(distinct_id=1.5),
    event(**{"$insert_id": "x" * 36}),
    event(**{"$insert_id": "x" * 37}),
    event(**{"$insert_id": ""}),
    event(**{"$insert_id": "é"}),
    event(**{"$insert_id": "Undefined"}),
    event(**{"$insert_id": 7}),
    event(nested={"a": {"b": {"c": 1}}}),
    event(nested={"a": {"b": {"c": {"d": 1}}}}),
    event(items=list(range(255))),
    event(items=[[[[1]]]]),
    event(long="y" * 300, other=["z" * 300]),
    event(**{f"p{i}": i for i in range(252)}),
    event(**{f"p{i}": i for i in range(251)}),
    event(big="\x7f" * 180_000),
    event(big="a" * 1_048_600),
    {"event": "", "properties": event()["properties"]},
    {"event": 5, "properties": event()["properties"]},
    {"event": "x" * 300, "properties": event()["properties"]},
    {"event": "E", "properties": []},
    {"event": "E"},
    [1, 2],
    "text",
    {"event": "E", "properties": {"distinct_id": "u", "$insert_id": "i"}},
]


@pytest.mark.parametrize("index", range(len(EDGE_EVENTS)))
def test_each_edge_event_alone_and_in_a_batch(index: int) -> None:
    value = EDGE_EVENTS[index]
    assert_same(line(value))
    assert_same(b"\n".join([line(event()), line(value), line(event(time=1_790_000_001))]))
    assert_same(b"[" + line(value) + b"," + line(event()) + b"]", ARRAY)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n",
        line(event()) + b"\r\n" + line(event(time=1_790_000_001)) + b"\r\n",
        line(event()) + b"\r" + line(event(time=1_790_000_001)) + b"\r\r\n\r",
        line(event()) + b"\x0c" + line(event(time=1_790_000_001)) + b"\x1e\n\x1c",
        b'{"event":"E\x1dx","properties":{}}',
        line(event()) + b"\n   \n\t\n" + line(event(time=1_790_000_001)) + b"\n",
        line(event()) + b"\n\xc2\xa0\n",  # a line of a no-break space: str.strip() drops it
        line(event()) + b"\n\x1f\n",
        b'{"event":"E\xe2\x80\xa8x","properties":{}}',  # U+2028 inside a string
        b'{"event":"E\xc2\x85","properties":{"time":1790000000}}',
        b'{"event":"caf\xc3\xa9","properties":{"time":1790000000,"distinct_id":"\xc3\xa9",'
        b'"$insert_id":"a"}}',
        b"\xef\xbb\xbf" + line(event()),  # a BOM
        line(event()) + b"\n\xff\n",
        b'{"event":"E","properties":{"time":NaN,"distinct_id":"u","$insert_id":"a"}}',
        line(event())
        + b'\n{"event":"E","properties":{"time":NaN,"distinct_id":"u","$insert_id":"a"}}',
        b'{"event":"E","properties":{"time":Infinity,"distinct_id":"u","$insert_id":"a"}}',
        b'{"event":"E","properties":{"time":1e400,"distinct_id":"u","$insert_id":"a"}}',
        b'{"event":"E","properties":{"time":1790000000,"distinct_id":' + b"9" * 5000 + b"}}",
        b'{"event":"E","properties":{"time":1790000000,"distinct_id":' + b"9" * 300 + b"}}",
        b'{"event":"E","properties":{"time":1,"time":1790000000,"distinct_id":"u",'
        b'"$insert_id":"a"}}',
        b'{"event":"E","properties":{"time":1790000000,"distinct_id":"u","$insert_id":"\\ud800"}}',
        line(event()) + line(event()),  # two objects on one line
        line(event()) + b"\n[1,]",
        line(event()) + b"\n" + line(event()),  # a duplicate in one batch
        # Raw DEL characters: json.dumps writes 6 for each, so 180,000 bytes measure over 1 MB.
        line(event())[:-2] + b',"big":"' + b"\x7f" * 180_000 + b'"}}',
        line(event())[:-2] + b',"big":"' + b"\x7f" * 174_000 + b'"}}',
    ],
)
def test_unusual_ndjson_bodies(body: bytes) -> None:
    assert_same(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"5",
        b"null",
        line(event()),
        b"  [" + line(event()) + b"]  ",
        b"[" + line(event()) + b",]",
        b"[]",
        b"[" + line(event()) + b"]\n[]",
        b"[" + line(event()) + b"," + line(event()) + b"]",
    ],
)
@pytest.mark.parametrize("content_type", [ARRAY, "", "text/plain"])
def test_unusual_json_bodies(body: bytes, content_type: str) -> None:
    assert_same(body, content_type)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
times = st.one_of(
    st.integers(min_value=0, max_value=3_000_000_000_000),
    st.floats(min_value=0, max_value=3e12, allow_nan=False),
    values,
)
ids = st.one_of(st.sampled_from(["0", "-1", "null", "n/a", "[]", "ok", "A-1"]), values)
insert_ids = st.one_of(st.from_regex(r"[A-Za-z0-9-]{0,40}", fullmatch=True), values)
events = st.builds(
    lambda name, t, d, i, extra: {
        "event": name,
        "properties": {"time": t, "distinct_id": d, "$insert_id": i, **extra},
    },
    st.one_of(st.sampled_from(["Email Send", ""]), values),
    times,
    ids,
    insert_ids,
    st.dictionaries(st.text(max_size=8), values, max_size=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=6))
def test_generated_batches(batch: list[dict[str, Any]]) -> None:
    assert_same(b"\n".join(json.dumps(e).encode() for e in batch))
    assert_same(json.dumps(batch).encode(), ARRAY)
