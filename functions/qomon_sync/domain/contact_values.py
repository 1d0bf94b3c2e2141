"""A contact's values in their documented types: how the translator writes them and how
the meaning compares them, in one place so that the two cannot disagree.

`COERCERS` turns a value read from Qomon into its documented type (`REFUSED` when it
cannot be one): numbers GET sends for text become text, `"3"` becomes `3` in an integer
field, `0`/`1` become booleans, dates get milliseconds.

Text is compared as Unicode means it (`canonical_text`): a composed `é` and an `e`
followed by a combining accent are one text. Names people type (tags, form and choice
labels, e-mail addresses) are compared by `name_key`, which also ignores case and extra
blanks.
Qomon quirks handled here: see docs/qomon-api.md#documented-types.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from qomon_sync.domain.dates import NotADate, to_qomon_date

__all__ = [
    "COERCERS",
    "DATE_FORMS",
    "KIND_WORDS",
    "NUMBER_FORMS",
    "REFUSED",
    "as_int",
    "canonical_text",
    "is_empty",
    "is_number",
    "join_path",
    "name_key",
    "number_text",
]

GENDERS = ("M", "F", "O")
NUMBER_FORMS = frozenset({"numeric", "integer", "range"})
"""Form types whose answers are numbers: `"4.0"` and `4` are one answer."""
DATE_FORMS = frozenset({"date"})
"""Form types whose answers are dates: compared as instants."""

REFUSED: Any = object()


def _to_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return number_text(value) if is_number(value) else REFUSED  # GET sends some as numbers


def _to_gender(value: Any) -> Any:
    return value if value in GENDERS else REFUSED


def _to_int(value: Any) -> Any:
    number = as_int(value)
    return REFUSED if number is None else number


def _to_flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    return bool(value) if value in (0, 1) and not isinstance(value, float) else REFUSED


def _to_date(value: Any) -> Any:
    try:
        return to_qomon_date(value)
    except NotADate:
        return REFUSED


def _to_ints(value: Any) -> Any:
    if not isinstance(value, list):
        return REFUSED
    numbers = [as_int(item) for item in value]
    return REFUSED if any(n is None for n in numbers) else numbers


COERCERS: Mapping[str, Callable[[Any], Any]] = MappingProxyType(
    {
        "text": _to_text,
        "email": _to_text,
        "gender": _to_gender,
        "integer": _to_int,
        "boolean": _to_flag,
        "date": _to_date,
        "integers": _to_ints,
    }
)
KIND_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "text": "text",
        "email": "text",
        "gender": "one of M, F, O",
        "integer": "a whole number",
        "boolean": "true or false",
        "date": "a date",
        "integers": "a list of whole numbers",
    }
)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and text.isascii():
            return int(text)
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def join_path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def is_empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


def canonical_text(text: str) -> str:
    """`text` in Unicode's composed form (NFC): canonically equivalent spellings, which
    look and mean the same, are one text. Sources differ in the form they send (macOS and
    some web forms send decomposed accents), so a held `Café` must equal a sent one."""
    return unicodedata.normalize("NFC", text)


def name_key(name: str) -> str:
    """A name as people mean it: one Unicode form, case and extra blanks ignored. Tags,
    form and choice labels, and e-mail addresses (as Qomon's search and ours match them)
    are known by it."""
    # Folding case can leave a text out of NFC (and NFC can change what folds): both ways.
    return canonical_text(canonical_text(" ".join(name.split())).casefold())
