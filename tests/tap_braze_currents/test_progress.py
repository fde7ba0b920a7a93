"""tap-braze-currents: the progress line (files done / total, events/s) and the JSON summary."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from braze_mixpanel_common.progress import Progress, summaries
from sandbox.loop.currents_gen import generate_export
from tap_braze_currents import summary as summary_module
from tap_braze_currents.tap import TapBrazeCurrents

CUSTOM = "users.behaviors.CustomEvent"
STREAM = "users_behaviors_customevent"


def test_progress_per_file_and_a_json_summary(tmp_path: Path, run_tap, caplog, monkeypatch):
    export = generate_export(tmp_path / "bucket", seed=3, events_per_file=20)
    # every file may log (the real interval is a few seconds of the real clock)
    monkeypatch.setattr(summary_module, "Progress", functools.partial(Progress, interval_s=0))
    caplog.set_level("INFO")
    config = {"storage_url": str(export.root / "currents"), "event_types": [CUSTOM]}
    output = run_tap(TapBrazeCurrents, config)
    lines = [r.getMessage() for r in caplog.records if " progress: " in r.getMessage()]
    line = re.compile(rf"tap-braze-currents progress: {STREAM}: (\d+)/(\d+) files done")
    found = [line.match(x) for x in lines]
    assert lines and all(found), lines
    totals = {int(m.group(2)) for m in found if m}
    assert len(totals) == 1 and [int(m.group(1)) for m in found if m] == list(range(totals.pop()))
    assert all(re.search(r"\d+ events/s$", x) for x in lines)
    (summary,) = summaries(caplog.text, "tap-braze-currents")
    assert summary["records"] == len(output.records[STREAM])
    assert summary["corrupt_files"] == 2 and summary["files_already_read"] == 0
    assert summary["files_read"] + summary["corrupt_files"] == len(found)
    assert summary["streams_with_new_fields"] == []
    assert summary["events_per_s"] > 0
