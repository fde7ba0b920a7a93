"""Braze data points: what one ``/users/track`` attribute object is billed against the account.

Braze bills "any attribute set on an end user profile" as one data point ("Data points",
https://www.braze.com/docs/user_guide/data_and_analytics/data_points/). Counted here, per
attribute object (one user):

- every attribute the object sets (a value, ``null`` to remove it, or a whole array): 1;
- an array attribute changed with ``{"add": [...], "remove": [...]}``: 1 for the ``add`` and
  1 for the ``remove``, each when it lists at least one value (the cohort attribute's joins and
  leaves);
- identifiers (``external_id``, ``user_alias``, ``braze_id``) and request flags (keys starting
  with ``_``, e.g. ``_update_existing_only``): 0.

The count is this plugin's reading of Braze's definition; the contract's own terms decide the
bill (Braze shows the real usage under Settings > Billing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

IDENTIFIERS = frozenset({"external_id", "user_alias", "braze_id"})
ARRAY_OPERATIONS = ("add", "remove")


def data_points(obj: Mapping[str, Any]) -> int:
    """Data points one attribute object consumes."""
    points = 0
    for key, value in obj.items():
        if key in IDENTIFIERS or key.startswith("_"):
            continue
        if isinstance(value, Mapping) and any(op in value for op in ARRAY_OPERATIONS):
            points += sum(1 for op in ARRAY_OPERATIONS if value.get(op))
        else:
            points += 1
    return points


def total(objects: Iterable[Mapping[str, Any]]) -> int:
    """Data points of several attribute objects."""
    return sum(data_points(obj) for obj in objects)
