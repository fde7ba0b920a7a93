"""Removing secrets from any text before it is logged, raised or written to a file."""

from __future__ import annotations

import logging
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


class RedactingFilter(logging.Filter):
    """Removes secrets from every log record a handler emits, whichever library logged it.

    Storage and HTTP clients log request details at debug level (botocore logs the signed
    ``Authorization`` header, which names the access key id); with this filter on the handlers
    no secret reaches the log, even at debug.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and exception text) without the secrets."""
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def redact_logs(secrets: Iterable[str | None]) -> None:
    """Install a :class:`RedactingFilter` on every handler of the root logger (idempotent)."""
    log_filter = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(log_filter)
