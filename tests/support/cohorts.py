"""tap-mixpanel-cohorts test helpers: the emulator's accounts and data, an in-process tap."""

from __future__ import annotations

from typing import Any

from sandbox.emulators.mixpanel_query import (
    DEFAULT_PROJECT_ID,
    Cohort,
    GeneratedMembers,
    MixpanelQueryEmulator,
)
from tap_mixpanel_cohorts.tap import TapMixpanelCohorts
from tests.support.clock import FakeClock

SA_USER = "sa-user.mp-service-account"
SA_SECRET = "sa-secret-9f8e7d6c"
API_SECRET = "legacy-secret-1a2b3c4d"

PROFILES = {
    "u1": {
        "$braze_external_id": "braze-1",
        "$email": "u1@example.com",
        "crm_id": "c-1",
        "tags": ["a", "b"],
        "address": {"city": "Lyon", "zip": 69001},
    },
    "u2": {"$email": "u2@example.com", "crm_id": 7},
    "42": {"$braze_external_id": 4242, "$email": "n42@example.com"},
    "u4": {"$braze_external_id": "  ", "$email": "u4@example.com"},
}


def standard_cohorts() -> list[Cohort]:
    """Cohort 1: four explicit members (one int id); 2: 2,500 generated; 3: hidden."""
    return [
        Cohort(1, "Buyers", "Bought twice", "2024-01-02 03:04:05", 1, ["u1", "u2", 42, "u4"]),
        Cohort(
            2,
            "Big",
            "",
            "2024-02-03 04:05:06",
            1,
            GeneratedMembers(2500, prefix="big-", no_external_id_every=10),
        ),
        Cohort(3, "Hidden", "", "2024-03-04 05:06:07", 0, ["u1"]),
    ]


class RecordingTap(TapMixpanelCohorts):
    """The tap, keeping the Singer messages it writes instead of printing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[dict[str, Any]] = []
        super().__init__(*args, **kwargs)

    def write_message(self, message: Any) -> None:
        self.messages.append(message.to_dict())


def config_for(emulator: MixpanelQueryEmulator, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "api_url": emulator.url,
        "project_id": str(DEFAULT_PROJECT_ID),
        "service_account_username": SA_USER,
        "service_account_secret": SA_SECRET,
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def make_tap(config: dict[str, Any], clock: FakeClock) -> RecordingTap:
    """A tap on the fake clock, not run yet."""
    return RecordingTap(config=config, parse_env_config=False, clock=clock)


def run_tap(config: dict[str, Any], clock: FakeClock) -> RecordingTap:
    """Run a full sync in-process; the tap keeps its messages in ``.messages``."""
    tap = make_tap(config, clock)
    tap.sync_all()
    return tap


def records(tap: RecordingTap, stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in tap.messages if m["type"] == "RECORD" and m["stream"] == stream]
