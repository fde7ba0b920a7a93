"""HTTP edges against the emulators: answers cut mid-body, waits by cause, request_timeout."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import time
from pathlib import Path

import pytest
import trustme

from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.mixpanel_query import Cohort, GeneratedMembers, MixpanelQueryEmulator
from sandbox.emulators.server import Faults
from sandbox.loop.currents_gen import generate_export
from tap_mixpanel_cohorts.tap import TapMixpanelCohorts
from target_braze.target import TargetBraze
from target_mixpanel.target import TargetMixpanel
from tests.support.clock import FakeClock
from tests.support.cohorts import SA_SECRET, SA_USER, make_tap
from tests.support.harness import run_cli, singer_lines
from tests.support.mixpanel import (
    currents_record,
    expected_keys,
    record_msg,
    run_pipeline,
    sa_config,
    schema_msg,
)


def test_target_mixpanel_recovers_answers_cut_mid_body(tmp_path: Path) -> None:
    export = generate_export(tmp_path / "bucket", seed=2, events_per_file=30, hours=2)
    emulator = MixpanelImportEmulator(faults=Faults(rate_cut=0.25, seed=11)).start()
    try:
        target, tap_states, emitted = run_pipeline(tmp_path, tmp_path / "bucket", emulator)
    finally:
        emulator.stop()
    assert emulator.faults_injected.get("cut", 0) > 0
    # A cut answer was imported by Mixpanel, then re-sent: $insert_id dedupes the replay.
    assert emulator.event_keys() == expected_keys(export.events)
    assert emitted[-1] == tap_states[-1]
    assert target.stats.sending["waited_network_s"] > 0
    assert "waited_network_s=" in target.stats.summary()


def query_emulator(clock: FakeClock, members: int, page_size: int, faults: Faults):
    """The query API holding one cohort 'Buyers' of ``members`` members (ids ``c-<n>``)."""
    cohort = Cohort(1, "Buyers", "", "2024-01-01 00:00:00", 1, GeneratedMembers(members, "c-"))
    return MixpanelQueryEmulator(
        [cohort],
        {},
        service_accounts={SA_USER: SA_SECRET},
        page_size=page_size,
        clock=clock,
        faults=faults,
    ).start()


def tap_config(query: MixpanelQueryEmulator) -> dict[str, object]:
    return {
        "api_url": query.url,
        "project_id": str(query.project_id),
        "service_account_username": SA_USER,
        "service_account_secret": SA_SECRET,
        "max_queries_per_hour": 1000,
    }


def test_cohorts_to_braze_recover_answers_cut_mid_body(caplog, tmp_path) -> None:
    clock = FakeClock()
    query = query_emulator(clock, 300, 50, Faults(rate_cut=0.3, seed=4))
    users = [f"ext-c-{i}" for i in range(300)]
    braze = BrazeEmulator(
        api_key="k", existing_users=users, clock=clock, faults=Faults(rate_cut=0.3, seed=5)
    ).start()
    try:
        tap = make_tap(tap_config(query), clock)
        with caplog.at_level(logging.INFO):
            tap.sync_all()
        summary = next(m for m in caplog.messages if "snapshot complete" in m)
        assert re.search(r"network [1-9]\d* s\)", summary), summary
        braze_config = {
            "rest_endpoint": braze.url,
            "api_key": "k",
            "ledger_path": str(tmp_path / "ledger.sqlite3"),
            "dead_letter_path": str(tmp_path / "dead.jsonl"),
            "objects_per_request": 10,
        }
        text = "".join(json.dumps(m, default=str) + "\n" for m in tap.messages)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            TargetBraze(config=braze_config, clock=clock).listen(io.StringIO(text))
        for user in users:
            assert braze.attribute(user, "mixpanel_cohorts") == ["Buyers"], user
        assert query.faults_injected.get("cut", 0) > 0
        assert braze.faults_injected.get("cut", 0) > 0
        requests_line = next(m for m in caplog.messages if m.startswith("Braze requests:"))
        assert re.search(r"network [1-9]\d* s\)", requests_line), requests_line
    finally:
        query.stop()
        braze.stop()


def test_cohorts_summary_counts_the_429_backoff(caplog) -> None:
    """95 s of 429 backoff used to be summarised as '0 s waited' (only the budget counted)."""
    clock = FakeClock()
    query = query_emulator(clock, 120, 20, Faults(rate_429=0.3, seed=8))
    try:
        with caplog.at_level(logging.INFO):
            make_tap(tap_config(query), clock).sync_all()
    finally:
        query.stop()
    assert query.faults_injected.get("429", 0) > 0
    summary = next(m for m in caplog.messages if "snapshot complete" in m)
    found = re.search(r"(\d+) s waited \(budget (\d+) s, 429 backoff (\d+) s", summary)
    assert found, summary
    total, budget, backoff = map(int, found.groups())
    assert backoff >= 30 * query.faults_injected["429"] - 1  # the 429 policy starts at 30 s
    assert total == pytest.approx(sum(clock.sleeps), abs=1)
    assert budget == 0


@pytest.mark.parametrize(
    ("plugin", "config", "default"),
    [
        (TargetMixpanel, {"project_token": "t"}, 120),
        (TargetBraze, {"rest_endpoint": "https://rest.iad-01.braze.com", "api_key": "k"}, 60),
        (TapMixpanelCohorts, {"project_id": "1", "api_secret": "s"}, 300),
    ],
)
def test_request_timeout_reaches_the_http_caller(plugin, config, default, tmp_path) -> None:
    with contextlib.chdir(tmp_path):
        for timeout, expected in ((None, default), (2.5, 2.5)):
            extra = {} if timeout is None else {"request_timeout": timeout}
            # A ledger of its own per instance: target-braze leases its ledger while it lives.
            ledger = {"ledger_path": str(tmp_path / f"l{timeout}.sqlite3")}
            own = ledger if plugin is TargetBraze else {}
            instance = plugin(config={**config, **extra, **own}, validate_config=True)
            http = _http_of(instance)
            assert http.timeout == (min(10.0, expected), expected)


def _http_of(plugin):
    if isinstance(plugin, TargetMixpanel):
        return plugin.sender.http
    if isinstance(plugin, TargetBraze):
        return plugin.sync.client.http
    return plugin.client.http


def test_cli_ends_with_one_line_naming_host_and_certificate_problem(tmp_path) -> None:
    authority = trustme.CA()  # not trusted by this machine
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    server_cert = authority.issue_cert("127.0.0.1")
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    server_cert.private_key_pem.write_to_path(str(key))
    emulator = MixpanelImportEmulator().use_tls(chain, key).start()
    try:
        stream = "users_behaviors_customevent"
        lines = singer_lines([schema_msg(stream), record_msg(stream, currents_record(1))])
        started = time.monotonic()
        result = run_cli("target-mixpanel", sa_config(emulator.url), tmp_path, stdin=lines)
        elapsed = time.monotonic() - started
    finally:
        emulator.stop()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "TLS certificate of 127.0.0.1 failed verification" in result.last_error_line
    assert "unable to get local issuer certificate" in result.last_error_line
    assert "retrying" not in result.stderr
    assert elapsed < 30  # no backoff: 8 attempts would take minutes
    assert emulator.requests_seen == 0
