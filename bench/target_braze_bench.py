"""Benchmark: target-braze's diff of a 1M-member cohort (time, peak RSS, request fill rate).

Run: ``.venv/bin/python -m bench.target_braze_bench [--members 1000000]``

Two runs against one ledger: a first sync (every member added), then a second snapshot where
5% left and 5% joined. Records go straight to the run object (no Singer parsing) and
``/users/track`` is answered in-process (success), so the figures measure the ledger staging, the
SQL diff, the packing of attribute objects and the ledger updates, not the network.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from braze_mixpanel_common.settings import ConfigView
from target_braze.client import BrazeClient, Outcome
from target_braze.settings import CONFIG_SCHEMA, Settings
from target_braze.sync import BrazeSync

SIZES: list[int] = []


def fake_track(self: BrazeClient, attributes: list[dict[str, Any]]) -> Outcome:
    """``/users/track`` answered at once, its request sizes noted (only the diff is timed)."""
    self.counters.add(requests=1)
    SIZES.append(len(attributes))
    return Outcome(201, {"message": "success"}, "success")


def run(ledger: Path, members: range, name: str) -> tuple[float, dict[str, Any]]:
    """One sync of a cohort named ``name`` with ``members``: its seconds and its summary."""
    config = {
        "rest_endpoint": "https://rest.iad-01.braze.com",
        "api_key": "bench-key",
        "ledger_path": str(ledger),
        "max_removal_fraction": 1,
    }
    settings = Settings.from_config(ConfigView(config, CONFIG_SCHEMA))
    logger = logging.getLogger("bench")
    started = time.perf_counter()
    sync = BrazeSync(settings, logger)
    sync.list_cohort({"id": 1, "name": name})
    for i in members:
        sync.add_member(
            "cohort_members",
            {
                "cohort_id": 1,
                "cohort_name": name,
                "distinct_id": f"d{i}",
                "external_id": f"user-{i:08d}",
            },
        )
    sync.snapshot_complete("cohort_members")
    sync.finish()
    summary = sync.summary()
    sync.close()
    return time.perf_counter() - started, summary


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print one JSON line (run_all.py)")
    args = parser.parse_args()
    BrazeClient.users_track = fake_track  # type: ignore[method-assign]
    n = args.members
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.sqlite3"
        first, s1 = run(ledger, range(n), "Power users")
        sizes_first = list(SIZES)
        SIZES.clear()
        churn = n // 20
        second, s2 = run(ledger, range(churn, n + churn), "Power users")
        sizes = sizes_first + SIZES
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        full = sum(1 for x in sizes if x == 75) / max(len(sizes), 1)
        c1 = s1["cohorts"][("cohort_members", "1")]
        c2 = s2["cohorts"][("cohort_members", "1")]
        if args.json:
            figures = {"first": first, "second": second, "rss_mb": rss_mb, "full": full}
            print(json.dumps({**figures, "requests": len(sizes), "members": n}))
            return
        print(f"members:                 {n:,}")
        print(
            f"first sync (all adds):   {first:.1f} s, {c1['added']:,} added, "
            f"{s1['requests']:,} requests"
        )
        print(
            f"second sync (5%/5%):     {second:.1f} s, {c2['added']:,} added, "
            f"{c2['removed']:,} removed, {s2['requests']:,} requests"
        )
        print(f"peak RSS:                {rss_mb:.0f} MB")
        print(f"requests full (75 objs): {full:.2%} of {len(sizes):,}")
        print(f"ledger size:             {ledger.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
