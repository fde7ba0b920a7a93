"""A published ledger's identity and generation, in the ledger file and in the Singer state.

Each publish stamps the ledger with an identity (a random id given at its first publish) and a
generation (+1 per publish), in its ``target_braze_meta`` table; the target adds the same mark to
the state it writes, under :data:`STATE_KEY` inside ``bookmarks`` (SDK taps keep every
``bookmarks`` entry of their input state and re-emit it, so the mark survives ``meltano run``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

STATE_KEY = "_target_braze_ledger"
"""The ``bookmarks`` entry holding the ledger's identity and generation."""
META_TABLE = "target_braze_meta"
"""The ledger's table holding its mark (and each upload's publish id)."""


@dataclass(frozen=True)
class LedgerMark:
    """A published ledger's identity, generation and size."""

    ledger_id: str
    generation: int
    memberships: int
    published_at: str

    def to_state(self) -> dict[str, Any]:
        """The mark as stored in the Singer state."""
        return {
            "ledger_id": self.ledger_id,
            "generation": self.generation,
            "memberships": self.memberships,
            "published_at": self.published_at,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> LedgerMark | None:
        """The mark recorded in a Singer state, or None (first run, or not recorded)."""
        raw = ((state or {}).get("bookmarks") or {}).get(STATE_KEY)
        if not isinstance(raw, dict) or not raw.get("ledger_id"):
            return None
        return cls(
            str(raw["ledger_id"]),
            int(raw.get("generation") or 0),
            int(raw.get("memberships") or 0),
            str(raw.get("published_at") or "?"),
        )

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> LedgerMark:
        """The mark in a ledger's meta table (no identity, generation 0 when it has none)."""
        return cls(
            meta.get("ledger_id", ""),
            int(meta.get("generation", 0)),
            int(meta.get("memberships", 0)),
            meta.get("published_at", "?"),
        )

    def describe(self) -> str:
        """For messages: which ledger, which generation, when, how big."""
        return (
            f"ledger {self.ledger_id} generation {self.generation} (published "
            f"{self.published_at}, {self.memberships} memberships)"
        )


def with_mark(state: dict[str, Any] | None, mark: LedgerMark) -> dict[str, Any]:
    """A copy of ``state`` recording ``mark``."""
    new = copy.deepcopy(state) if state else {}
    new.setdefault("bookmarks", {})[STATE_KEY] = mark.to_state()
    return new
