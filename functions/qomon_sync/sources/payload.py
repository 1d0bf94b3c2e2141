"""Reading a webhook body: JSON, then typed access that names the field at fault.

Every refusal is a BadPayload whose `field` is the path in the body (`form_response.token`,
`[2].email`, `data.fields[3].value`), and whose detail never repeats a value: bodies carry
personal data, and problem answers end up in logs.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from qomon_sync.sources.base import BadPayload

ROOT = ""
"""The path of the body itself; shown as `body`."""

_EVENT_ID_TEXT = re.compile(r"^[\x21-\x7e]{1,100}$")
"""What a sender's id may look like to become part of a change event's `event_id`."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8 text", field="body") from None
    try:
        # NaN and Infinity are not JSON; Python would otherwise let them through as floats.
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise BadPayload(f"the body is not JSON{where}", field="body") from None


def at(path: str, key: str | int) -> str:
    """`path` one level down: `a.b`, `a[3]`, `[3]` at the root."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def shown(path: str) -> str:
    return path or "body"


def bad(path: str, problem: str) -> BadPayload:
    return BadPayload(f"`{shown(path)}` {problem}", field=shown(path))


def as_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(path, "must be an object" if value is not None else "is missing")
    return value


def as_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad(path, "must be a list" if value is not None else "is missing")
    return value


def as_text(value: Any, path: str) -> str:
    if value is None:
        raise bad(path, "is missing")
    if not isinstance(value, str):
        raise bad(path, "must be text")
    return value


def as_optional_text(value: Any, path: str) -> str | None:
    return None if value is None else as_text(value, path)


def as_number(value: Any, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(path, "must be a number")
    return value


def as_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise bad(path, "must be true or false")
    return value


def as_instant(value: Any, path: str) -> datetime:
    """An aware datetime from ISO 8601 text; a time without a zone is taken as UTC (the
    senders here all document UTC)."""
    text = as_text(value, path)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise bad(path, "is not an ISO 8601 date and time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_sender_id(value: Any, path: str) -> str:
    """A sender's id that becomes part of an `event_id` (printable ASCII, no blanks)."""
    text = as_text(value, path)
    if not _EVENT_ID_TEXT.match(text):
        raise bad(path, "is not an id (printable ASCII without blanks, at most 100 characters)")
    return text


def is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return all(is_blank(item) for item in value)
    return False
