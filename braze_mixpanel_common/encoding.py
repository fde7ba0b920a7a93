"""JSON for request bodies, dry-run lines and dead letters (Decimals, datetimes, sets)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any


def _json_default(value: Any) -> Any:
    """Encode what ``json`` cannot: Decimal as int or float, dates as ISO 8601, sets as lists."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _lenient_default(value: Any) -> Any:
    try:
        return _json_default(value)
    except TypeError:
        return str(value)


def dumps(value: Any, *, lenient: bool = False) -> str:
    """Compact JSON, non-ASCII kept as is; ``lenient`` writes unknown types as ``str(value)``."""
    default = _lenient_default if lenient else _json_default
    return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)
