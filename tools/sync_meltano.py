"""Regenerate each plugin's ``capabilities`` and ``settings`` in meltano.yml from ``--about``.

The generated part of each plugin sits between ``# BEGIN GENERATED: <plugin>`` and
``# END GENERATED: <plugin>`` comment lines; everything else in meltano.yml is hand-written.

    python tools/sync_meltano.py          # rewrite meltano.yml
    python tools/sync_meltano.py --check  # exit 1 when meltano.yml is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.about import PLUGINS, ROOT, about_json
from tools.sync_docs import limits

MELTANO_YML = ROOT / "meltano.yml"
INDENT = "    "


def meltano_kind(spec: dict[str, Any]) -> str:
    """Meltano's setting ``kind`` for a JSON-schema property."""
    if spec.get("enum"):
        return "options"
    if spec.get("format") == "date-time":
        return "date_iso8601"
    raw = spec.get("type")
    types = [t for t in (raw if isinstance(raw, list) else [raw]) if t != "null"]
    if len(types) != 1:
        return "string"  # e.g. project_id, a string or an integer
    kind = str(types[0])
    return {"number": "decimal"}.get(kind, kind)


def _replacer(block: str) -> Callable[[re.Match[str]], str]:
    """Keep a marked block's first and last lines; put ``block`` between them."""
    return lambda match: match.group(1) + block + match.group(3)


def setting_entries(about: dict[str, Any], *, with_values: bool = False) -> list[dict[str, Any]]:
    """Meltano ``settings`` entries for every property of a plugin's ``--about`` settings.

    Args:
        about: The plugin's ``--about --format=json`` as a dict.
        with_values: Also give each setting its schema default as ``value`` (the Hub files).
    """
    settings = []
    for name, spec in about["settings"]["properties"].items():
        entry: dict[str, Any] = {"name": name}
        if spec.get("title"):
            entry["label"] = spec["title"]
        entry["kind"] = meltano_kind(spec)
        ranges = [note for note in limits(spec) if note.startswith("Range")]
        entry["description"] = " ".join([spec.get("description") or name, *ranges])
        if with_values and "default" in spec:
            entry["value"] = spec["default"]
        if entry["kind"] == "options":
            entry["options"] = [
                {"label": str(v), "value": v} for v in spec["enum"] if v is not None
            ]
        if spec.get("secret"):
            entry["sensitive"] = True
        settings.append(entry)
    return settings


def generated_block(plugin: str) -> str:
    """The YAML lines (indented for a plugin entry) for ``capabilities`` and ``settings``."""
    about = about_json(plugin)
    body = yaml.safe_dump(
        {"capabilities": about["capabilities"], "settings": setting_entries(about)},
        sort_keys=False,
        allow_unicode=True,
        width=96,
    )
    return "".join(INDENT + line + "\n" if line else "\n" for line in body.splitlines())


def render(text: str) -> str:
    """``text`` (meltano.yml) with every generated block replaced by a fresh one."""
    for plugin in PLUGINS:
        pattern = re.compile(
            rf"(^\s*# BEGIN GENERATED: {re.escape(plugin)}\b[^\n]*\n)(.*?)(^\s*# END GENERATED: "
            rf"{re.escape(plugin)}\b)",
            re.S | re.M,
        )
        if not pattern.search(text):
            raise SystemExit(f"meltano.yml has no '# BEGIN GENERATED: {plugin}' block")
        block = generated_block(plugin)
        text = pattern.sub(_replacer(block), text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite meltano.yml, or with ``--check`` report whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when out of date")
    args = parser.parse_args(argv)
    current = MELTANO_YML.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("meltano.yml is out of date: run `python tools/sync_meltano.py`.")
            return 1
        print("meltano.yml plugin settings are up to date.")
        return 0
    MELTANO_YML.write_text(fresh, encoding="utf-8")
    print("meltano.yml plugin settings regenerated." if fresh != current else "no change.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
