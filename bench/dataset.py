"""The benchmarks' shared data, cached under ``bench/out/``.

1. A Braze Currents export written by the project's generator (``sandbox.loop.currents_gen``).
2. ``tap.singer``: what tap-braze-currents emits for it (the Singer input of target-mixpanel).
3. ``events.ndjson``: the Mixpanel events target-mixpanel builds from those records (its
   ``dry_run`` output, byte for byte the request bodies it would send). The comparison tools
   import this file, so all three put the same events into the emulator.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import OUT, REPO, VENV_BIN, measure


@dataclass
class Dataset:
    """Paths and sizes of one prepared data set."""

    root: Path
    currents_events: int
    singer: Path
    ndjson: Path
    mixpanel_events: int


def currents_export(events: int, hours: int = 4, files_per_hour: int = 5) -> Path:
    """Generate (once) a Currents export of about ``events`` events; return its root."""
    root = OUT / f"currents-{events}-{hours}x{files_per_hour}"
    if not (root / "done.json").exists():
        # A child process, so this process never holds the generator's memory.
        command = [sys.executable, "-m", "bench.tap_braze_currents_bench"]
        command += ["--generate-only", "--events", str(events), "--hours", str(hours)]
        command += ["--files-per-hour", str(files_per_hour)]
        subprocess.run(command, check=True, cwd=REPO)
    return root


def prepare(events: int) -> Dataset:
    """Export, tap output and Mixpanel NDJSON for ``events`` Currents events (cached)."""
    root = currents_export(events)
    meta = json.loads((root / "done.json").read_text())
    singer = root / "tap.singer"
    if not singer.exists():
        config = root / "tap-config.json"
        config.write_text(json.dumps({"storage_url": str(root / "currents")}))
        partial = singer.with_suffix(".partial")
        measure([str(VENV_BIN / "tap-braze-currents"), "--config", str(config)], stdout=partial)
        partial.rename(singer)
    ndjson = root / "events.ndjson"
    if not ndjson.exists():
        partial = ndjson.with_suffix(".partial")
        config = root / "dry-run-config.json"
        config.write_text(json.dumps({"dry_run": True, "dry_run_path": str(partial)}))
        measure([str(VENV_BIN / "target-mixpanel"), "--config", str(config)], stdin=singer)
        partial.rename(ndjson)
    with ndjson.open("rb") as handle:
        lines = sum(1 for _ in handle)
    return Dataset(root, meta["events"], singer, ndjson, lines)


if __name__ == "__main__":
    data = prepare(int(sys.argv[1]) if len(sys.argv) > 1 else 1_200_000)
    print(data)
