"""No secret is ever shown: every plugin, real CLI, DEBUG logging, success and failure paths.

Each run uses distinctive secret values and an emulator that, in its failure modes, echoes the
request's ``Authorization`` header, query and body back in its error text (Braze really echoes
the API key in a 401). Nothing the plugin writes may contain a secret in any form: raw, URL-quoted,
``Bearer <key>`` or the base64 token of HTTP Basic auth. Scanned: stdout (records, state, dry
run), stderr (all logs at DEBUG, tracebacks, one-line errors) and every file the run created in
its working directory (dead letters, dry-run files, ledgers).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_import import MixpanelImportEmulator
from sandbox.emulators.mixpanel_query import DEFAULT_PROJECT_ID, MixpanelQueryEmulator
from sandbox.emulators.server import Emulator
from tests.support.braze import snapshot
from tests.support.cohorts import PROFILES, standard_cohorts
from tests.support.harness import (
    CliResult,
    EchoingMixin,
    files_text,
    leaks,
    run_cli,
    secret_forms,
    singer_lines,
)
from tests.support.mixpanel import currents_record, record_msg, schema_msg, state_msg

DEBUG = {"LOGLEVEL": "DEBUG"}
SA_USER = "sa-user.mp-service-account"
MP_SA_SECRET = "mpSA-s3cr3t-Q7x91ZPa"
MP_API_SECRET = "mpLEGACY-s3cr3t-4Kd8Wq"
BRAZE_KEY = "brzREST-k3y-a81f37d2c9"
PARTNER_KEY = "brzPARTNER-k3y-0b7e55"
IMPORT_KEY = "brzIMPORT-k3y-c4d2f9"
S3_KEY_ID = "AKIASECRETIDZQ81"
S3_SECRET = "s3SECRET/k3y+Zz81Tq"

MP_FORMS = secret_forms([MP_SA_SECRET, MP_API_SECRET], [(SA_USER, MP_SA_SECRET)])
BRAZE_FORMS = secret_forms([BRAZE_KEY, PARTNER_KEY, IMPORT_KEY])
S3_FORMS = secret_forms([S3_SECRET])
STREAM = "users_behaviors_customevent"


class EchoImport(EchoingMixin, MixpanelImportEmulator):
    """/import emulator that echoes credentials in its errors."""


class EchoQuery(EchoingMixin, MixpanelQueryEmulator):
    """Query-API emulator that echoes credentials in its errors."""


class EchoBraze(EchoingMixin, BrazeEmulator):
    """Braze emulator that echoes credentials in its errors."""


class EchoOnly(EchoingMixin, Emulator):
    """A storage endpoint that only ever fails, echoing what it was sent."""


@pytest.fixture
def started() -> Iterator[list[Emulator]]:
    emulators: list[Emulator] = []
    yield emulators
    for emulator in emulators:
        emulator.stop()


def start(emulators: list[Emulator], emulator: Emulator, mode: str) -> Any:
    emulator.mode = mode  # type: ignore[attr-defined]
    emulators.append(emulator.start())
    return emulator


def assert_no_secret(result: CliResult, workdir: Path, forms: set[str]) -> None:
    texts = {"stdout": result.stdout, "stderr": result.stderr, **files_text(workdir)}
    found = leaks(forms, texts)
    assert not found, f"secrets leaked: {found}"


def assert_owner_only(path: Path) -> None:
    assert path.exists(), path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# -- target-mixpanel -----------------------------------------------------------------------------


def mixpanel_input() -> str:
    messages: list[dict[str, Any]] = [schema_msg(STREAM)]
    messages += [record_msg(STREAM, currents_record(i)) for i in range(6)]
    messages.append(state_msg({"bookmarks": {"n": 6}}))
    return singer_lines(messages)


@pytest.mark.parametrize(
    ("mode", "auth", "ok"),
    [
        ("ok", "sa", True),
        ("ok", "legacy", True),
        ("401", "sa", False),
        ("401", "legacy", False),
        ("429", "sa", False),
        ("500", "sa", False),
        ("400", "sa", True),
        ("garbage", "sa", True),
        ("teapot", "sa", False),
    ],
)
def test_target_mixpanel_never_shows_a_secret(tmp_path, started, mode, auth, ok):
    emulator = start(
        started,
        EchoImport(service_account=(SA_USER, MP_SA_SECRET), api_secret=MP_API_SECRET),
        mode,
    )
    config: dict[str, Any] = {"api_url": emulator.url, "project_id": "12345", "batch_size": 3}
    if auth == "sa":
        config |= {"service_account_username": SA_USER, "service_account_secret": MP_SA_SECRET}
    else:
        config |= {"api_secret": MP_API_SECRET}
    result = run_cli("target-mixpanel", config, tmp_path, stdin=mixpanel_input(), env=DEBUG)
    assert (result.returncode == 0) == ok, result.stderr[-2000:]
    assert emulator.requests_seen > 0
    if mode == "ok":
        assert len(emulator.events) == 6
        assert json.loads(result.stdout.splitlines()[-1]) == {"bookmarks": {"n": 6}}
    if mode == "400":
        dead = tmp_path / "target-mixpanel-dead-letters.jsonl"
        assert len(dead.read_text().splitlines()) == 6
        assert_owner_only(dead)
    assert_no_secret(result, tmp_path, MP_FORMS)


def test_target_mixpanel_dry_run_shows_no_secret(tmp_path):
    config = {
        "project_id": "12345",
        "service_account_username": SA_USER,
        "service_account_secret": MP_SA_SECRET,
        "dry_run": True,
    }
    result = run_cli("target-mixpanel", config, tmp_path, stdin=mixpanel_input(), env=DEBUG)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 6
    assert_no_secret(result, tmp_path, MP_FORMS)


# -- tap-mixpanel-cohorts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "auth", "ok"),
    [
        ("ok", "sa", True),
        ("ok", "legacy", True),
        ("401", "sa", False),
        ("401", "legacy", False),
        ("429", "sa", False),
        ("teapot", "sa", False),
    ],
)
def test_tap_mixpanel_cohorts_never_shows_a_secret(tmp_path, started, mode, auth, ok):
    emulator = start(
        started,
        EchoQuery(
            standard_cohorts(),
            PROFILES,
            service_accounts={SA_USER: MP_SA_SECRET},
            api_secret=MP_API_SECRET,
        ),
        mode,
    )
    config: dict[str, Any] = {"api_url": emulator.url, "project_id": str(DEFAULT_PROJECT_ID)}
    if auth == "sa":
        config |= {"service_account_username": SA_USER, "service_account_secret": MP_SA_SECRET}
    else:
        config |= {"api_secret": MP_API_SECRET}
    result = run_cli("tap-mixpanel-cohorts", config, tmp_path, env=DEBUG)
    assert (result.returncode == 0) == ok, result.stderr[-2000:]
    assert emulator.requests_seen > 0
    if ok:
        assert '"type":"ACTIVATE_VERSION"' in result.stdout.replace(" ", "")
    assert_no_secret(result, tmp_path, MP_FORMS)


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_tap_mixpanel_cohorts_retried_failures_show_no_secret(tmp_path, started, caplog, mode):
    """5xx and non-JSON answers back off for minutes: run in-process on a fake clock."""
    from tests.support.clock import FakeClock
    from tests.support.cohorts import make_tap

    emulator = start(
        started,
        EchoQuery(standard_cohorts(), PROFILES, service_accounts={SA_USER: MP_SA_SECRET}),
        mode,
    )
    config = {
        "api_url": emulator.url,
        "project_id": str(DEFAULT_PROJECT_ID),
        "service_account_username": SA_USER,
        "service_account_secret": MP_SA_SECRET,
    }
    caplog.set_level(logging.DEBUG)
    tap = make_tap(config, FakeClock())
    with pytest.raises(Exception) as failure:
        tap.sync_all()
    assert emulator.requests_seen >= 8
    texts = {
        "log": caplog.text,
        "error": str(failure.value),
        "messages": json.dumps(tap.messages, default=str),
    }
    assert "ACTIVATE_VERSION" not in texts["messages"]
    assert not leaks(MP_FORMS, texts)


# -- target-braze --------------------------------------------------------------------------------

USERS = [f"u{i:03d}" for i in range(40)]


def braze_input() -> str:
    return singer_lines(snapshot({1: ("Buyers", USERS[:30]), 2: ("Churn risk", USERS[20:])}))


@pytest.mark.parametrize(
    ("mode", "partner", "ok"),
    [
        ("ok", False, True),
        ("ok", True, True),
        ("401", False, False),
        ("401", True, False),
        ("429", False, False),
        ("500", False, False),
        ("500", True, False),
        ("object-errors", False, True),
        ("object-errors", True, True),
        ("garbage", False, True),
        ("teapot", False, False),
    ],
)
def test_target_braze_never_shows_a_secret(tmp_path, started, mode, partner, ok):
    emulator = start(
        started,
        EchoBraze(
            api_key=BRAZE_KEY,
            existing_users=USERS,
            partners={"mixpanel": PARTNER_KEY},
            data_import_keys=[IMPORT_KEY],
        ),
        mode,
    )
    config: dict[str, Any] = {
        "rest_endpoint": emulator.url,
        "ledger_path": str(tmp_path / "ledger.sqlite3"),
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
    }
    if partner:
        config |= {
            "mode": "partner_cohorts",
            "partner_name": "mixpanel",
            "partner_api_key": PARTNER_KEY,
            "data_import_key": IMPORT_KEY,
            "api_key": BRAZE_KEY,
        }
    else:
        config |= {"api_key": BRAZE_KEY}
    result = run_cli("target-braze", config, tmp_path, stdin=braze_input(), env=DEBUG)
    assert (result.returncode == 0) == ok, result.stderr[-2000:]
    assert emulator.requests_seen > 0
    if mode == "ok" and not partner:
        assert emulator.attribute("u025", "mixpanel_cohorts") == ["Buyers", "Churn risk"]
    if mode == "ok" and partner:
        assert emulator.cohort_members("1") == set(USERS[:30])
    if mode == "object-errors":
        assert_owner_only(tmp_path / "dead.jsonl")
    assert_no_secret(result, tmp_path, BRAZE_FORMS)


@pytest.mark.parametrize("partner", [False, True])
def test_target_braze_dry_run_shows_no_secret(tmp_path, partner):
    config: dict[str, Any] = {
        "rest_endpoint": "https://rest.iad-01.braze.com",
        "api_key": BRAZE_KEY,
        "ledger_path": str(tmp_path / "ledger.sqlite3"),
        "dry_run": True,
        "dry_run_path": str(tmp_path / "dry.jsonl"),
    }
    if partner:
        config |= {
            "mode": "partner_cohorts",
            "partner_name": "mixpanel",
            "partner_api_key": PARTNER_KEY,
            "data_import_key": IMPORT_KEY,
        }
    result = run_cli("target-braze", config, tmp_path, stdin=braze_input(), env=DEBUG)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "dry.jsonl").read_text().count("\n") >= 1
    assert_no_secret(result, tmp_path, BRAZE_FORMS)


# -- tap-braze-currents --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_with_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import s3fs
    from moto.server import ThreadedMotoServer

    from sandbox.emulators.server import free_port
    from sandbox.loop.currents_gen import generate_export
    from tests.support.storage import upload_tree

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=S3_KEY_ID, secret=S3_SECRET)
        fs.mkdir("braze-exports")
        root = tmp_path_factory.mktemp("export")
        generate_export(
            root, seed=5, hours=1, events_per_file=5, event_types=["users.behaviors.CustomEvent"]
        )
        upload_tree(fs, root, "braze-exports/data")
        yield endpoint
    finally:
        server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "key": S3_KEY_ID,
        "secret": S3_SECRET,
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }


def test_tap_braze_currents_success_shows_no_secret(tmp_path, s3_with_export):
    config = {
        "storage_url": "s3://braze-exports/data/currents",
        "storage_options": s3_options(s3_with_export),
    }
    result = run_cli("tap-braze-currents", config, tmp_path, env=DEBUG)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"type":"RECORD"' in result.stdout.replace(" ", "")
    assert_no_secret(result, tmp_path, S3_FORMS)


@pytest.mark.parametrize("mode", ["401", "500", "teapot", "refused"])
def test_tap_braze_currents_failures_show_no_secret(tmp_path, started, mode):
    # Port 9 (discard): nothing listens, the connection is refused.
    endpoint = "http://127.0.0.1:9" if mode == "refused" else start(started, EchoOnly(), mode).url
    config = {
        "storage_url": "s3://braze-exports/data/currents",
        "storage_options": s3_options(endpoint),
    }
    result = run_cli("tap-braze-currents", config, tmp_path, env=DEBUG)
    assert result.returncode != 0
    assert_no_secret(result, tmp_path, S3_FORMS)
