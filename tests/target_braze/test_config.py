"""Settings validation: one clear message naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from braze_mixpanel_common.errors import ConfigurationError
from target_braze.settings import Settings, default_ledger_path
from target_braze.target import TargetBraze


def settings_of(config: dict[str, Any]) -> Settings:
    """The SDK's check against the schema, then the target's own rules, as when it starts."""
    return TargetBraze(config=config).settings


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"rest_endpoint": "https://rest.iad-01.braze.com"}, "'api_key'"),
        ({"rest_endpoint": "rest.iad-01.braze.com", "api_key": "k"}, "'rest_endpoint'"),
        ({"rest_endpoint": "http://rest.iad-01.braze.com", "api_key": "k"}, "'rest_endpoint'"),
        ({"rest_endpoint": "https://x", "mode": "partner_cohorts"}, "'partner_name'"),
        (
            {"rest_endpoint": "https://x", "api_key": "k", "max_removal_fraction": 2},
            "'max_removal_fraction'",
        ),
        (
            {"rest_endpoint": "https://x", "api_key": "k", "objects_per_request": 76},
            "'objects_per_request'",
        ),
        (
            {"rest_endpoint": "https://x", "api_key": "k", "max_requests_per_window": 4000},
            "'max_requests_per_window'",
        ),
        (
            {"rest_endpoint": "https://x", "api_key": "k", "cohort_attribute": "$email"},
            "'cohort_attribute'",
        ),
        (
            {"rest_endpoint": "https://x", "api_key": "k", "rate_window_seconds": 0},
            "'rate_window_seconds'",
        ),
    ],
)
def test_bad_settings_name_the_setting(config, setting):
    with pytest.raises((ConfigurationError, ConfigValidationError)) as info:
        settings_of(config)
    errors = getattr(info.value, "errors", None) or [str(info.value)]
    assert any(setting in error for error in errors), errors


def test_settings_repr_hides_secrets():
    settings = settings_of({"rest_endpoint": "https://rest.fra-01.braze.eu", "api_key": "s3cr"})
    assert "s3cr" not in repr(settings)
    assert settings.secrets == ("s3cr",)


def test_defaults_come_from_the_schema(tmp_path):
    ledger = tmp_path / "l.sqlite3"
    settings = settings_of(
        {"rest_endpoint": "https://x/", "api_key": "k", "ledger_path": str(ledger)}
    )
    assert settings.rest_endpoint == "https://x"
    assert (settings.mode, settings.cohort_attribute) == ("attributes", "mixpanel_cohorts")
    assert (settings.max_requests_per_window, settings.rate_window_seconds) == (3000, 3.0)
    assert (settings.objects_per_request, settings.max_concurrency) == (75, 8)
    assert (settings.cohort_id_field, settings.user_id_field) == ("cohort_id", "external_id")
    assert settings.dead_letter_path == tmp_path / "dead-letters.jsonl"


def test_default_ledger_path(tmp_path, monkeypatch):
    (tmp_path / ".meltano").mkdir()
    assert default_ledger_path(tmp_path) == tmp_path / ".meltano/target-braze/ledger.sqlite3"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    other = tmp_path / "plain"
    other.mkdir()
    assert default_ledger_path(other) == Path(tmp_path / "state/target-braze/ledger.sqlite3")
