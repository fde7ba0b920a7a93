"""Bad configuration: every required setting missing or malformed gives one error line naming it.

Through the real CLI of all four plugins, before any input is read: exit code 1, no traceback,
and an error line that names the setting.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import run_cli
from tools.about import PLUGINS

MP_SA = {"project_id": "1", "service_account_username": "u", "service_account_secret": "s"}
BRAZE = {"rest_endpoint": "https://rest.iad-01.braze.com", "api_key": "k"}
PARTNER = {**BRAZE, "mode": "partner_cohorts", "partner_name": "mixpanel"}
PARTNER_FULL = {**PARTNER, "partner_api_key": "p", "data_import_key": "d"}

CASES: list[tuple[str, dict[str, Any], str]] = [
    # tap-braze-currents
    ("tap-braze-currents", {}, "storage_url"),
    ("tap-braze-currents", {"storage_url": 5}, "storage_url"),
    ("tap-braze-currents", {"storage_url": "nope://bucket/x"}, "storage_url"),
    ("tap-braze-currents", {"storage_url": ".", "storage_options": "key=a"}, "storage_options"),
    ("tap-braze-currents", {"storage_url": ".", "event_types": "x.y"}, "event_types"),
    ("tap-braze-currents", {"storage_url": ".", "start_date": "soon"}, "start_date"),
    ("tap-braze-currents", {"storage_url": ".", "lookback_hours": "many"}, "lookback_hours"),
    ("tap-braze-currents", {"storage_url": ".", "lookback_hours": -5}, "lookback_hours"),
    ("tap-braze-currents", {"storage_url": ".", "on_corrupt_file": "explode"}, "on_corrupt_file"),
    # target-mixpanel
    ("target-mixpanel", {}, "service_account_username"),
    (
        "target-mixpanel",
        {"project_id": "1", "service_account_username": "u"},
        "service_account_secret",
    ),
    (
        "target-mixpanel",
        {"project_id": "1", "service_account_secret": "s"},
        "service_account_username",
    ),
    (
        "target-mixpanel",
        {"service_account_username": "u", "service_account_secret": "s"},
        "project_id",
    ),
    ("target-mixpanel", {**MP_SA, "region": "mars"}, "region"),
    ("target-mixpanel", {**MP_SA, "api_url": "ftp://x"}, "api_url"),
    ("target-mixpanel", {**MP_SA, "batch_size": 5000}, "batch_size"),
    ("target-mixpanel", {**MP_SA, "batch_size": "lots"}, "batch_size"),
    ("target-mixpanel", {**MP_SA, "max_concurrency": 0}, "max_concurrency"),
    ("target-mixpanel", {**MP_SA, "min_event_time": "yesterday"}, "min_event_time"),
    ("target-mixpanel", {**MP_SA, "strict": "maybe"}, "strict"),
    # tap-mixpanel-cohorts
    ("tap-mixpanel-cohorts", {}, "service_account_username"),
    (
        "tap-mixpanel-cohorts",
        {"project_id": "1", "service_account_username": "u"},
        "service_account_secret",
    ),
    (
        "tap-mixpanel-cohorts",
        {"service_account_username": "u", "service_account_secret": "s"},
        "project_id",
    ),
    ("tap-mixpanel-cohorts", {**MP_SA, "region": "mars"}, "region"),
    ("tap-mixpanel-cohorts", {**MP_SA, "api_url": "mixpanel.com"}, "api_url"),
    ("tap-mixpanel-cohorts", {**MP_SA, "cohort_ids": "all"}, "cohort_ids"),
    ("tap-mixpanel-cohorts", {**MP_SA, "max_queries_per_hour": 0}, "max_queries_per_hour"),
    ("tap-mixpanel-cohorts", {**MP_SA, "max_concurrent_queries": -1}, "max_concurrent_queries"),
    ("tap-mixpanel-cohorts", {**MP_SA, "output_properties": ["external_id"]}, "output_properties"),
    # target-braze
    ("target-braze", {}, "rest_endpoint"),
    ("target-braze", {"api_key": "k"}, "rest_endpoint"),
    ("target-braze", {"rest_endpoint": "https://rest.iad-01.braze.com"}, "api_key"),
    ("target-braze", {**BRAZE, "rest_endpoint": "rest.iad-01.braze.com"}, "rest_endpoint"),
    ("target-braze", {**BRAZE, "rest_endpoint": "http://rest.iad-01.braze.com"}, "rest_endpoint"),
    ("target-braze", {**BRAZE, "mode": "sideways"}, "mode"),
    ("target-braze", {**BRAZE, "mode": "partner_cohorts"}, "partner_name"),
    ("target-braze", {**PARTNER, "data_import_key": "d"}, "partner_api_key"),
    ("target-braze", {**PARTNER, "partner_api_key": "p"}, "data_import_key"),
    ("target-braze", {**BRAZE, "max_removal_fraction": 2}, "max_removal_fraction"),
    ("target-braze", {**PARTNER_FULL, "max_removal_fraction": -0.1}, "max_removal_fraction"),
]


def test_every_plugin_has_cases() -> None:
    assert {plugin for plugin, _, _ in CASES} == set(PLUGINS)


@pytest.mark.parametrize(
    ("plugin", "config", "setting"),
    CASES,
    ids=[f"{p}-{s}-{i}" for i, (p, _, s) in enumerate(CASES)],
)
def test_bad_setting_gives_one_line_naming_it(tmp_path, plugin, config, setting):
    stdin = "" if plugin.startswith("target") else None
    result = run_cli(plugin, config, tmp_path, stdin=stdin, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    error_lines = [
        line
        for line in result.stderr.splitlines()
        if ("ERROR" in line or line.startswith("Error:")) and setting in line
    ]
    assert error_lines, f"no error line names {setting!r}:\n{result.stderr[-2000:]}"
    assert result.stdout == ""
