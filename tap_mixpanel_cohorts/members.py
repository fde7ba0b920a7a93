"""Turning one ``engage`` result into a ``cohort_members`` record: the Braze id resolution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from braze_mixpanel_common.cohorts import COHORT_ID, COHORT_NAME, DISTINCT_ID, EXTERNAL_ID

SKIP_NO_DISTINCT_ID = "no $distinct_id"
SKIP_NO_EXTERNAL_ID = "no user id property"


def id_string(value: Any) -> str | None:
    """An identifier as a string: ints stay exact, blanks and containers count as missing."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value) if value.is_integer() else value
    text = str(value).strip()
    return text or None


def resolve_external_id(
    properties: dict[str, Any],
    distinct_id: str,
    user_id_property: str,
    fallback_to_distinct_id: bool,
) -> str | None:
    """The Braze ``external_id`` of a member, or ``None`` when the member must be skipped.

    The value of ``user_id_property`` wins; without it the ``distinct_id`` is used when
    ``fallback_to_distinct_id`` is set.
    """
    external_id = id_string(properties.get(user_id_property))
    if external_id is None and fallback_to_distinct_id:
        return distinct_id
    return external_id


def member_record(
    result: dict[str, Any],
    cohort_id: int,
    cohort_name: str,
    *,
    user_id_property: str,
    fallback_to_distinct_id: bool,
    output_properties: Sequence[str],
) -> tuple[dict[str, Any] | None, str | None]:
    """Build the record for one ``engage`` result.

    Returns:
        ``(record, None)``, or ``(None, reason)`` when the member is skipped.
    """
    distinct_id = id_string(result.get("$distinct_id"))
    if distinct_id is None:
        return None, SKIP_NO_DISTINCT_ID
    properties = result.get("$properties")
    if not isinstance(properties, dict):
        properties = {}
    external_id = resolve_external_id(
        properties, distinct_id, user_id_property, fallback_to_distinct_id
    )
    if external_id is None:
        return None, SKIP_NO_EXTERNAL_ID
    record: dict[str, Any] = {
        COHORT_ID: cohort_id,
        COHORT_NAME: cohort_name,
        DISTINCT_ID: distinct_id,
        EXTERNAL_ID: external_id,
    }
    for name in output_properties:
        record[name] = properties.get(name)
    return record, None


def delivered_ids(
    member: Any, *, user_id_property: str, fallback_to_distinct_id: bool
) -> tuple[str | None, str | None, str | None]:
    """``(distinct_id, external_id, skip reason)`` of one member of a cohort-sync delivery.

    A webhook member carries ``mixpanel_distinct_id`` and the exported properties by name at the
    top level; the Braze id is resolved as for an ``engage`` result.
    """
    if not isinstance(member, dict):
        return None, None, SKIP_NO_DISTINCT_ID
    distinct_id = id_string(member.get("mixpanel_distinct_id"))
    if distinct_id is None:
        return None, None, SKIP_NO_DISTINCT_ID
    external_id = resolve_external_id(
        member, distinct_id, user_id_property, fallback_to_distinct_id
    )
    if external_id is None:
        return distinct_id, None, SKIP_NO_EXTERNAL_ID
    return distinct_id, external_id, None
