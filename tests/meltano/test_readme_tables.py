"""The docs stay in step with the plugins and with each other (tools/sync_docs.py).

Each plugin page's two settings tables match the plugin's ``--about``; the README links only to
docs pages that exist, and stays short.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tools import sync_docs
from tools.about import PLUGINS, ROOT, own_settings

README = ROOT / "README.md"
README_MAX_LINES = 250


def test_docs_tables_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert sync_docs.main(["--check"]) == 0, capsys.readouterr().out


def test_check_fails_on_a_stale_table_and_sync_fixes_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for plugin in PLUGINS:
        shutil.copy(sync_docs.page(plugin), sync_docs.page(plugin, docs))
    plugin = PLUGINS[-1]
    page = sync_docs.page(plugin, docs)
    current = page.read_text(encoding="utf-8")
    stale = re.sub(
        rf"(<!-- BEGIN SDK SETTINGS: {plugin} -->\n).*?(<!-- END SDK SETTINGS: {plugin} -->)",
        r"\1| Setting |\n|:--|\n| gone |\n\2",
        current,
        flags=re.S,
    )
    assert stale != current
    page.write_text(stale, encoding="utf-8")

    assert sync_docs.main(["--check", "--docs", str(docs)]) == 1
    assert page.read_text(encoding="utf-8") == stale  # --check never writes
    assert sync_docs.main(["--docs", str(docs)]) == 0
    assert sync_docs.main(["--check", "--docs", str(docs)]) == 0
    assert page.read_text(encoding="utf-8") == current


def test_check_fails_when_a_page_has_no_markers(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for plugin in PLUGINS:
        sync_docs.page(plugin, docs).write_text(f"# {plugin}\n", encoding="utf-8")
    assert sync_docs.main(["--check", "--docs", str(docs)]) == 1
    assert sync_docs.main(["--docs", str(docs)]) == 1


def test_own_and_sdk_settings_are_split_by_the_plugin_class() -> None:
    plugin = "target-braze"
    tables = sync_docs.plugin_tables(plugin)
    own, sdk = tables[sync_docs.OWN], tables[sync_docs.SDK]
    for name in own_settings(plugin):
        assert f"| `{name}` |" in own and f"| `{name}` |" not in sdk
    assert "| `rest_endpoint` | yes |" in own
    for name in ("load_method", "batch_size_rows", "stream_maps", "flattening_enabled"):
        assert f"| `{name}` |" in sdk and f"| `{name}` |" not in own
    assert "Allowed: `attributes`, `partner_cohorts`." in own


def test_limits_and_escaping() -> None:
    schema = {
        "properties": {
            "size": {"type": ["integer"], "default": 10, "minimum": 1, "maximum": 2000},
            "floor": {"type": ["number"], "minimum": 0},
            "pick": {"type": ["string", "null"], "enum": ["a", "b", None], "description": "x|y"},
        }
    }
    table = sync_docs.settings_table(schema["properties"], ["size"])
    dash = sync_docs.NONE
    assert f"| `size` | yes | `10` | Range: 1{sync_docs.EN_DASH}2000. |" in table
    assert f"| `floor` | no | {dash} | Range: at least 0. |" in table
    assert f"| `pick` | no | {dash} | x\\|y Allowed: `a`, `b`. |" in table


def _readme_doc_links() -> list[str]:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#")[0] for t in targets if t.split("#")[0].startswith(("docs/", "./docs/"))]


def test_readme_links_to_docs_resolve() -> None:
    links = _readme_doc_links()
    for plugin in PLUGINS:
        assert f"docs/{plugin}.md" in links, f"README does not link to docs/{plugin}.md"
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert not missing, f"README links to missing files: {missing}"


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"
