"""Property-based tests (hypothesis) of the Mixpanel mapping and of the Braze membership diff."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.emulators.braze import BrazeEmulator
from target_mixpanel.mapping import DISALLOWED_IDS, CurrentsMapper, GenericMapper
from target_mixpanel.stats import RunStats
from tests.support.braze import run_target, snapshot
from tests.support.clock import FakeClock

INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
MIN_TIME = 1_262_304_000.0  # 2010-01-01
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=300)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=300), inner, max_size=4)
    ),
    max_leaves=12,
)
record_ids = st.text(min_size=1, max_size=60) | st.uuids().map(str)
user_ids = st.text(min_size=1, max_size=300).filter(lambda s: s.strip() != "")


@st.composite
def currents_records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": draw(record_ids),
        "external_user_id": draw(user_ids),
        "time": draw(st.integers(int(MIN_TIME), 4_000_000_000)),
        "name": draw(st.text(min_size=1, max_size=400)),
        "properties": json.dumps(
            draw(st.dictionaries(st.text(max_size=300), json_values, max_size=300))
        ),
        "device_model": draw(st.none() | st.text(max_size=400)),
    }
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=300), json_scalars, max_size=20))
    for key, value in extra.items():
        record.setdefault(key, value)
    return record


def all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *all_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in all_strings(item)]
    return []


def assert_valid_for_mixpanel(event: dict[str, Any]) -> None:
    props = event["properties"]
    assert len(props) < 255
    assert 0 < len(event["event"]) <= 255
    assert all(len(s) <= 255 for s in all_strings(props))
    insert_id = props["$insert_id"]
    assert INSERT_ID.fullmatch(insert_id)
    assert insert_id.lower() not in DISALLOWED_IDS
    assert isinstance(props["time"], int)
    assert isinstance(props["distinct_id"], str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(currents_records())
def test_currents_mapping_is_always_valid_and_deterministic(record):
    mapper = CurrentsMapper("users_behaviors_customevent", RunStats(), min_time=MIN_TIME, ip="0")
    first = mapper.map(copy.deepcopy(record))
    again = CurrentsMapper(
        "users_behaviors_customevent", RunStats(), min_time=MIN_TIME, ip="0"
    ).map(copy.deepcopy(record))
    assert first == again
    assert_valid_for_mixpanel(first)
    assert first["properties"]["time"] == record["time"]
    assert first["properties"]["distinct_id"] == record["external_user_id"]
    # The $insert_id keeps a valid Currents id as is, and is a pure function of the id.
    if INSERT_ID.fullmatch(record["id"]) and record["id"].lower() not in DISALLOWED_IDS:
        assert first["properties"]["$insert_id"] == record["id"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.text(min_size=1, max_size=300), json_values, max_size=300),
    user_ids,
    st.integers(int(MIN_TIME), 4_000_000_000)
    | st.integers(int(MIN_TIME) * 1000, 4_000_000_000_000),  # seconds or milliseconds
)
def test_generic_mapping_is_always_valid_and_replays_dedupe(fields, user, when):
    record = {**fields, "distinct_id": user, "time": when}
    common = {
        "min_time": MIN_TIME,
        "ip": None,
        "event_name": None,
        "distinct_id_field": "distinct_id",
        "time_field": "time",
        "insert_id_field": None,
    }
    first = GenericMapper("orders", RunStats(), **common).map(copy.deepcopy(record))
    replay = GenericMapper("orders", RunStats(), **common).map(copy.deepcopy(record))
    assert_valid_for_mixpanel(first)
    assert first["properties"]["$insert_id"] == replay["properties"]["$insert_id"]


# -- Braze diff -------------------------------------------------------------------------------

USERS = [f"u{i:02d}" for i in range(12)]
cohort_names = st.sampled_from(["Buyers", "Churn", "VIP", "Trial", "Buyers 2"])
cohorts = st.dictionaries(
    st.integers(1, 5),
    st.tuples(cohort_names, st.sets(st.sampled_from(USERS), max_size=len(USERS))),
    max_size=4,
)


def expected_names(snap: dict[int, tuple[str, set[str]]]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {u: set() for u in USERS}
    for name, members in snap.values():
        for user in members:
            names[user].add(name)
    return names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohorts, cohorts)
def test_braze_diff_turns_any_snapshot_into_any_other(first, second):
    """Applying the target's adds/removes for snapshot B to Braze holding A yields exactly B."""
    clock = FakeClock()
    with (
        tempfile.TemporaryDirectory() as folder,
        BrazeEmulator(api_key="k", existing_users=USERS, clock=clock) as braze,
    ):
        config = {
            "rest_endpoint": braze.url,
            "api_key": "k",
            "ledger_path": str(Path(folder) / "ledger.sqlite3"),
            "dead_letter_path": str(Path(folder) / "dead.jsonl"),
            "max_removal_fraction": 1,
        }
        for snap in (first, second):
            run_target(config, snapshot(snap), clock)
            got = {u: set(braze.attribute(u, "mixpanel_cohorts") or []) for u in USERS}
            assert got == expected_names(snap)
