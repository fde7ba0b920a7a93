"""The /import client against the emulator: wire format, auth, retries, 413 split, partial 400."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
import requests

from braze_mixpanel_common.errors import DestinationError
from braze_mixpanel_common.mixpanel import resolve_auth
from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.server import Faults
from target_mixpanel.client import ImportClient
from target_mixpanel.stats import RunStats
from tests.support.clock import FakeClock
from tests.support.mixpanel import PROJECT_ID, SA_SECRET, SA_USER


def event(i: int, **props) -> bytes:
    body = {
        "event": "Email Send",
        "properties": {
            "time": 1_760_000_000 + i,
            "distinct_id": f"user-{i}",
            "$insert_id": f"id-{i}",
            **props,
        },
    }
    return json.dumps(body).encode()


def client(url: str, config: dict | None = None, **kw) -> ImportClient:
    config = config or {
        "project_id": PROJECT_ID,
        "service_account_username": SA_USER,
        "service_account_secret": SA_SECRET,
    }
    kw.setdefault("clock", FakeClock())
    kw.setdefault("backoff", BackoffPolicy(max_attempts=5))
    return ImportClient(url, resolve_auth(config, allow_project_token=True), **kw)


def test_wire_format_gzip_ndjson_strict_and_service_account(emulator) -> None:
    c = client(emulator.url)
    result = c.send([event(1), event(2)])
    assert result.imported == 2 and result.rejected == []
    seen = emulator.seen[-1]
    assert seen["headers"]["content-encoding"] == "gzip"
    assert seen["headers"]["content-type"] == "application/x-ndjson"
    assert seen["query"]["strict"] == ["1"]
    assert seen["query"]["project_id"] == [PROJECT_ID]
    assert emulator.auth_kinds == ["service_account"]
    assert len(emulator.events) == 2


def test_body_is_really_gzipped(emulator, monkeypatch) -> None:
    sent: list[bytes] = []
    original = requests.Session.request

    def spy(self, method, url, **kw):
        sent.append(kw["data"])
        return original(self, method, url, **kw)

    monkeypatch.setattr(requests.Session, "request", spy)
    client(emulator.url).send([event(1)])
    assert gzip.decompress(sent[0]) == event(1)


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"api_secret": "legacy-api-secret"}, "api_secret"),
        ({"project_token": "project-token"}, "project_token"),
    ],
)
def test_other_auth_forms(emulator, config, kind) -> None:
    assert client(emulator.url, config).send([event(1)]).imported == 1
    assert emulator.auth_kinds == [kind]
    assert "project_id" not in emulator.seen[-1]["query"]


def test_emulator_accepts_plain_text_basic_auth(emulator) -> None:
    plain = f"Basic {SA_USER}:{SA_SECRET}"
    response = requests.post(
        f"{emulator.url}/import?strict=1&project_id={PROJECT_ID}",
        data=event(1),
        headers={"Authorization": plain, "Content-Type": "application/x-ndjson"},
        timeout=5,
    )
    assert response.status_code == 200
    token = base64.b64encode(b"project-token:").decode()
    response = requests.post(
        f"{emulator.url}/import?strict=1",
        json=[json.loads(event(2))],
        headers={"Authorization": f"Basic {token}"},
        timeout=5,
    )
    assert response.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}


def test_wrong_credentials_stop_at_once_without_leaking_the_secret(emulator) -> None:
    config = {
        "project_id": PROJECT_ID,
        "service_account_username": SA_USER,
        "service_account_secret": "wrong-secret-value",
    }
    with pytest.raises(DestinationError) as err:
        client(emulator.url, config).send([event(1)])
    message = str(err.value)
    assert "401" in message and "service_account_secret" in message
    assert "wrong-secret-value" not in message
    assert emulator.stats["requests"] == 1  # no retry storm


def test_service_account_needs_the_right_project_id(emulator) -> None:
    config = {
        "project_id": "999",
        "service_account_username": SA_USER,
        "service_account_secret": SA_SECRET,
    }
    with pytest.raises(DestinationError, match="project_id"):
        client(emulator.url, config).send([event(1)])


def test_429_backs_off_from_2s_with_jitter_and_honours_retry_after() -> None:
    emu = MixpanelImportEmulator(faults=Faults(rate_429=0.5, seed=3)).start()
    try:
        clock = FakeClock()
        stats = RunStats()
        c = client(emu.url, clock=clock, stats=stats, backoff=BackoffPolicy(max_attempts=20))
        for i in range(20):
            assert c.send([event(i)]).imported == 1
        assert stats.sending["retries"] == emu.faults_injected["429"] > 0
        assert all(3.0 <= s <= 65.0 for s in clock.sleeps)  # 2 s doubling + 1-5 s jitter
    finally:
        emu.stop()
    emu = MixpanelImportEmulator(faults=Faults(rate_429=0.5, seed=3), retry_after=7).start()
    try:
        clock = FakeClock()
        c = client(emu.url, clock=clock, backoff=BackoffPolicy(max_attempts=20))
        for i in range(10):
            c.send([event(i)])
        assert clock.sleeps and set(clock.sleeps) == {7.0}
    finally:
        emu.stop()


def test_5xx_and_connection_resets_are_retried() -> None:
    emu = MixpanelImportEmulator(faults=Faults(rate_5xx=0.3, rate_reset=0.3, seed=5)).start()
    try:
        stats = RunStats()
        c = client(emu.url, stats=stats, backoff=BackoffPolicy(max_attempts=30))
        for i in range(30):
            assert c.send([event(i)]).imported == 1
        assert emu.faults_injected.get("5xx") and emu.faults_injected.get("reset")
        assert stats.sending["retries"] == sum(emu.faults_injected.values())
        assert len(emu.events) == 30
    finally:
        emu.stop()


def test_retries_are_bounded() -> None:
    emu = MixpanelImportEmulator(faults=Faults(rate_5xx=1.0)).start()
    try:
        clock = FakeClock()
        with pytest.raises(DestinationError, match="after 3 attempts"):
            client(emu.url, clock=clock, backoff=BackoffPolicy(max_attempts=3)).send([event(1)])
        assert len(clock.sleeps) == 2
    finally:
        emu.stop()


def test_413_splits_the_batch_until_it_fits() -> None:
    emu = MixpanelImportEmulator(max_bytes=600).start()
    try:
        stats = RunStats()
        parts = [event(i, pad="x" * 100) for i in range(16)]
        result = client(emu.url, stats=stats).send(parts)
        assert result.imported == 16 and not result.rejected
        assert stats.sending["splits"] > 0
        assert len(emu.events) == 16
        assert max(emu.batch_sizes) * 200 <= 600 * 2
    finally:
        emu.stop()


def test_413_on_a_single_event_rejects_only_that_event() -> None:
    emu = MixpanelImportEmulator(max_bytes=600).start()
    try:
        parts = [event(1), event(2, pad="y" * 700), event(3)]
        result = client(emu.url).send(parts)
        assert result.imported == 2
        assert [(r.index, r.status) for r in result.rejected] == [(1, 413)]
        assert "2097152" not in result.rejected[0].message and "600" in result.rejected[0].message
    finally:
        emu.stop()


def test_partial_400_imports_valid_events_and_reports_the_rest(emulator) -> None:
    parts = [
        event(0),
        event(1, time=4_102_444_800),  # 2100: too far in the future
        event(2, distinct_id="undefined"),
        event(3, **{"$insert_id": "has:colons"}),
        event(4),
    ]
    result = client(emulator.url).send(parts)
    assert result.imported == 2
    got = {r.index: r.field for r in result.rejected}
    assert got == {1: "properties.time", 2: "properties.distinct_id", 3: "$insert_id"}
    assert all(r.status == 400 for r in result.rejected)
    assert len(emulator.events) == 2


def test_failed_records_identified_by_insert_id_when_index_is_missing(monkeypatch) -> None:
    emu = MixpanelImportEmulator()

    original = emu._import

    def without_index(request):
        response = original(request)
        if response.status == 400:
            for item in response.body["failed_records"]:
                item["$insert_id"] = item.pop("insert_id")
                item.pop("index")
        return response

    monkeypatch.setattr(emu, "_import", without_index)
    emu.start()
    try:
        result = client(emu.url).send([event(0), event(1, distinct_id="null"), event(2)])
        assert [r.index for r in result.rejected] == [1]
    finally:
        emu.stop()


def test_emulator_dedupes_on_event_distinct_id_time_insert_id(emulator) -> None:
    c = client(emulator.url)
    c.send([event(1), event(1), event(2)])
    c.send([event(1)])
    assert len(emulator.events) == 2
    assert emulator.stats["duplicates"] == 2
    same_id_other_time = json.loads(event(1))
    same_id_other_time["properties"]["time"] += 1
    c.send([json.dumps(same_id_other_time).encode()])
    assert len(emulator.events) == 3


def test_concurrent_requests_share_one_bounded_pool() -> None:
    from concurrent.futures import ThreadPoolExecutor

    emu = MixpanelImportEmulator(handle_delay=0.05).start()
    try:
        c = client(emu.url, max_concurrency=4)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: c.send([event(i)]), range(16)))
        assert 1 < emu.max_in_flight <= 4
        assert len(emu.events) == 16
    finally:
        emu.stop()
