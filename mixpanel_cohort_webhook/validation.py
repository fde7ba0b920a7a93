"""Is a webhook body Mixpanel's cohort-sync format? The first problem found, named for the sender.

Only what the spool and the tap rely on is checked: the action, the cohort and session ids, the
page numbers and a list of member objects. Other fields (names, descriptions, exported
properties) are stored as received.
"""

from __future__ import annotations

from typing import Any

from braze_mixpanel_common.cohort_spool import ACTIONS


class WebhookFormatError(ValueError):
    """The body is not Mixpanel's cohort-sync format; the message says which field is wrong."""


def validate_body(body: Any) -> dict[str, Any]:
    """Return ``body`` when it is a cohort-sync page; raise :class:`WebhookFormatError` if not."""
    if not isinstance(body, dict):
        raise WebhookFormatError("the body must be a JSON object")
    action = body.get("action")
    if action not in ACTIONS:
        raise WebhookFormatError(
            f"unknown action {_show(action)}: expected one of {', '.join(ACTIONS)}"
        )
    parameters = body.get("parameters")
    if not isinstance(parameters, dict):
        raise WebhookFormatError("'parameters' must be an object")
    for name in ("mixpanel_cohort_id", "mixpanel_session_id"):
        _require_id(parameters, name)
    _check_page_info(parameters.get("page_info"))
    members = parameters.get("members")
    if not isinstance(members, list):
        raise WebhookFormatError("'parameters.members' must be a list")
    for index, member in enumerate(members):
        if not isinstance(member, dict):
            raise WebhookFormatError(f"'parameters.members[{index}]' must be an object")
    return body


def _require_id(parameters: dict[str, Any], name: str) -> None:
    value = parameters.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise WebhookFormatError(f"'parameters.{name}' is missing or empty")


def _check_page_info(page_info: Any) -> None:
    if not isinstance(page_info, dict):
        raise WebhookFormatError("'parameters.page_info' must be an object")
    numbers = {}
    for name in ("total_pages", "page_count"):
        value = page_info.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise WebhookFormatError(f"'parameters.page_info.{name}' must be an integer")
        numbers[name] = value
    total, page = numbers["total_pages"], numbers["page_count"]
    if total < 1:
        raise WebhookFormatError(f"'parameters.page_info.total_pages' is {total}: must be >= 1")
    if not 1 <= page <= total:
        raise WebhookFormatError(
            f"'parameters.page_info.page_count' is {page}: must be between 1 and {total}"
        )


def _show(value: Any) -> str:
    """A short, safe rendering of a field value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
