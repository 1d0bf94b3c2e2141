"""Reading a webhook body: JSON, then typed access that names the field at fault.

Every refusal is a BadPayload whose `field` is the path in the body (`form_response.token`,
`[2].email`, `data.fields[3].value`), and whose detail never repeats a value: bodies carry
personal data, and problem answers end up in logs.

What is parsed is bounded here, for every source: at most MAX_DEPTH levels of nesting
(checked before the parser recurses, so a body a thousand levels deep is a 400, not a
RecursionError), at most MAX_VALUES values (every object, list, key's value and scalar),
and numbers that are numbers (no `1e400` read as infinity, no integer of 5,000 digits).
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from qomon_sync.domain.change_event import not_text_problem
from qomon_sync.sources.base import BadPayload

ROOT = ""
"""The path of the body itself; shown as `body`."""

_EVENT_ID_TEXT = re.compile(r"^[\x21-\x7e]{1,100}$")
"""What a sender's id may look like to become part of a change event's `event_id`."""


MAX_DEPTH = 32
"""Levels of objects and lists; the deepest body a source documents has 8."""
MAX_VALUES = 20_000
"""Values in a body; a large Typeform form, its definition included, has a few thousand."""
MAX_INTEGER_DIGITS = 30

_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class _NotANumber(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _NotANumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotANumber("a number too large for a float")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _NotANumber(f"a number of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8 text", field="body") from None
    _check_depth(text)
    try:
        # NaN and Infinity are not JSON; Python would otherwise let them through as floats.
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except _NotANumber as exc:
        raise BadPayload(f"the body holds {exc}", field="body") from None
    except ValueError as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise BadPayload(f"the body is not JSON{where}", field="body") from None
    except RecursionError:  # pragma: no cover - _check_depth stops far before the parser
        raise BadPayload(
            f"the body is nested deeper than {MAX_DEPTH} levels", field="body"
        ) from None
    _check_size(value)
    return value


def _check_depth(text: str) -> None:
    """Brackets outside strings, counted before the recursive parser sees them. A body
    that is not JSON may be miscounted; it is refused either way."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        lexeme = match.group()
        if lexeme in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise BadPayload(f"the body is nested deeper than {MAX_DEPTH} levels", field="body")
        elif lexeme in "]}":
            depth -= 1


def _check_size(value: Any) -> None:
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        count += 1
        if count > MAX_VALUES:
            raise BadPayload(f"the body holds more than {MAX_VALUES} values", field="body")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


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
    """Text, made of characters only: not a control character (but tab and line breaks),
    a lone surrogate, U+FFFE or U+FFFF, which mean nothing to a person or to Qomon and
    which SQS refuses for good."""
    if value is None:
        raise bad(path, "is missing")
    if not isinstance(value, str):
        raise bad(path, "must be text")
    problem = not_text_problem(value)
    if problem is not None:
        raise bad(path, problem)
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


MAX_UNIX_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a datetime holds."""
_UNIX_SECONDS_TEXT = re.compile(r"[0-9]{1,12}")


def as_unix_seconds(value: Any, path: str) -> datetime:
    """An instant from Unix seconds (a number, or ASCII digits as text), from 1970 to the
    year 9999: a value no datetime holds is refused, never converted."""
    if isinstance(value, str) and _UNIX_SECONDS_TEXT.fullmatch(value):
        seconds: float = int(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    else:
        raise bad(path, "must be Unix seconds")
    if not 0 <= seconds <= MAX_UNIX_SECONDS:  # NaN fails this too
        raise bad(path, "must be Unix seconds between 1970 and the year 9999")
    return datetime.fromtimestamp(seconds, tz=UTC)


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


# -- form-encoded bodies ---------------------------------------------------------------

MAX_KEY_CHARS = 500
_FORM_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def parse_form(body: bytes) -> dict[str, Any]:
    """An `application/x-www-form-urlencoded` body as nested objects and lists, so that
    selectors read it as they read JSON: `data[merges][FNAME]=Ana` is
    `{"data": {"merges": {"FNAME": "Ana"}}}`, `tags[]=a&tags[]=b` is `{"tags": ["a", "b"]}`,
    and keys `0`, `1`, ... of one object make a list. Bounded like JSON bodies (MAX_DEPTH
    levels, MAX_VALUES values); a key both a value and an object is refused, naming it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8 text", field="body") from None
    if text.count("&") + 1 > MAX_VALUES:
        raise BadPayload(f"the body holds more than {MAX_VALUES} values", field="body")
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise BadPayload("the body is not form-encoded UTF-8 text", field="body") from None
    root: dict[str, Any] = {}
    for key, value in pairs:
        _put(root, _form_path(key), as_text(value, key[:MAX_KEY_CHARS]))
    listed: dict[str, Any] = _listed(root)
    return listed


def _form_path(key: str) -> list[str]:
    shown_key = key[:MAX_KEY_CHARS]
    if len(key) > MAX_KEY_CHARS:
        raise bad(shown_key, f"is a key longer than {MAX_KEY_CHARS} characters")
    problem = not_text_problem(key)
    if problem is not None:
        raise bad("body", f"has a key that {problem}")
    match = _FORM_KEY.match(key)
    if match is None:
        raise bad(shown_key, "is not a form key (`name` or `name[part][part]`)")
    path = [match.group(1), *_BRACKETS.findall(match.group(2))]
    if len(path) > MAX_DEPTH:
        raise BadPayload(f"the body is nested deeper than {MAX_DEPTH} levels", field="body")
    return path


def _put(root: dict[str, Any], path: list[str], value: str) -> None:
    node: Any = root
    where = ""
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if part == "":  # `name[]`: the next item of a list
            if not isinstance(node, list):
                raise bad(where, "is given both as a list and otherwise")
            if last:
                node.append(value)
                return
            node.append({})
            node, where = node[-1], at(where, len(node) - 1)
            continue
        if not isinstance(node, dict):
            raise bad(where, "is given both as a value and as an object")
        where = at(where, part)
        if last:
            if isinstance(node.get(part), dict | list):
                raise bad(where, "is given both as a value and as an object")
            node[part] = value  # a key given twice: the last value, as PHP reads it
            return
        child = node.get(part)
        if child is None:
            child = [] if path[index + 1] == "" else {}
            node[part] = child
        elif isinstance(child, str):
            raise bad(where, "is given both as a value and as an object")
        node = child


def _listed(value: Any) -> Any:
    """Objects whose keys are 0, 1, 2... (`a[0]=x&a[1]=y`) as lists."""
    if isinstance(value, list):
        return [_listed(item) for item in value]
    if not isinstance(value, dict):
        return value
    items = {key: _listed(item) for key, item in value.items()}
    numbered = items and all(key.isascii() and key.isdigit() for key in items)
    if numbered and sorted(int(key) for key in items) == list(range(len(items))):
        return [items[str(index)] for index in range(len(items))]
    return items
