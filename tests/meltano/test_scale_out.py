"""Scale-out: a backfill split into independent partitions that run in parallel.

Partitions are cut by ``event_types`` and by hour windows of the ``date=`` partitions
(``start_date`` is the lower bound, ``end_date`` the exclusive upper bound), and each has its own
state id through ``--state-id-suffix``. Each runs in one of
meltano.yml's backfill slots (``tap-braze-currents--p<n>``: same venv, own run directory).
Together they must import every event exactly once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sandbox.loop.stack import generate_round, open_sandbox, wait_all
from tests.support.meltano import state_list as _state_list

CUT = "2026-11-01-11"  # round 1 covers hours 10, 11 and 12
RECORDS_IN = re.compile(r"target-mixpanel summary: records=(\d+)")


def partition_env(slot: int, event_types: list[str], start: str | None, end: str | None) -> dict:
    """Settings of one partition in slot ``slot``, as an orchestrator would pass them."""
    prefix = f"TAP_BRAZE_CURRENTS__P{slot}_"
    env = {f"{prefix}EVENT_TYPES": json.dumps(event_types)}
    if start:
        env[f"{prefix}START_DATE"] = f"{start[:10]}T{start[11:13]}:00:00Z"
    if end:
        env[f"{prefix}END_DATE"] = f"{end[:10]}T{end[11:13]}:00:00Z"
    return env


def test_partitions_in_parallel_import_everything_once(meltano: str, tmp_path: Path) -> None:
    with open_sandbox(meltano, work=tmp_path / "work", fixed_ports=False) as box:
        # Create the system database once: parallel first runs would race on its migrations.
        _state_list(meltano, box.env)
        export = generate_round(box.work, 1, 1600)
        types = sorted({t for t, _ in export.events})
        half = len(types) // 2
        partitions = {  # name: (slot, settings)
            "a-before-11h": (1, partition_env(1, types[:half], None, CUT)),
            "a-from-11h": (2, partition_env(2, types[:half], CUT, None)),
            "b-all-hours": (3, partition_env(3, types[half:], None, None)),
        }
        runs = [
            box.start_run(
                "run",
                f"--state-id-suffix={name}",
                f"tap-braze-currents--p{slot}",
                "target-mixpanel",
                log_name=name,
                extra_env={**env, "TARGET_MIXPANEL_DEAD_LETTER_PATH": str(box.work / name)},
            )
            for name, (slot, env) in partitions.items()
        ]
        codes = wait_all(runs)
        logs = {log.stem: log.read_text(encoding="utf-8") for _, log in runs}
        assert codes == [0] * len(runs), {k: v[-1500:] for k, v in logs.items()}

        # Every record (at-least-once duplicates included) reached a target exactly once ...
        received = {name: sum(map(int, RECORDS_IN.findall(log))) for name, log in logs.items()}
        assert all(received.values()), received
        assert sum(received.values()) == len(export.events)
        # ... and Mixpanel holds each event once, with no duplicate beyond Braze's own.
        with_id = [r["id"] for _, r in export.events if r.get("external_user_id")]
        stats = box.loop.importer.stats
        assert stats["imported"] == len(set(with_id))
        assert stats["duplicates"] == len(with_id) - len(set(with_id))
        stored = sorted(e["properties"]["$insert_id"] for e in box.loop.importer.events)
        assert stored == sorted(set(with_id))

        # Each partition keeps its own incremental state.
        listed = _state_list(meltano, box.env)
        for name, (slot, _) in partitions.items():
            assert f"sandbox:tap-braze-currents--p{slot}-to-target-mixpanel:{name}" in listed
