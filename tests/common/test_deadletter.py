"""The one dead-letter line shape, owner-only files; the dry-run writer."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import stat

from braze_mixpanel_common.deadletter import DeadLetter, DeadLetterFile
from braze_mixpanel_common.dryrun import DryRunWriter


def test_dead_letter_lines_have_the_documented_fields(tmp_path):
    path = tmp_path / "sub" / "dead.jsonl"
    letters = DeadLetterFile(path, "target-x")
    letters.write(
        DeadLetter(
            stream="s",
            reason="rejected",
            message="nope",
            status=400,
            field="time",
            endpoint="/import",
            record={"n": decimal.Decimal("1.5"), "when": dt.date(2026, 1, 1)},
            payload={"event": "e"},
        )
    )
    letters.close()
    line = json.loads(path.read_text())
    assert list(line) == [
        "at", "plugin", "stream", "reason", "message", "status", "field", "endpoint", "record",
        "payload",
    ]  # fmt: skip
    assert line["plugin"] == "target-x" and line["record"] == {"n": 1.5, "when": "2026-01-01"}
    assert dt.datetime.fromisoformat(line["at"]).tzinfo is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert letters.count == 1


def test_dry_run_writes_lines_to_a_file_or_the_fallback_stream(tmp_path):
    out = tmp_path / "dry.txt"
    writer = DryRunWriter(str(out), io.BytesIO())
    writer.write("one")
    writer.write(b"two\nthree")
    writer.close()
    assert out.read_bytes() == b"one\ntwo\nthree\n" and writer.count == 2
    stream = io.BytesIO()
    writer = DryRunWriter("-", stream)
    writer.write("x")
    writer.close()
    assert stream.getvalue() == b"x\n" and not stream.closed
