"""``meltano run cohorts-to-braze`` as a container runs it: every run gets a new system database
(a new disk), and only the state backend and the ledger's bucket (moto's S3) carry over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import s3fs

from sandbox.loop.stack import external_ids, generate_round, open_sandbox
from tests.support.buckets import s3_bucket
from tests.support.storage_emulators import s3_endpoint  # noqa: F401 (fixture)

ACTIVE = "Active in the last 2 hours"


def _mirrors(users: dict[str, list[str]], cohorts: dict[str, set[str]]) -> None:
    for name, members in cohorts.items():
        assert {uid for uid, names in users.items() if name in names} == members, name


def test_stateless_cohort_sync_in_fresh_containers(
    meltano: str,
    tmp_path: Path,
    s3_endpoint: str,  # noqa: F811
) -> None:
    root, options = s3_bucket(s3_endpoint)
    ledger = f"{root}/target-braze/prod-ledger.sqlite3"
    state_dir = tmp_path / "state-backend"
    state_dir.mkdir()
    runs = iter(range(1, 100))

    def container() -> dict[str, str]:
        return {
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / f'container-{next(runs)}.db'}",
            "MELTANO_STATE_BACKEND_URI": f"file://{state_dir}",
            "TARGET_BRAZE_LEDGER_PATH": ledger,
            "TARGET_BRAZE_LEDGER_OPTIONS": json.dumps(options),
        }

    with open_sandbox(meltano, work=tmp_path / "work", fixed_ports=False) as box:
        box.seed_braze_users(external_ids(generate_round(box.work, 1, 1200)))
        box.run("run", "currents-to-mixpanel", log_name="c1", extra_env=container())
        box.run("run", "cohorts-to-braze", log_name="b1", extra_env=container())
        _mirrors(box.braze_cohorts(), {c.name: set(c.members) for c in box.loop.cohorts()})
        before = box.braze_cohorts()

        box.seed_braze_users(external_ids(generate_round(box.work, 2, 400)))
        box.run("run", "currents-to-mixpanel", log_name="c2", extra_env=container())
        box.run("run", "cohorts-to-braze", log_name="b2", extra_env=container())
        after = box.braze_cohorts()
        _mirrors(after, {c.name: set(c.members) for c in box.loop.cohorts()})
        left = {u for u, names in before.items() if ACTIVE in names and ACTIVE not in after[u]}
        assert left, "the second container must remove members who left, from the bucket's ledger"

        # the ledger is lost: the next container stops before sending anything
        s3fs.S3FileSystem(**options).rm(ledger.removeprefix("s3://"))
        with pytest.raises(RuntimeError, match="Removals cannot be computed"):
            box.run("run", "cohorts-to-braze", log_name="b3", extra_env=container())
        assert box.braze_cohorts() == after
