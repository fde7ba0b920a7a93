"""README settings tables stay in step with each plugin's ``--about`` (tools/sync_readme.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import sync_readme
from tools.about import PLUGINS, about


def test_readme_tables_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    text = sync_readme.README.read_text(encoding="utf-8")
    if "<!-- BEGIN SETTINGS:" not in text:
        pytest.skip("README.md has no settings markers yet")
    assert sync_readme.main(["--check"]) == 0, capsys.readouterr().out


def test_check_fails_on_a_stale_table_and_sync_fixes_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    plugin = PLUGINS[-1]
    readme.write_text(
        f"intro\n<!-- BEGIN SETTINGS: {plugin} -->\n| Setting |\n|:--|\n| gone |\n"
        f"<!-- END SETTINGS: {plugin} -->\noutro\n",
        encoding="utf-8",
    )
    assert sync_readme.main(["--check", "--readme", str(readme)]) == 1
    assert sync_readme.main(["--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert sync_readme.main(["--check", "--readme", str(readme)]) == 0
    assert text.startswith("intro\n") and text.endswith("outro\n")
    table = sync_readme.settings_table(about(plugin, "markdown"))
    assert table in text and "| gone |" not in text
    assert "| rest_endpoint | True |" in table
