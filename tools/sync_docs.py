"""Regenerate the two settings tables on each plugin's page, docs/<plugin>.md, from ``--about``.

Each page holds two generated tables, built from ``<plugin> --about --format=json``:

- the plugin's own settings (the properties of the plugin class's ``config_jsonschema``),
  between ``<!-- BEGIN SETTINGS: <plugin> -->`` and ``<!-- END SETTINGS: <plugin> -->``;
- the settings the Singer SDK adds for its built-in capabilities (every other property),
  between ``<!-- BEGIN SDK SETTINGS: <plugin> -->`` and ``<!-- END SDK SETTINGS: <plugin> -->``.

Only the text between the markers is rewritten; everything else on the page is hand-written.

    python tools/sync_docs.py          # rewrite the tables in docs/
    python tools/sync_docs.py --check  # exit 1 when a table is out of date or missing
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.about import PLUGINS, ROOT, about_json, own_settings

DOCS = ROOT / "docs"
OWN = "SETTINGS"
SDK = "SDK SETTINGS"
EN_DASH = "\u2013"
NONE = EN_DASH  # the cell for no default or no description
HEADER = "| Setting | Required | Default | Description |\n|:--|:--:|:--|:--|\n"


def page(plugin: str, docs: Path = DOCS) -> Path:
    """The plugin's documentation page."""
    return docs / f"{plugin}.md"


def _cell(text: str) -> str:
    """Text that is safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{_cell(text)}`" if text else '`""`'


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def limits(schema: dict[str, Any]) -> list[str]:
    """Sentences for the allowed values and the numeric range of a property, if it has them."""
    notes = []
    for prefix, spec in (("Allowed", schema), ("Allowed items", schema.get("items") or {})):
        values = [v for v in spec.get("enum") or [] if v is not None]
        if values:
            notes.append(f"{prefix}: {', '.join(_code(v) for v in values)}.")
    if "minimum" in schema and "maximum" in schema:
        notes.append(f"Range: {_number(schema['minimum'])}{EN_DASH}{_number(schema['maximum'])}.")
    else:
        words = {
            "minimum": "at least",
            "exclusiveMinimum": "above",
            "maximum": "at most",
            "exclusiveMaximum": "below",
        }
        bounds = [f"{w} {_number(schema[k])}" for k, w in words.items() if k in schema]
        if bounds:
            notes.append(f"Range: {' and '.join(bounds)}.")
    return notes


def _rows(properties: dict[str, Any], required: list[str], parent: str = "") -> list[str]:
    rows = []
    for name, schema in properties.items():
        setting = f"{parent}.{name}" if parent else name
        description = " ".join(
            [schema.get("description", "").strip(), *limits(schema)]
            + (["Marked secret."] if schema.get("secret") else [])
        ).strip()
        default = _code(schema["default"]) if "default" in schema else NONE
        rows.append(
            f"| `{setting}` | {'yes' if name in required else 'no'} | {default} "
            f"| {_cell(description) or NONE} |"
        )
        if "properties" in schema:
            rows += _rows(schema["properties"], schema.get("required") or [], setting)
    return rows


def settings_table(properties: dict[str, Any], required: list[str]) -> str:
    """A Markdown table: Setting | Required | Default | Description, nested settings dotted."""
    return HEADER + "".join(row + "\n" for row in _rows(properties, required))


@functools.cache
def plugin_tables(plugin: str) -> dict[str, str]:
    """The plugin's two tables, keyed by marker kind (``SETTINGS`` and ``SDK SETTINGS``).

    Cached: ``--about`` runs once per plugin and process.
    """
    settings = about_json(plugin)["settings"]
    required = settings.get("required") or []
    own_names = set(own_settings(plugin))
    own = {k: v for k, v in settings["properties"].items() if k in own_names}
    sdk = {k: v for k, v in settings["properties"].items() if k not in own_names}
    return {OWN: settings_table(own, required), SDK: settings_table(sdk, required)}


def _markers(kind: str, plugin: str) -> re.Pattern[str]:
    name = re.escape(plugin)
    return re.compile(rf"(<!-- BEGIN {kind}: {name} -->\n)(.*?)(<!-- END {kind}: {name} -->)", re.S)


def render(text: str, plugin: str, tables: dict[str, str]) -> tuple[str, list[str]]:
    """Return ``text`` with the plugin's tables replaced, and the marker kinds it lacks."""
    missing = []
    for kind, table in tables.items():
        match = _markers(kind, plugin).search(text)
        if match is None:
            missing.append(kind)
            continue
        text = text[: match.start(2)] + table + text[match.end(2) :]
    return text, missing


def main(argv: list[str] | None = None) -> int:
    """Rewrite the tables in docs/, or with ``--check`` report whether they are current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a table is out of date")
    parser.add_argument("--docs", type=Path, default=DOCS, help="folder of the plugin pages")
    args = parser.parse_args(argv)
    stale, problems = [], []
    for plugin in PLUGINS:
        path = page(plugin, args.docs)
        if not path.exists():
            problems.append(f"{path} is missing")
            continue
        current = path.read_text(encoding="utf-8")
        fresh, missing = render(current, plugin, plugin_tables(plugin))
        problems += [f"{path}: no '<!-- BEGIN {kind}: {plugin} -->' markers" for kind in missing]
        if fresh != current:
            stale.append(plugin)
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    for problem in problems:
        print(problem)
    if args.check:
        if stale:
            print(f"settings tables out of date for {', '.join(stale)}: run `make docs`.")
        elif not problems:
            print(f"settings tables up to date ({len(PLUGINS)} plugin pages).")
    else:
        print(f"updated: {', '.join(stale) or 'nothing'}")
    return 1 if problems or (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
