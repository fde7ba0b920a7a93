"""tap-braze-currents into MeltanoLabs target-csv (PyPI): one file per event type present."""

from __future__ import annotations

import collections
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from braze_mixpanel_common.currents import stream_name
from sandbox.loop.currents_gen import generate_export
from tests.support.harness import ROOT

TYPES = ("users.behaviors.CustomEvent", "users.messages.email.Open", "users.canvas.Entry")


def test_one_csv_per_event_type_present_none_for_absent_types(third_party, tmp_path: Path):
    target_csv = third_party("target-csv")
    export = generate_export(
        tmp_path / "bucket", seed=3, event_types=TYPES, events_per_file=10, corrupt=False
    )
    (tmp_path / "tap.json").write_text(json.dumps({"storage_url": str(export.root / "currents")}))
    out = tmp_path / "csv"
    (tmp_path / "target.json").write_text(json.dumps({"output_path": str(out)}))
    env = {k: v for k, v in os.environ.items() if not k.endswith("LOGLEVEL")}
    tap = subprocess.Popen(
        [sys.executable, "-m", "tap_braze_currents", "--config", str(tmp_path / "tap.json")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    target = subprocess.run(
        [str(target_csv), "--config", str(tmp_path / "target.json")],
        stdin=tap.stdout,
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert tap.wait(60) == 0
    assert target.returncode == 0, target.stderr.decode()[-2000:]

    files = {path.name for path in out.iterdir()}
    assert files == {f"{stream_name(t)}.csv" for t in TYPES}
    expected = collections.Counter(stream_name(t) for t, _ in export.events)
    for name, count in expected.items():
        with (out / f"{name}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == count
