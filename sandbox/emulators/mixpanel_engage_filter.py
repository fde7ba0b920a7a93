"""The ``engage`` id filters of the Mixpanel emulator: ``distinct_ids`` and a ``where`` subset.

Mixpanel's Query Profiles (https://developer.mixpanel.com/reference/engage-query) takes
``distinct_ids`` (a JSON array of distinct ids) and ``where`` (a segmentation expression); both
combine with ``filter_by_cohort``, so a cohort's membership of a few users costs one query.
The expression language is large; the emulator understands the form a reconciliation needs, a
disjunction of equalities on one profile property::

    properties["$braze_external_id"] == "u1" or properties["$braze_external_id"] == 12

Values compare typed, as Mixpanel's expressions do: a string literal matches a string property,
a number literal a numeric one (12 matches 12.0). It answers 400 for any other expression, so a
client that relies on more fails loudly here instead of passing against a lenient double.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_STRING = r'"(?:[^"\\]|\\.)*"'
_NUMBER = r"-?\d+(?:\.\d+)?"
_TERM = re.compile(rf"\s*\(?\s*properties\[({_STRING})\]\s*==\s*({_STRING}|{_NUMBER})\s*\)?\s*")
_OR = re.compile(r"\bor\b")


class FilterError(ValueError):
    """A filter Mixpanel (or this emulator) answers with 400; the message is the body's error."""


@dataclass(frozen=True)
class IdFilter:
    """Which profiles an engage request keeps: by distinct id and/or property equality."""

    distinct_ids: frozenset[str] | None
    equals: frozenset[tuple[str, str | float]] | None

    def keeps(self, distinct_id: Any, properties: Mapping[str, Any]) -> bool:
        """True when the profile passes both filters (an absent filter passes everything)."""
        if self.distinct_ids is not None and str(distinct_id) not in self.distinct_ids:
            return False
        if self.equals is None:
            return True
        return any(_same(properties.get(name), value) for name, value in self.equals)


def _same(found: Any, literal: str | float) -> bool:
    if isinstance(literal, str):
        return isinstance(found, str) and found == literal
    return isinstance(found, int | float) and not isinstance(found, bool) and found == literal


def _where_terms(expression: str) -> frozenset[tuple[str, str | float]]:
    terms = set()
    for part in _OR.split(expression):
        match = _TERM.fullmatch(part)
        if match is None:
            raise FilterError(
                "where: this emulator understands only "
                "'properties[\"name\"] == \"value\"' terms joined by 'or'"
            )
        value = json.loads(match.group(2))
        terms.add((json.loads(match.group(1)), value if isinstance(value, str) else float(value)))
    return frozenset(terms)


def id_filter(params: Mapping[str, str]) -> IdFilter | None:
    """The request's ``distinct_ids`` / ``where`` filter, or None without either."""
    raw_ids = params.get("distinct_ids")
    where = params.get("where")
    if not raw_ids and not where:
        return None
    ids: frozenset[str] | None = None
    if raw_ids:
        try:
            parsed = json.loads(raw_ids)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list):
            raise FilterError("distinct_ids must be a JSON array of distinct ids")
        ids = frozenset(str(i) for i in parsed)
    return IdFilter(ids, _where_terms(where) if where else None)
