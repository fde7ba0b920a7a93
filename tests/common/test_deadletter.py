"""The one dead-letter line shape, owner-only files; the dry-run writer."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import stat
import sys

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


def test_dry_run_writes_lines_to_a_file_emptied_first_or_appended(tmp_path):
    out = tmp_path / "dry.txt"
    out.write_bytes(b"old\n")
    writer = DryRunWriter(str(out), "stdout")
    writer.write("one")
    writer.write(b"two\nthree")
    writer.close()
    assert out.read_bytes() == b"one\ntwo\nthree\n" and writer.count == 2
    writer = DryRunWriter(str(out), "stdout", append=True)
    writer.write("four")
    writer.close()
    assert out.read_bytes() == b"one\ntwo\nthree\nfour\n"


def test_dry_run_without_a_file_writes_to_the_standard_stream_of_the_moment(monkeypatch):
    writer = DryRunWriter("-", "stderr")
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stream)
    writer.write("x")
    writer.close()
    assert stream.buffer.getvalue() == b"x\n" and not stream.closed
