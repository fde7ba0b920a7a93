"""The cohort-loop reconciliation end to end: tap -> target -> audit (-> repair) on emulators."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reconcile.cohort_loop.cli as cli
from braze_mixpanel_common.errors import DestinationError
from reconcile.cohort_loop.cli import build_parser, main, run
from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.mixpanel_query import Cohort, MixpanelQueryEmulator
from target_braze.sync import RemovalGuardError
from tests.support.braze import API_KEY, run_target
from tests.support.buckets import s3_bucket
from tests.support.clock import FakeClock
from tests.support.cohorts import SA_SECRET, SA_USER, config_for, run_tap
from tests.support.storage_emulators import s3_endpoint  # noqa: F401 (fixture)

ATTRIBUTE = "mixpanel_cohorts"
BUYERS = [f"m{i:02d}" for i in range(30)]
CHURN = [f"c{i:02d}" for i in range(45)]


def braze_id(distinct_id: str) -> str:
    return f"b-{distinct_id}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mixpanel(clock: FakeClock) -> Iterator[MixpanelQueryEmulator]:
    profiles = {d: {"$braze_external_id": braze_id(d)} for d in BUYERS + CHURN}
    cohorts = [
        Cohort(1, "Buyers", "", "2024-01-01 00:00:00", 1, list(BUYERS)),
        Cohort(2, "Churn", "", "2024-01-01 00:00:00", 1, list(CHURN)),
    ]
    # Pages of 20: no cohort fits in page 0, so the sample's membership is asked by id.
    accounts = {SA_USER: SA_SECRET}
    emulator = MixpanelQueryEmulator(
        cohorts, profiles, page_size=20, service_accounts=accounts, clock=clock
    )
    with emulator:
        yield emulator


@pytest.fixture
def braze(clock: FakeClock) -> Iterator[BrazeEmulator]:
    users = [braze_id(d) for d in BUYERS + CHURN]
    with BrazeEmulator(api_key=API_KEY, existing_users=users, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def configs(
    tmp_path: Path, mixpanel: MixpanelQueryEmulator, braze: BrazeEmulator
) -> dict[str, Any]:
    tap = config_for(mixpanel, fallback_to_distinct_id=False)
    target = {
        "rest_endpoint": braze.url,
        "api_key": API_KEY,
        "ledger_path": str(tmp_path / "ledger.sqlite3"),
        "dead_letter_path": str(tmp_path / "dead.jsonl"),
    }
    paths = {"tap": tmp_path / "tap.json", "target": tmp_path / "target.json"}
    paths["tap"].write_text(json.dumps(tap))
    paths["target"].write_text(json.dumps(target))
    return {"tap": tap, "target": target, "paths": paths, "summary": tmp_path / "summary.json"}


def sync(configs: dict[str, Any], clock: FakeClock) -> None:
    """One real cohorts-to-braze run: the tap's messages into the target."""
    tap = run_tap(configs["tap"], clock)
    messages = json.loads(json.dumps(tap.messages, default=str))  # as they travel on a pipe
    run_target(configs["target"], messages, clock)


def reconcile(configs: dict[str, Any], clock: FakeClock, *extra: str) -> tuple[int, dict]:
    args = build_parser().parse_args(
        [
            "--tap-config",
            str(configs["paths"]["tap"]),
            "--target-config",
            str(configs["paths"]["target"]),
            "--sample-size",
            "100",
            "--seed",
            "7",
            "--summary",
            str(configs["summary"]),
            *extra,
        ]
    )
    code = run(args, clock)
    return code, json.loads(configs["summary"].read_text())


def rows(summary: dict) -> dict[str, dict]:
    return {row["name"]: row for row in summary["rows"]}


def drop_ledger_row(configs: dict[str, Any], user: str, cohort_id: str) -> None:
    """Simulate a lost ledger row (the test stands in for a crash or a restore)."""
    db = sqlite3.connect(configs["target"]["ledger_path"])
    with db:
        deleted = db.execute(
            "DELETE FROM members WHERE external_id=? AND cohort_id=?", (user, cohort_id)
        ).rowcount
    db.close()
    assert deleted == 1


def edit_in_braze(braze: BrazeEmulator, user: str, *, add: str = "", remove: str = "") -> None:
    """What a person editing a profile in Braze's dashboard does to the attribute."""
    values = [v for v in braze.users[user].get(ATTRIBUTE, []) if v != remove]
    braze.users[user][ATTRIBUTE] = values + ([add] if add else [])


def test_a_clean_loop_reports_zero_drift(configs, clock, mixpanel, braze):
    sync(configs, clock)
    code, summary = reconcile(configs, clock)
    assert code == 0
    assert summary["passed"] is True
    assert summary["drift"] == 0
    assert summary["checked"] == len(BUYERS) + len(CHURN)  # everyone sampled
    buyers = rows(summary)["Buyers"]
    assert buyers["sampled"] == buyers["agree"] == len(BUYERS)
    # page 0 plus one `where` query per cohort; 50 ids per export request
    assert buyers["mixpanel_queries"] == 2
    assert buyers["braze_requests"] == 1
    # Churn: 25 sampled ids outside page 0 answer in two pages of 20
    assert rows(summary)["Churn"]["mixpanel_queries"] == 3
    assert summary["mixpanel_queries"] == 1 + 2 + 3  # cohorts/list once per run
    assert mixpanel.last_form.get("where", "").count("==") > 0
    assert mixpanel.rate_limited_count == 0 and braze.rate_limited_count == 0


def test_each_seeded_drift_is_found_counted_and_named(configs, clock, mixpanel, braze):
    mixpanel.profiles["m12"] = {}  # a member without the exported property: the tap skips it
    sync(configs, clock)
    edit_in_braze(braze, braze_id("m03"), remove="Buyers")  # edited by hand in Braze
    drop_ledger_row(configs, braze_id("m05"), "1")  # a ledger row lost
    mixpanel.cohorts[2].members.remove("c09")  # left the cohort, and the removal was lost
    code, summary = reconcile(configs, clock)
    assert code == 1
    assert summary["passed"] is False
    buyers, churn = rows(summary)["Buyers"], rows(summary)["Churn"]
    assert buyers["missing_in_braze"] == 1
    assert buyers["ledger_wrong"] == 2
    assert buyers["examples"]["missing_in_braze"] == [braze_id("m03")]
    assert buyers["examples"]["ledger_wrong"] == [braze_id("m03"), braze_id("m05")]
    assert buyers["without_user_id"] == 1
    assert buyers["examples"]["without_user_id"] == ["m12"]
    assert buyers["drift"] == 3
    assert churn["extra_in_braze"] == 1 and churn["ledger_wrong"] == 0
    assert churn["examples"]["extra_in_braze"] == [braze_id("c09")]
    assert summary["drift"] == 4
    # a threshold lets a known level of drift pass
    code, _ = reconcile(configs, clock, "--max-drift", "4")
    assert code == 0


def test_repair_fixes_only_the_drifted_users_and_a_second_audit_is_clean(
    configs, clock, mixpanel, braze
):
    sync(configs, clock)
    edit_in_braze(braze, braze_id("m03"), remove="Buyers")
    drop_ledger_row(configs, braze_id("m05"), "1")
    mixpanel.cohorts[2].members.remove("c09")
    before = {u: list(a.get(ATTRIBUTE, [])) for u, a in braze.users.items()}
    tracked_before = len(braze.track_requests)
    code, summary = reconcile(configs, clock, "--repair")
    assert code == 0, summary
    assert summary["drift"] == 0
    assert summary["before_repair"]["drift"] == 3
    assert summary["repair"] == {
        "users": 3,
        "to_member": 2,
        "to_non_member": 1,
        "ledger_rows_corrected": 2,
    }
    after = {u: list(a.get(ATTRIBUTE, [])) for u, a in braze.users.items()}
    changed = {u for u in after if after[u] != before[u]}
    assert changed == {braze_id("m03"), braze_id("c09")}  # m05 was right in Braze already
    assert "Buyers" in after[braze_id("m03")]
    assert after[braze_id("c09")] == []
    assert len(braze.track_requests) == tracked_before + 1
    # the ledger holds the repair: a fresh audit is clean and the next sync sends nothing
    code, summary = reconcile(configs, clock)
    assert code == 0 and summary["drift"] == 0
    tracked = len(braze.track_requests)
    sync(configs, clock)
    assert len(braze.track_requests) == tracked


def test_a_cohort_deleted_in_mixpanel_shows_as_extra_in_braze_and_is_repaired(
    configs, clock, mixpanel, braze
):
    sync(configs, clock)
    del mixpanel.cohorts[2]
    # the repair is a normal target-braze run: its removal guard holds back a whole cohort
    with pytest.raises(RemovalGuardError, match="max_removal_fraction"):
        reconcile(configs, clock, "--repair")
    assert all(braze.users[braze_id(d)][ATTRIBUTE] == ["Churn"] for d in CHURN)
    configs["target"]["max_removal_fraction"] = 1
    configs["paths"]["target"].write_text(json.dumps(configs["target"]))
    code, summary = reconcile(configs, clock, "--repair")
    assert code == 0
    churn = rows(summary["before_repair"])["Churn"]
    assert churn["extra_in_braze"] == churn["drift"] == len(CHURN)
    assert churn["mixpanel_queries"] == 0
    assert all(not braze.users[braze_id(d)].get(ATTRIBUTE) for d in CHURN)
    assert all(braze.users[braze_id(d)][ATTRIBUTE] == ["Buyers"] for d in BUYERS)
    assert summary["drift"] == 0


def test_budgets_are_respected_and_the_webhook_source_reads_the_query_api(
    configs, clock, mixpanel, braze
):
    sync(configs, clock)
    clock.sleep(3600)  # the tap's queries leave Mixpanel's window
    braze.export_rate_limit = 1  # one export request a minute
    mixpanel.max_queries_per_hour = 3  # the audit needs 5: it must wait, never be refused
    webhook = {
        **configs["tap"],
        "source": "webhook",
        "spool_url": "/nowhere",
        "max_queries_per_hour": 3,
    }
    configs["paths"]["tap"].write_text(json.dumps(webhook))
    queries_before = sum(mixpanel.queries.values())
    slept_before = len(clock.sleeps)
    code, summary = reconcile(configs, clock, "--export-requests-per-minute", "1")
    assert code == 0 and summary["drift"] == 0
    assert braze.rate_limited_count == 0 and mixpanel.rate_limited_count == 0
    starts = [t for t, _ in braze.export_requests]
    assert len(starts) == 2 == summary["braze_export_requests"]
    assert all(b - a >= 60 for a, b in itertools.pairwise(starts))
    assert all(n <= 50 for _, n in braze.export_requests)
    assert sum(mixpanel.queries.values()) - queries_before == summary["mixpanel_queries"] == 6
    waits = clock.sleeps[slept_before:]
    assert max(waits) > 3000  # the fourth query waited for the hour's window


def test_secrets_never_reach_the_output(configs, clock, mixpanel, braze, caplog, capsys):
    sync(configs, clock)
    edit_in_braze(braze, braze_id("m03"), remove="Buyers")
    caplog.set_level(logging.DEBUG)
    reconcile(configs, clock, "--repair")
    text = caplog.text + "".join(capsys.readouterr()) + configs["summary"].read_text()
    assert API_KEY not in text and SA_SECRET not in text
    # a refused key is reported without echoing it (Braze puts the key it got in its 401 body)
    braze.api_key = "another-key"
    argv = ["--tap-config", str(configs["paths"]["tap"])]
    argv += ["--target-config", str(configs["paths"]["target"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "401" in err and "api_key" in err
    assert API_KEY not in err + caplog.text


def test_a_ledger_in_object_storage_is_audited_and_repaired(
    configs,
    clock,
    mixpanel,
    braze,
    s3_endpoint,  # noqa: F811 (the fixture imported above)
):
    root, options = s3_bucket(s3_endpoint)
    configs["target"].update(ledger_path=f"{root}/cohorts/ledger.sqlite3", ledger_options=options)
    configs["paths"]["target"].write_text(json.dumps(configs["target"]))
    sync(configs, clock)
    edit_in_braze(braze, braze_id("c04"), remove="Churn")
    code, summary = reconcile(configs, clock, "--repair")
    assert code == 0 and summary["before_repair"]["drift"] == 1
    assert braze.users[braze_id("c04")][ATTRIBUTE] == ["Churn"]
    code, summary = reconcile(configs, clock)
    assert code == 0 and summary["drift"] == 0


def test_a_numeric_id_property_is_asked_by_its_number(configs, clock, mixpanel, braze):
    # Mixpanel compares typed values: a profile whose id property is the number 4242 is not
    # 'properties[...] == "4242"'. Off page 0 (c30), it must still count as a member, or the
    # audit calls it extra and a repair would remove it from Braze.
    mixpanel.profiles["c30"]["$braze_external_id"] = 4242
    braze.users["4242"] = {}
    sync(configs, clock)
    code, summary = reconcile(configs, clock, "--repair")
    assert code == 0, summary
    assert summary["drift"] == 0 and "repair" not in summary
    assert "Churn" in braze.users["4242"][ATTRIBUTE]


def test_a_bad_setting_in_a_config_file_is_named_in_one_line(configs, capsys):
    configs["paths"]["tap"].write_text(json.dumps({**configs["tap"], "max_queries_per_hour": 0}))
    argv = ["--tap-config", str(configs["paths"]["tap"])]
    argv += ["--target-config", str(configs["paths"]["target"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Setting 'max_queries_per_hour' in --tap-config" in err
    assert "Traceback" not in err
    target = {**configs["target"], "api_key": 12345678}  # a secret of the wrong type
    configs["paths"]["target"].write_text(json.dumps(target))
    configs["paths"]["tap"].write_text(json.dumps(configs["tap"]))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Setting 'api_key' in --target-config" in err and "12345678" not in err


def test_a_repair_after_another_publish_sends_nothing(configs, clock, mixpanel, braze, monkeypatch):
    sync(configs, clock)
    edit_in_braze(braze, braze_id("m03"), remove="Buyers")
    tracked = len(braze.track_requests)

    # a cohort sync publishes the ledger between the audit and the repair
    audit = cli._audit

    def audit_then_sync(*args: Any, **kwargs: Any) -> Any:
        found = audit(*args, **kwargs)
        mixpanel.cohorts[1].members.append("c44")  # something new for the sync to send
        sync(configs, clock)
        return found

    monkeypatch.setattr(cli, "_audit", audit_then_sync)
    with pytest.raises(DestinationError, match="published again since the audit"):
        reconcile(configs, clock, "--repair")
    assert len(braze.track_requests) == tracked + 1  # the sync's request, none from the repair
    assert "Buyers" not in braze.users[braze_id("m03")].get(ATTRIBUTE, [])
