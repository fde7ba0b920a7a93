"""Settings validation: one clear message naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from braze_mixpanel_common.errors import ConfigurationError
from target_braze.settings import default_ledger_path, parse_settings


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
    ],
)
def test_bad_settings_name_the_setting(config, setting):
    with pytest.raises(ConfigurationError, match=setting):
        parse_settings(config)


def test_settings_repr_hides_secrets():
    settings = parse_settings({"rest_endpoint": "https://rest.fra-01.braze.eu", "api_key": "s3cr"})
    assert "s3cr" not in repr(settings)


def test_default_ledger_path(tmp_path, monkeypatch):
    (tmp_path / ".meltano").mkdir()
    assert default_ledger_path(tmp_path) == tmp_path / ".meltano/target-braze/ledger.sqlite3"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    other = tmp_path / "plain"
    other.mkdir()
    assert default_ledger_path(other) == Path(tmp_path / "state/target-braze/ledger.sqlite3")
