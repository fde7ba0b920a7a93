"""What Braze holds: each user's cohort attribute, read with ``/users/export/ids``.

Requests go through target-braze's :class:`~target_braze.client.BrazeClient` (the shared retry
loop, 429 handling by ``X-RateLimit-Reset``) with one
:class:`~braze_mixpanel_common.ratelimit.RateLimiter` sized to the endpoint's own limit (250
requests a minute by default). Each request carries at most 50 ids and asks only for
``custom_attributes`` (Braze's ``fields_to_export`` name for every custom attribute; a single
custom attribute cannot be named there).
"""

from __future__ import annotations

from collections.abc import Iterable

from target_braze.client import EXPORT_IDS_MAX, BrazeClient

FIELDS = ["custom_attributes"]


def cohort_names(
    client: BrazeClient, attribute: str, external_ids: Iterable[str]
) -> dict[str, set[str]]:
    """Every asked user Braze knows -> the values of ``attribute`` it holds (maybe none).

    A user Braze does not know (``invalid_user_ids``) is left out: it holds nothing.
    """
    ids = list(dict.fromkeys(external_ids))
    held: dict[str, set[str]] = {}
    for start in range(0, len(ids), EXPORT_IDS_MAX):
        outcome = client.export_ids(ids[start : start + EXPORT_IDS_MAX], FIELDS)
        for user in outcome.body.get("users") or []:
            if not isinstance(user, dict) or user.get("external_id") is None:
                continue
            custom = user.get("custom_attributes")
            value = custom.get(attribute) if isinstance(custom, dict) else None
            values = value if isinstance(value, list) else [] if value is None else [value]
            held[str(user["external_id"])] = {str(v) for v in values}
    return held
