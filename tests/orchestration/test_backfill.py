"""The hourly Currents backfill through Dagster, against the emulators and generated Currents data.

Three hour partitions run as three concurrent ``dagster job execute`` processes (one Dagster run
each, sharing one Dagster instance and one Meltano project), next to a fourth whose Mixpanel
refuses connections. Then the failed partition is retried and one finished partition re-run.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster", reason="the [dagster] extra is not installed")

from orchestration.backfill import currents_events  # noqa: E402
from sandbox.loop.stack import ROOT, generate_round, open_sandbox, wait_all  # noqa: E402
from tests.support.dagster_home import DAGSTER, dagster_env  # noqa: E402
from tests.support.meltano import state_list  # noqa: E402

JOB = "currents_to_mixpanel_backfill"
HOURS = ["2026-11-01-10", "2026-11-01-11", "2026-11-01-12"]  # round 1 of the sample data
LATE_HOUR = "2026-11-01-13"  # round 2: outside the three partitions


def _start_partition(env: dict[str, str], key: str, logs: Path, **extra: str) -> Any:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{key}-{len(list(logs.glob(key + '*')))}.log"
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [
                DAGSTER,
                "job",
                "execute",
                "-m",
                "orchestration.definitions",
                "-j",
                JOB,
                "--tags",
                json.dumps({"dagster/partition": key}),
            ],
            cwd=ROOT,
            env={**env, **extra},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, log


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ids(events: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {r["id"] for _, r in events if r.get("external_user_id")}


def _stored(box: Any) -> list[str]:
    return sorted(e["properties"]["$insert_id"] for e in box.loop.importer.events)


def _runs(instance: dg.DagsterInstance, key: str) -> list[dg.DagsterRun]:
    records = instance.get_run_records(
        dg.RunsFilter(job_name=JOB, tags={"dagster/partition": key}), ascending=True
    )
    return [record.dagster_run for record in records]


def _materialization(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    (entry,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    assert entry.asset_materialization is not None
    return {k: v.value for k, v in entry.asset_materialization.metadata.items()}


def _failure(instance: dg.DagsterInstance, run_id: str) -> str:
    (entry,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert entry.dagster_event is not None
    data = entry.dagster_event.step_failure_data
    assert data.user_failure_data is not None, data.error  # a dg.Failure, not a crash
    return str(data.user_failure_data.description)


def test_hour_partitions_run_in_parallel_fail_retry_and_rerun(meltano: str, tmp_path: Path) -> None:
    with open_sandbox(meltano, work=tmp_path / "work", fixed_ports=False) as box:
        state_list(meltano, box.env)  # the system DB, once (parallel first runs race on it)
        round1 = generate_round(box.work, 1, 900)
        round2 = generate_round(box.work, 2, 300)
        env = dagster_env(tmp_path / "dagster", meltano, box.env)
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        logs = box.work / "dagster-logs"

        ok = [_start_partition(env, key, logs) for key in HOURS]
        # As docs/orchestration.md advises where Dagster retries runs itself: two attempts per
        # request, so the refused hour fails in seconds instead of after eight backoffs (~3.5 min).
        refused = _start_partition(
            env,
            LATE_HOUR,
            logs,
            TARGET_MIXPANEL_API_URL=f"http://127.0.0.1:{_closed_port()}",
            TARGET_MIXPANEL_RETRY_MAX_ATTEMPTS="2",
        )
        codes = wait_all(ok, timeout=900)
        assert codes == [0, 0, 0], {str(log): log.read_text()[-3000:] for _, log in ok}
        # Mixpanel holds exactly the three hours' events, each once; each hour has its own state.
        assert _stored(box) == sorted(_ids(round1.events))
        listed = state_list(meltano, box.env)
        for key in HOURS:
            assert f"sandbox:tap-braze-currents-to-target-mixpanel:{key}" in listed
            (run,) = _runs(instance, key)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            figures = _materialization(instance, run.run_id)
            assert figures["state_id"] == f"sandbox:tap-braze-currents-to-target-mixpanel:{key}"
            assert figures["target-mixpanel.imported"] > 0
            assert not list(ROOT.glob(f".meltano/run/elt/*/{figures['meltano_run_id']}"))

        # Re-running a finished hour sends nothing.
        before = dict(box.loop.importer.stats)
        (code,) = wait_all([_start_partition(env, HOURS[0], logs)], timeout=900)
        assert code == 0
        rerun = _runs(instance, HOURS[0])[-1]
        assert _materialization(instance, rerun.run_id)["target-mixpanel.records"] == 0
        assert box.loop.importer.stats == before

        # The hour whose Mixpanel refused connections failed with target-mixpanel's own line ...
        (code,) = wait_all([refused], timeout=900)
        assert code != 0
        (failed,) = _runs(instance, LATE_HOUR)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        reason = _failure(instance, failed.run_id)
        assert "target-mixpanel: Mixpanel /import still failing after 2 attempts" in reason, reason
        assert _stored(box) == sorted(_ids(round1.events))

        # ... and succeeds on retry, adding exactly its hour.
        retry = _start_partition(env, LATE_HOUR, logs)
        (code,) = wait_all([retry], timeout=900)
        assert code == 0, retry[1].read_text()[-3000:]
        assert _runs(instance, LATE_HOUR)[-1].status == dg.DagsterRunStatus.SUCCESS
        assert _stored(box) == sorted(_ids(round1.events) | _ids(round2.events))
        assert currents_events.key == dg.AssetKey(["mixpanel", "currents_events"])
