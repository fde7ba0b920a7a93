"""Regenerate each plugin's settings table in README.md from ``--about --format=markdown``.

Each table sits between ``<!-- BEGIN SETTINGS: <plugin> -->`` and ``<!-- END SETTINGS: <plugin>
-->``; only the text between the markers is rewritten. A plugin without markers is left alone.

    python tools/sync_readme.py          # rewrite README.md
    python tools/sync_readme.py --check  # exit 1 when a table is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.about import PLUGINS, ROOT, about

README = ROOT / "README.md"


def settings_table(markdown: str) -> str:
    """The table under ``## Settings`` of an ``--about --format=markdown`` page."""
    lines = markdown.splitlines()
    try:
        start = lines.index("## Settings")
    except ValueError as exc:
        raise ValueError("no '## Settings' section in the --about output") from exc
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line.rstrip())
        elif table:
            break
    if not table:
        raise ValueError("no settings table under '## Settings'")
    return "\n".join(table) + "\n"


def _markers(plugin: str) -> re.Pattern[str]:
    name = re.escape(plugin)
    return re.compile(
        rf"(<!-- BEGIN SETTINGS: {name} -->\n)(.*?)(<!-- END SETTINGS: {name} -->)", re.S
    )


def render(text: str, tables: dict[str, str]) -> tuple[str, list[str]]:
    """Return ``text`` with the tables replaced, and the plugins that have markers."""
    found = []
    for plugin, table in tables.items():
        pattern = _markers(plugin)
        if pattern.search(text):
            found.append(plugin)
            text = pattern.sub(lambda m, t=table: m.group(1) + t + m.group(3), text)
    return text, found


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md, or with ``--check`` report whether its tables are current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a table is out of date")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    tables = {plugin: settings_table(about(plugin, "markdown")) for plugin in PLUGINS}
    fresh, found = render(current, tables)
    missing = sorted(set(PLUGINS) - set(found))
    if missing:
        print(f"no settings markers for: {', '.join(missing)}")
    stale = [p for p in found if render(current, {p: tables[p]})[0] != current]
    if args.check:
        if stale:
            print(f"README settings out of date for {', '.join(stale)}: run `make readme`.")
            return 1
        print(f"README settings tables up to date ({len(found)} plugins).")
        return 0
    if fresh != current:
        args.readme.write_text(fresh, encoding="utf-8")
    print(f"updated: {', '.join(stale) or 'nothing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
