"""Pydantic validation errors as `path: why`, never quoting the value at fault.

A value in error may be a person's e-mail or answer, so only where it is and why it is
refused ever leave the process. One place flattens them, for change events, source
configurations, the typed write body and Qomon's answers alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError

Location = tuple[str | int, ...]

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMBER_TAGS = frozenset({"int", "float", "str", "bool"})


def validation_problems(exc: ValidationError) -> list[tuple[Location, str]]:
    """(location, message) of each field at fault, as a sender would name it.

    Pydantic adds a union member's tag to the location of each member's complaint
    (`fields.0.value.function-after[...]`, `...int`, `...float`): the tags are left out;
    of one field's complaints only the first member's is kept (texts come first), and a
    complaint about a field is dropped when another member's reaches inside it (a list
    value's `[1]` says more than "not a text"). Our models' field names are identifiers
    and none is a member tag (`int`, `float`, `str`, `bool`)."""
    found: dict[Location, str] = {}
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = tuple(
            part
            for part in error["loc"]
            if isinstance(part, int) or (_FIELD_NAME.fullmatch(part) and part not in _MEMBER_TAGS)
        )
        found.setdefault(loc, error["msg"].removeprefix("Value error, "))
    return [
        (loc, message)
        for loc, message in found.items()
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in found)
    ]


def location(loc: Sequence[int | str]) -> str:
    """`notes[0].user.mail` from pydantic's `('notes', 0, 'user', 'mail')`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


def error_paths(exc: ValidationError) -> list[tuple[str, str]]:
    """(path, why) for each field at fault, without the input value."""
    return [(location(loc), why) for loc, why in validation_problems(exc)]
