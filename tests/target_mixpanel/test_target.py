"""The target end to end in-process: batching, state checkpoints, dead letters, dry run, config."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError, InvalidInputLine

from braze_mixpanel_common.errors import ConfigurationError, DestinationError
from braze_mixpanel_common.retry import BackoffPolicy
from sandbox.emulators.mixpanel_event_rules import dedupe_key
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.server import Faults, Response
from target_mixpanel.client import SendResult
from target_mixpanel.dispatch import Dispatcher
from target_mixpanel.stats import RunStats
from target_mixpanel.target import TargetMixpanel
from tests.support.mixpanel import (
    currents_record,
    record_msg,
    sa_config,
    schema_msg,
    state_msg,
)

CUSTOM = "users_behaviors_customevent"
EMAIL = "users_messages_email_send"


def messages(n: int, *, state_every: int = 0, streams=(CUSTOM,)) -> list[dict]:
    out: list[dict] = [schema_msg(s) for s in streams]
    for i in range(n):
        out.append(record_msg(streams[i % len(streams)], currents_record(i)))
        if state_every and (i + 1) % state_every == 0:
            out.append(state_msg({"records": i + 1}))
    return out


def test_batches_are_filled_across_streams(emulator, run_target) -> None:
    run = run_target(sa_config(emulator.url, batch_size=4), messages(10, streams=(CUSTOM, EMAIL)))
    assert emulator.batch_sizes == [4, 4, 2]
    names = {e["event"] for e in emulator.events}
    assert names == {"[Braze Custom Event] added_to_cart", "Email Send"}
    assert len(emulator.events) == 10
    assert run.stats.sending["imported"] == 10


def test_byte_cap_cuts_batches_before_the_event_count() -> None:
    sent: list[list[bytes]] = []

    class Recorder:
        def send(self, parts):
            sent.append(parts)
            return SendResult(len(parts))

    from braze_mixpanel_common.deadletter import DeadLetterFile

    d = Dispatcher(
        Recorder(),
        stats=RunStats(),
        dead_letters=DeadLetterFile(os.devnull, "target-mixpanel"),
        emit_state=None,
        max_request_bytes=1000,
        max_concurrency=1,
    )
    for i in range(10):
        d.add(b"x" * 299, "s", {"i": i})
    d.close()
    assert [len(p) for p in sent] == [3, 3, 3, 1]
    assert all(sum(len(x) + 1 for x in parts) <= 1000 for parts in sent)


def test_final_state_is_emitted_after_everything_is_confirmed(emulator, run_target) -> None:
    run = run_target(sa_config(emulator.url, batch_size=7), messages(50, state_every=10))
    assert run.states[-1] == {"records": 50}
    assert len(emulator.events) == 50
    positions = [s["records"] for s in run.states]
    assert positions == sorted(positions)


def test_skipped_and_dead_lettered_records_still_let_state_advance(emulator, run_target) -> None:
    msgs = [schema_msg(CUSTOM)]
    msgs += [record_msg(CUSTOM, currents_record(i, external_user_id=None)) for i in range(5)]
    msgs.append(record_msg(CUSTOM, currents_record(9, time=1_000_000_000)))
    msgs.append(record_msg(CUSTOM, currents_record(10, name=None)))
    msgs.append(state_msg({"done": True}))
    run = run_target(sa_config(emulator.url), msgs)
    assert run.states == [{"done": True}]
    assert emulator.stats["requests"] == 0
    assert run.stats.skipped == {"no_external_user_id": 5, "before_min_event_time": 1}
    assert [d["reason"] for d in run.dead_letters] == ["invalid_record"]
    assert run.dead_letters[0]["field"] == "name"


def test_state_never_covers_unconfirmed_records_when_mixpanel_fails_mid_run(run_target) -> None:
    """Mixpanel starts failing for good after a few batches: the run aborts, and the last state
    written covers only records Mixpanel stored."""
    emu = MixpanelImportEmulator()
    original = emu._import

    def fail_after_four(request):
        if emu.stats["requests"] > 4:
            return Response(503, {"error": "down"})
        return original(request)

    emu._import = fail_after_four
    emu.start()
    try:
        run = run_target(
            sa_config(emu.url, batch_size=10, max_concurrency=3),
            messages(300, state_every=5),
            expect_error=True,
            backoff=BackoffPolicy(max_attempts=2),
        )
    finally:
        emu.stop()
    assert isinstance(run.error, DestinationError)
    assert run.states, "progress before the failure must be checkpointed"
    covered = run.states[-1]["records"]
    assert covered < 300
    stored = {e["properties"]["$insert_id"] for e in emu.events}
    assert {f"evt-{i:06d}" for i in range(covered)} <= stored


def test_state_waits_for_slow_batches_sent_concurrently(run_target) -> None:
    """Batch 1 is held back while later batches succeed: no state past batch 1 until it lands."""
    emu = MixpanelImportEmulator()
    original = emu._import
    release = threading.Event()
    first = threading.Event()

    def hold_first(request):
        if b'"evt-000000"' in request.body:
            first.set()
            release.wait(5)
        return original(request)

    emu._import = hold_first
    emu.start()
    observed: list[dict] = []
    try:
        target = TargetMixpanel(
            config=sa_config(emu.url, batch_size=5, max_concurrency=4, dead_letter_path=os.devnull),
            checkpoint_interval=0,
        )
        target.dispatcher.emit_state = observed.append
        import io

        lines = "".join(json.dumps(m) + "\n" for m in messages(20, state_every=5))
        reader = threading.Thread(target=target.listen, args=(io.StringIO(lines),))
        reader.start()
        deadline = threading.Event()
        for _ in range(100):
            if emu.stats["requests"] >= 4 and len(emu.events) >= 15:
                break
            deadline.wait(0.02)
        assert len(emu.events) == 15
        assert observed == []  # batches 2-4 are in, but batch 1 is not
        release.set()
        reader.join(5)
    finally:
        release.set()
        emu.stop()
    assert observed[-1] == {"records": 20}


def test_partial_400_goes_to_the_dead_letter_file(emulator, run_target, tmp_path) -> None:
    msgs = [schema_msg(CUSTOM)]
    for i in range(6):
        ext = "undefined" if i == 2 else f"user-{i}"
        t = 4_102_444_800 if i == 4 else 1_760_000_000 + i
        msgs.append(record_msg(CUSTOM, currents_record(i, external_user_id=ext, time=t)))
    msgs.append(state_msg({"ok": 1}))
    run = run_target(sa_config(emulator.url), msgs)
    assert len(emulator.events) == 4
    assert run.stats.sending["imported"] == 4 and run.stats.sending["dead_lettered"] == 2
    assert run.states == [{"ok": 1}]
    by_id = {d["record"]["id"]: d for d in run.dead_letters}
    assert set(by_id) == {"evt-000002", "evt-000004"}
    entry = by_id["evt-000002"]
    assert entry["reason"] == "rejected"
    assert entry["status"] == 400
    assert entry["field"] == "properties.distinct_id"
    assert "distinct_id" in entry["message"]
    assert entry["stream"] == CUSTOM
    assert entry["payload"]["properties"]["$insert_id"] == "evt-000002"
    assert entry["record"]["_sdc_source_file"] == "s3://bucket/file.avro"
    mode = stat.S_IMODE(Path(run.target.dead_letters.path).stat().st_mode)
    assert mode == 0o600


def test_replay_is_deduplicated_by_insert_id(emulator, run_target) -> None:
    run_target(sa_config(emulator.url), messages(30))
    run_target(sa_config(emulator.url), messages(30))
    assert emulator.stats["received"] == 60
    assert len(emulator.events) == 30


def test_decimals_are_sent_as_numbers(emulator, run_target) -> None:
    schema = {"properties": {"distinct_id": {}, "time": {}, "amount": {"type": "number"}}}
    msgs = [
        schema_msg("payments", schema),
        '{"type":"RECORD","stream":"payments","record":'
        '{"distinct_id":"u1","time":1760000000,"amount":12.3456789012345678}}',
    ]
    run_target(sa_config(emulator.url), msgs)
    (event,) = emulator.events
    assert event["event"] == "payments"
    assert event["properties"]["amount"] == pytest.approx(12.3456789012345678)
    assert isinstance(event["properties"]["amount"], float)


def test_generic_stream_settings(emulator, run_target) -> None:
    schema = {"properties": {"email": {}, "created_at": {}, "order_id": {}}}
    msgs = [
        schema_msg("orders", schema),
        record_msg(
            "orders", {"email": "a@b.c", "created_at": "2025-01-02T03:04:05Z", "order_id": "7"}
        ),
    ]
    config = sa_config(
        emulator.url,
        event_name="Order Completed",
        distinct_id_field="email",
        time_field="created_at",
        insert_id_field="order_id",
    )
    run_target(config, msgs)
    (event,) = emulator.events
    assert event["event"] == "Order Completed"
    assert event["properties"]["distinct_id"] == "a@b.c"
    assert event["properties"]["time"] == 1_735_787_045
    assert event["properties"]["$insert_id"] == "7"


def test_dry_run_writes_the_request_bodies_and_sends_nothing(
    emulator, run_target, tmp_path
) -> None:
    out = tmp_path / "payloads.ndjson"
    config = sa_config(emulator.url, dry_run=True, dry_run_path=str(out), batch_size=4)
    run = run_target(config, messages(10, state_every=5))
    assert emulator.stats["requests"] == 0
    assert run.states == []  # nothing was confirmed, so state must not advance
    lines = out.read_text().splitlines()
    assert len(lines) == 10
    first = json.loads(lines[0])
    assert first["event"] == "[Braze Custom Event] added_to_cart"
    assert first["properties"]["$insert_id"] == "evt-000000"


def test_dry_run_needs_no_credentials(run_target, tmp_path) -> None:
    out = tmp_path / "p.ndjson"
    run_target({"dry_run": True, "dry_run_path": str(out)}, messages(3))
    assert len(out.read_text().splitlines()) == 3


def test_faults_everywhere_still_deliver_everything_once() -> None:
    faults = Faults(
        rate_429=0.15, rate_5xx=0.15, rate_reset=0.1, rate_slow=0.05, slow_seconds=0.01, seed=11
    )
    emu = MixpanelImportEmulator(faults=faults).start()
    try:
        import io

        target = TargetMixpanel(
            config=sa_config(
                emu.url, batch_size=50, max_concurrency=6, dead_letter_path=os.devnull
            ),
            backoff=BackoffPolicy(initial=0.001, maximum=0.002, jitter=(0, 0.001), max_attempts=30),
            checkpoint_interval=0,
        )
        states: list[dict] = []
        target.dispatcher.emit_state = states.append
        lines = "".join(json.dumps(m) + "\n" for m in messages(2000, state_every=100))
        target.listen(io.StringIO(lines))
    finally:
        emu.stop()
    assert sum(emu.faults_injected.values()) > 10
    assert {e["properties"]["$insert_id"] for e in emu.events} == {
        f"evt-{i:06d}" for i in range(2000)
    }
    assert len({dedupe_key(e) for e in emu.events}) == 2000
    assert states[-1] == {"records": 2000}
    assert target.stats.sending["retries"] > 0


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({}, "service_account_username"),
        ({"service_account_username": "u"}, "service_account_secret"),
        ({"service_account_username": "u", "service_account_secret": "s"}, "project_id"),
        ({"project_token": "t", "region": "mars"}, "region"),
        ({"project_token": "t", "api_url": "ftp://x"}, "api_url"),
        ({"project_token": "t", "batch_size": 5000}, "batch_size"),
        ({"project_token": "t", "max_concurrency": 0}, "max_concurrency"),
        ({"project_token": "t", "min_event_time": "last tuesday"}, "min_event_time"),
    ],
)
def test_misconfiguration_names_the_setting(config, setting) -> None:
    # Limits and choices are checked by the SDK against the schema, the rest by Settings.
    with pytest.raises((ConfigurationError, ConfigValidationError)) as error:
        TargetMixpanel(config=config)
    messages = getattr(error.value, "errors", None) or [str(error.value)]
    assert any(setting in message for message in messages)


def test_region_picks_the_documented_host() -> None:
    for region, host in (("us", "api"), ("eu", "api-eu"), ("in", "api-in")):
        target = TargetMixpanel(config={"project_token": "t", "region": region})
        assert target.sender.url == f"https://{host}.mixpanel.com/import"


def test_legacy_api_secret_logs_a_deprecation_warning(caplog) -> None:
    with caplog.at_level("WARNING"):
        target = TargetMixpanel(config={"api_secret": "s3cr3t-value"})
    target.sender.close()
    text = caplog.text
    assert "2027-03-03" in text
    assert "s3cr3t-value" not in text


def _cli(args: list[str], stdin: str, tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "target_mixpanel", "--config", str(cfg), *args],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_cli_misconfiguration_is_one_line_before_reading_input(tmp_path) -> None:
    proc = _cli([], "this is not read", tmp_path, {"region": "us"})
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "| ERROR " in line]
    assert len(error_lines) == 1 and "service_account_username" in error_lines[0]


def test_cli_run_prints_state_and_summary(emulator, tmp_path) -> None:
    stdin = "".join(json.dumps(m) + "\n" for m in messages(25, state_every=10))
    proc = _cli([], stdin, tmp_path, sa_config(emulator.url))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x) for x in proc.stdout.splitlines()][-1] == {"records": 20}
    assert "summary: records=25 imported=25" in proc.stderr
    assert len(emulator.events) == 25


def test_cli_auth_failure_is_one_clear_line(emulator, tmp_path) -> None:
    stdin = "".join(json.dumps(m) + "\n" for m in messages(3, state_every=1))
    config = sa_config(emulator.url, service_account_secret="nope")
    proc = _cli([], stdin, tmp_path, config)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if "| ERROR " in line]
    assert len(error_lines) == 1
    assert "Mixpanel refused the credentials (401" in error_lines[0]
    assert proc.stdout == ""
    assert emulator.stats["requests"] == 1


def test_state_without_value_is_refused_as_the_sdk_does(emulator, run_target) -> None:
    """The STATE override keeps the SDK's check of the message (``_assert_line_requires``)."""
    run = run_target(sa_config(emulator.url), [*messages(2), {"type": "STATE"}], expect_error=True)
    assert isinstance(run.error, InvalidInputLine)
    assert "value" in str(run.error)


def test_validated_records_keep_date_time_strings_as_sent(emulator, run_target) -> None:
    """With ``validate_records`` the SDK path runs, but date-times are not parsed to datetimes."""
    schema = {
        "properties": {
            "distinct_id": {"type": "string"},
            "time": {"type": "integer"},
            "created": {"type": "string", "format": "date-time"},
        }
    }
    record = {
        "distinct_id": "u1",
        "time": 1_760_000_000,
        "created": "2025-01-02T03:04:05.000+00:00",
    }
    run_target(
        sa_config(emulator.url, validate_records=True),
        [schema_msg("signups", schema), record_msg("signups", record)],
    )
    (event,) = emulator.events
    assert event["properties"]["created"] == "2025-01-02T03:04:05.000+00:00"


def test_event_name_field_end_to_end(emulator, run_target) -> None:
    schema = {"properties": {"user": {}, "at": {}, "action": {}, "plan": {}}}
    msgs = [schema_msg("events", schema)]
    for i, action in enumerate(["Signed Up", "", None, "Upgraded"]):
        record = {"user": f"u{i}", "at": 1_735_787_045 + i, "action": action, "plan": "pro"}
        msgs.append(record_msg("events", record))
    config = sa_config(
        emulator.url, event_name_field="action", distinct_id_field="user", time_field="at"
    )
    run = run_target(config, msgs)
    names = sorted(e["event"] for e in emulator.events)
    assert names == ["Signed Up", "Upgraded", "events", "events"]
    assert all("action" not in e["properties"] for e in emulator.events)
    assert "event_name_fallbacks=2" in run.stats.summary()
