"""Settings and credentials: clear one-line errors naming the setting, secrets never shown."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from braze_mixpanel_common.errors import ConfigurationError
from tap_mixpanel_cohorts.client import MixpanelAuthError
from tap_mixpanel_cohorts.tap import TapMixpanelCohorts
from tests.support.cohorts import (
    API_SECRET,
    SA_SECRET,
    config_for,
    make_tap,
    records,
    run_tap,
)

ROOT = Path(__file__).resolve().parents[2]


def test_legacy_api_secret_works_with_a_deprecation_warning(emulator, clock, caplog):
    caplog.set_level(logging.WARNING)
    config = config_for(
        emulator,
        service_account_username=None,
        service_account_secret=None,
        project_id=None,
        api_secret=API_SECRET,
        cohort_ids=[1],
    )
    tap = run_tap(config, clock)
    assert len(records(tap, "cohort_members")) == 4
    assert "2027-03-03" in caplog.text
    assert caplog.text.count("legacy project secret") == 1
    assert API_SECRET not in caplog.text


def test_workspace_id_is_sent(emulator, clock):
    seen = []
    emulator.on_query = lambda request: seen.append(request.param("workspace_id"))
    run_tap(config_for(emulator, workspace_id=777, cohort_ids=[1]), clock)
    assert seen and set(seen) == {"777"}


def test_wrong_service_account_secret_names_the_settings(emulator, clock, caplog):
    tap = make_tap(config_for(emulator, service_account_secret="wrong-secret-value"), clock)
    with pytest.raises(MixpanelAuthError) as info:
        tap.sync_all()
    message = str(info.value)
    assert "401" in message
    assert "'service_account_username' and 'service_account_secret'" in message
    assert "wrong-secret-value" not in message + caplog.text


def test_wrong_api_secret_names_api_secret(emulator, clock):
    config = config_for(
        emulator,
        service_account_username=None,
        service_account_secret=None,
        api_secret="not-the-secret",
    )
    with pytest.raises(MixpanelAuthError, match="Check 'api_secret'"):
        make_tap(config, clock).sync_all()


def test_other_project_is_a_403_naming_project_id(emulator, clock):
    with pytest.raises(MixpanelAuthError, match=r"403.*'project_id'"):
        make_tap(config_for(emulator, project_id="999"), clock).sync_all()


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"project_id": None}, "project_id"),
        ({"service_account_secret": None}, "service_account_secret"),
        (
            {"service_account_username": None, "service_account_secret": None},
            "api_secret",
        ),
        ({"api_url": None, "region": "mars"}, "region"),
        ({"api_url": "ftp://example.com"}, "api_url"),
        ({"max_queries_per_hour": 0}, "max_queries_per_hour"),
        ({"output_properties": ["external_id"]}, "output_properties"),
    ],
)
def test_bad_settings_fail_at_start(emulator, clock, overrides, setting):
    with pytest.raises((ConfigValidationError, ConfigurationError)) as info:
        make_tap(config_for(emulator, **overrides), clock)
    error = info.value
    text = " ".join(error.errors) if isinstance(error, ConfigValidationError) else str(error)
    assert f"'{setting}'" in text
    assert emulator.requests_seen == 0


def test_region_picks_the_documented_host():
    tap = TapMixpanelCohorts(config={"api_secret": "x" * 8, "region": "eu"}, parse_env_config=False)
    assert tap.client.base_url == "https://eu.mixpanel.com"
    assert tap.client.http.session.verify is True


def test_discovery_needs_no_credentials():
    """The SDK's --discover builds the tap with validate_config=False: no settings are required."""
    tap = TapMixpanelCohorts(
        config={"output_properties": ["$email"]}, parse_env_config=False, validate_config=False
    )
    members = {s.name: s for s in tap.discover_streams()}["cohort_members"]
    assert "$email" in members.schema["properties"]


def test_secrets_are_marked_secret():
    props = TapMixpanelCohorts.config_jsonschema["properties"]
    assert props["service_account_secret"].get("secret") is True
    assert props["api_secret"].get("secret") is True


def _cli(config: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "LOGLEVEL": "DEBUG", "TAP_MIXPANEL_COHORTS_LOG_LEVEL": "DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "tap_mixpanel_cohorts", "--config", str(path), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_auth_failure_is_one_clear_line_without_the_secret(emulator, tmp_path):
    secret = "definitely-wrong-" + SA_SECRET
    result = _cli(config_for(emulator, service_account_secret=secret), tmp_path)
    assert result.returncode == 1
    assert secret not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert any("Check 'service_account_username' and 'service_account_secret'" in e for e in errors)
    assert "Traceback" not in result.stderr


def test_cli_config_error_names_the_setting(tmp_path):
    result = _cli({"service_account_username": "u", "service_account_secret": "s3cr3t!"}, tmp_path)
    assert result.returncode == 1
    assert "'project_id'" in result.stderr
    assert "s3cr3t!" not in result.stderr


def test_cli_sync_writes_singer_messages(emulator, tmp_path):
    emulator.max_queries_per_hour = 1000
    result = _cli(config_for(emulator, cohort_ids=[1]), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    members = [m for m in messages if m.get("stream") == "cohort_members"]
    assert [m["type"] for m in members][-1] == "ACTIVATE_VERSION"
    assert sum(m["type"] == "RECORD" for m in members) == 4
    assert SA_SECRET not in result.stderr
