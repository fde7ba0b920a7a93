"""Braze Currents event types and their Singer stream names, shared by the tap and the target.

`currents_catalogue.json` lists, for every Currents event type Braze documents (plus the retired
News Feed card events), its fields and Avro types.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


def stream_name(event_type: str) -> str:
    """`users.behaviors.CustomEvent` -> `users_behaviors_customevent`."""
    return event_type.replace(".", "_").lower()


@cache
def known_event_types() -> dict[str, list[list[Any]]]:
    """Event type -> list of `[field, avro type]`, as in the catalogue file."""
    text = resources.files(__package__).joinpath("currents_catalogue.json").read_text("utf-8")
    return json.loads(text)
