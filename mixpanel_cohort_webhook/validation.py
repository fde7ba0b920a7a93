"""Is a webhook body Mixpanel's cohort-sync format? The first problem found, named for the sender.

A 400 pauses Mixpanel's sync until a person resumes it, so only a body that cannot be Mixpanel's
is refused: not an object, an unknown ``action``, no cohort or session id, members that are not
objects, page numbers that contradict each other, and bodies beyond the stated bounds (an id
over 255 characters, a page number over 100,000, values nested deeper than 16 levels).
Everything Mixpanel may send passes: empty calls in any ``page_info`` shape
(``{total_pages, page_count}`` ``{1, 1}`` without members, ``{0, 0}``, ``{0, 1}``, ``{1, 0}``,
absent), ``members`` absent or null on such a call, unknown fields, members without the exported
property. Other fields are stored as received.
"""

from __future__ import annotations

from typing import Any

from braze_mixpanel_common.cohort_spool import ACTIONS, MAX_PAGES

MAX_ID_LENGTH = 255
MAX_DEPTH = 16
"""Deepest nesting below the body accepted (Mixpanel's pages are 4 levels deep)."""


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
    members = parameters.get("members")
    if members is None:
        members = parameters["members"] = []
    _check_page_info(parameters.get("page_info"), members)
    if not isinstance(members, list):
        raise WebhookFormatError("'parameters.members' must be a list")
    for index, member in enumerate(members):
        if not isinstance(member, dict):
            raise WebhookFormatError(f"'parameters.members[{index}]' must be an object")
        _check_depth(member, 4, f"parameters.members[{index}]")
    for name, value in parameters.items():
        if name != "members":
            _check_depth(value, 3, f"parameters.{name}")
    for name, value in body.items():
        if name != "parameters":
            _check_depth(value, 2, name)
    return body


def _require_id(parameters: dict[str, Any], name: str) -> None:
    value = parameters.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise WebhookFormatError(f"'parameters.{name}' is missing or empty")
    if len(str(value)) > MAX_ID_LENGTH:
        raise WebhookFormatError(
            f"'parameters.{name}' is {len(str(value))} characters long: at most "
            f"{MAX_ID_LENGTH} are accepted"
        )


def _check_page_info(page_info: Any, members: Any) -> None:
    """Page numbers: absent, 0 or "0 of 1" on an empty call; else 1 <= page_count <= total."""
    if page_info is None:
        return
    if not isinstance(page_info, dict):
        raise WebhookFormatError("'parameters.page_info' must be an object")
    numbers = {}
    for name in ("total_pages", "page_count"):
        value = page_info.get(name, 0)
        if isinstance(value, str) and value.isdigit():
            value = page_info[name] = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise WebhookFormatError(f"'parameters.page_info.{name}' must be a whole number")
        if value > MAX_PAGES:
            raise WebhookFormatError(
                f"'parameters.page_info.{name}' is {value}: at most {MAX_PAGES} is accepted"
            )
        numbers[name] = value
    total, page = numbers["total_pages"], numbers["page_count"]
    if total == 1 and page == 0 and not members:
        page_info["total_pages"] = 0  # "page 0 of 1" of an empty call: stored as the one page
        return
    if total == 0:
        if page > 1:
            raise WebhookFormatError(
                f"'parameters.page_info.page_count' is {page} with total_pages 0"
            )
        return
    if not 1 <= page <= total:
        raise WebhookFormatError(
            f"'parameters.page_info.page_count' is {page}: must be between 1 and {total}"
        )


def _check_depth(value: Any, depth: int, where: str) -> None:
    """Refuse ``value`` if it nests deeper than :data:`MAX_DEPTH` (``depth``: its own level)."""
    if not isinstance(value, dict | list):
        return
    if depth > MAX_DEPTH:
        raise WebhookFormatError(f"'{where}' is nested deeper than {MAX_DEPTH} levels")
    children = value.values() if isinstance(value, dict) else value
    for child in children:
        if isinstance(child, dict | list):
            _check_depth(child, depth + 1, where)


def _show(value: Any) -> str:
    """A short, safe rendering of a field value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
