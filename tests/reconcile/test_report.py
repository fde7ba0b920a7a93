import io
import json

from reconcile.report import EXIT_CLEAN, EXIT_DRIFT, Report, Row, Threshold, finish, summary


def _report() -> Report:
    return Report(
        check="export-loop",
        checked=100,
        rows=[
            Row({"event": "Purchase", "hour": "2026-05-01T13"}, {"expected": 60, "found": 60}, 0),
            Row(
                {"event": "Email Send", "hour": "2026-05-01T13"},
                {"expected": 40, "found": 37},
                3,
                {"missing": ["a", "b"]},
            ),
        ],
        details={"queries": 1},
    )


def test_summary_counts_drift_and_names_the_rows(tmp_path):
    out = io.StringIO()
    path = tmp_path / "summary.json"
    assert (
        finish(_report(), Threshold(), ["expected", "found"], summary_path=path, out=out)
        == EXIT_DRIFT
    )
    written = json.loads(path.read_text())
    assert written == summary(_report(), Threshold())
    assert written["drift"] == 3
    assert written["rows_drifted"] == 1
    assert written["passed"] is False
    assert written["queries"] == 1
    assert written["rows"][1] == {
        "event": "Email Send",
        "hour": "2026-05-01T13",
        "expected": 40,
        "found": 37,
        "drift": 3,
        "examples": {"missing": ["a", "b"]},
    }
    assert "Email Send" in out.getvalue()
    assert "PAST THRESHOLD" in out.getvalue()


def test_threshold_absolute_and_ratio():
    assert finish(_report(), Threshold(max_drift=3), ["expected"], out=io.StringIO()) == EXIT_CLEAN
    assert finish(_report(), Threshold(max_ratio=0.03), ["expected"], out=io.StringIO()) == 0
    assert finish(_report(), Threshold(max_ratio=0.02), ["expected"], out=io.StringIO()) == 1
    empty = Report("export-loop", 0, [])
    assert summary(empty, Threshold())["drift_ratio"] == 0.0
    assert finish(empty, Threshold(), ["expected"], out=io.StringIO()) == EXIT_CLEAN
