"""Removing secrets from any text before it is logged, raised or written to a file."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "***REDACTED***"
# Shorter values are too likely to occur by chance in ordinary text.
_MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced, as is and URL-quoted (as an echoed URL holds it)."""
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            continue
        text = text.replace(secret, REDACTED)
        quoted = quote(secret, safe="")
        if quoted != secret:
            text = text.replace(quoted, REDACTED)
    return text
