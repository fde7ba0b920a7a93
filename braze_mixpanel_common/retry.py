"""How long to wait before trying again: exponential backoff with jitter and ``Retry-After``."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field


@dataclass
class BackoffPolicy:
    """Exponential backoff: ``initial`` doubling up to ``maximum`` seconds, plus random jitter.

    Defaults follow Mixpanel's advice for 429/502/503: start at 2 s, double to 60 s, add 1-5 s of
    jitter. ``max_attempts`` counts every try, the first included.
    """

    initial: float = 2.0
    maximum: float = 60.0
    jitter: tuple[float, float] = (1.0, 5.0)
    max_attempts: int = 8
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (``attempt`` starts at 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.maximum * 5)
        base = min(self.initial * (2 ** (attempt - 1)), self.maximum)
        return base + self.rng.uniform(*self.jitter)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)
