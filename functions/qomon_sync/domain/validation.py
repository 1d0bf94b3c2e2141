"""Pydantic validation errors as `path: why`, never quoting the value at fault.

A value in error may be a person's e-mail or answer, so only where it is and why it is
refused ever leave the process.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


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
    """(path, why) for each error, without the input value."""
    return [
        (location(error["loc"]), error["msg"])
        for error in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
