"""From the contact Qomon reads to the contact Qomon accepts, and what a contact means.

`GET /contacts/{id}` answers more than `PATCH /contacts/{id}` accepts, and two generations
of Qomon's documentation spell some fields differently. Sending a read contact straight
back can fail or lose data, so the write shape is built by walking the field inventory
(domain.contact_fields), which gives every documented key one fate:

- written keys are sent back with their documented type (integers stay integers, dates
  are written with milliseconds and a four-digit year, whatever precision they were read
  with); both naming generations are read, the current names are always written;
- server-owned and read-only keys are left out (Qomon sets them);
- soft-deleted answers (`deleted_at` set) are left out: they are gone, re-sending would
  resurrect them. Answer ids change on every PATCH, so they are never sent or compared;
- a key we do not understand stops the write (ShapeError) unless the policy declares it
  passed through or droppable, because PATCH would otherwise delete it silently.

`fingerprint` says what a contact means, path by path, for the unchanged check, the
data-loss guard and the echo check. It reads the contact as Qomon holds it (before any
translation) with the same inventory, so a key the translator drops shows as a change.
Qomon quirks handled here: see docs/qomon-api.md#the-contact-read-shape-and-write-shape.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from qomon_sync.domain.contact_fields import (
    ANSWER_LISTS,
    CONTACT,
    Kind,
    Leaf,
    Many,
    Node,
    Obj,
)
from qomon_sync.domain.dates import NotADate, parse_instant, to_qomon_date
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.policy import ShapePolicy
from qomon_sync.domain.refusal import Code, Refused

__all__ = [
    "ANSWER_LISTS",
    "ShapeError",
    "ShapePolicy",
    "WriteContact",
    "changed_paths",
    "fingerprint",
    "note_path",
    "tag_key",
    "to_write_shape",
]

WriteContact = dict[str, Any]

GENDERS = ("M", "F", "O")
NUMBER_FORMS = frozenset({"numeric", "integer", "range"})
DATE_FORMS = frozenset({"date"})


class ShapeError(Refused):
    """The read contact cannot be turned into a write body without losing or inventing data."""


# -- translation: read shape -> write shape ---------------------------------------------


class _Translation:
    def __init__(self, catalog: FormCatalog, policy: ShapePolicy) -> None:
        self.catalog = catalog
        self.policy = policy
        self.refused: list[str] = []

    def keep_unknown(self, pattern: str, value: Any) -> bool:
        """Whether to send an unknown key back; records it when it must stop the write."""
        if _is_empty(value) or pattern in self.policy.droppable:
            return False  # an empty key holds nothing to lose
        if pattern in self.policy.passthrough:
            return True
        self.refused.append(pattern)
        return False

    def obj(self, value: Any, node: Obj, where: str, pattern: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise _invalid(f"`{where}` is not an object", where)
        merged = _merge_legacy_names(value, node, where)
        out: dict[str, Any] = {}
        for key, part in merged.items():
            child = node.written.get(key)
            if child is not None:
                out[key] = self.node(part, child, _join(where, key), _join(pattern, key))
            elif self._is_unknown(node, key) and self.keep_unknown(_join(pattern, key), part):
                out[key] = part
        for key, child in node.written.items():
            if isinstance(child, Leaf) and child.required and out.get(key) is None:
                raise _invalid(f"`{where}` has no `{key}`", where)
        return out

    @staticmethod
    def _is_unknown(node: Obj, key: str) -> bool:
        return key not in node.server_owned and key not in node.read_only

    def node(self, value: Any, node: Node, where: str, pattern: str) -> Any:
        if isinstance(node, Leaf):
            return _coerce(value, node.kind, where)
        if isinstance(node, Obj):
            return self.obj(value, node, where, pattern)
        return self.many(value, node, where, pattern)

    def many(self, value: Any, node: Many, where: str, pattern: str) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _invalid(f"`{where}` is not a list", where)
        out = []
        for index, raw in enumerate(value):
            item_where = f"{where}[{index}]"
            if node.identity == "tag" and isinstance(raw, str):
                raw = {"name": raw}  # noqa: PLW2901 - the older shape lists tags as names
            if not isinstance(raw, Mapping):
                raise _invalid(f"`{item_where}` is not an object", item_where)
            if node.identity == "answer" and not _is_empty(raw.get("deleted_at")):
                continue  # soft-deleted: gone for Qomon, must not come back
            item = self.obj(raw, node.item, item_where, f"{pattern}[]")
            assert item is not None
            if node.identity == "tag" and not str(item["name"]).strip():
                raise _invalid(f"`{item_where}` has no name", item_where)
            if node.identity == "answer":
                self._date_answer(item)
            out.append(item)
        return out

    def _date_answer(self, answer: dict[str, Any]) -> None:
        form = self.catalog.get(answer["form_id"])
        if form is not None and form.type.lower() in DATE_FORMS and answer.get("data"):
            # A date answer Qomon holds in a shape we cannot read is sent back as it is.
            with contextlib.suppress(NotADate):
                answer["data"] = to_qomon_date(answer["data"])


def to_write_shape(
    read: Mapping[str, Any], catalog: FormCatalog, policy: ShapePolicy | None = None
) -> WriteContact:
    """The PATCH body's contact that sends back exactly what `read` holds."""
    if not isinstance(read, Mapping):
        raise ShapeError(Code.INVALID_CONTACT, "the contact is not a JSON object", ["contact"])
    translation = _Translation(catalog, policy or ShapePolicy())
    out = translation.obj(read, CONTACT, "", "") or {}
    if "address" in out and out["address"] is None:
        out["address"] = {}
    if translation.refused:
        raise ShapeError(
            Code.UNKNOWN_FIELD,
            "the contact holds fields qomon-sync does not understand; a replacement would "
            "delete them, so nothing is written (declare them passthrough or droppable)",
            translation.refused,
        )
    return out


def _merge_legacy_names(value: Mapping[str, Any], node: Obj, where: str) -> dict[str, Any]:
    merged = dict(value)
    for old, new in node.legacy.items():
        if old not in merged:
            continue
        old_value = merged.pop(old)
        if new not in merged or _is_empty(merged[new]):
            merged[new] = old_value
        elif not _is_empty(old_value) and old_value != merged[new]:
            path = _join(where, new)
            raise ShapeError(
                Code.CONFLICTING_NAMES,
                f"`{_join(where, old)}` and `{path}` both hold a value and they differ",
                [path],
            )
    return merged


def _coerce(value: Any, kind: Kind, where: str) -> Any:
    """`value` in its documented type, or a ShapeError naming the path."""
    if value is None or (value == "" and kind != "text"):
        # Empty is absent for every type but text (where "" is a text of its own).
        return [] if kind == "integers" else None
    coerced = _COERCERS[kind](value)
    if coerced is _REFUSED:
        raise _invalid(f"`{where}` is not {_KIND_WORDS[kind]}", where)
    return coerced


_REFUSED: Any = object()


def _to_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return _number_text(value) if _is_number(value) else _REFUSED  # GET sends some as numbers


def _to_gender(value: Any) -> Any:
    return value if value in GENDERS else _REFUSED


def _to_int(value: Any) -> Any:
    number = _as_int(value)
    return _REFUSED if number is None else number


def _to_flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    return bool(value) if value in (0, 1) and not isinstance(value, float) else _REFUSED


def _to_date(value: Any) -> Any:
    try:
        return to_qomon_date(value)
    except NotADate:
        return _REFUSED


def _to_ints(value: Any) -> Any:
    if not isinstance(value, list):
        return _REFUSED
    numbers = [_as_int(item) for item in value]
    return _REFUSED if any(n is None for n in numbers) else numbers


_COERCERS: Mapping[str, Callable[[Any], Any]] = {
    "text": _to_text,
    "gender": _to_gender,
    "integer": _to_int,
    "boolean": _to_flag,
    "date": _to_date,
    "integers": _to_ints,
}
_KIND_WORDS: Mapping[str, str] = {
    "text": "text",
    "gender": "one of M, F, O",
    "integer": "a whole number",
    "boolean": "true or false",
    "date": "a date",
    "integers": "a list of whole numbers",
}


def _as_int(value: Any) -> int | None:
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _invalid(detail: str, where: str) -> ShapeError:
    return ShapeError(Code.INVALID_CONTACT, detail, [where or "contact"])


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _is_empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


# -- meaning ---------------------------------------------------------------------------


def fingerprint(
    contact: Mapping[str, Any],
    catalog: FormCatalog | None = None,
    policy: ShapePolicy | None = None,
) -> dict[str, Any]:
    """What a contact means, as {path: comparable value}; empty means absent.

    It reads the read shape and the write shape alike, through the same inventory:
    legacy names count as the current ones, server-owned and read-only keys and
    soft-deleted answers do not count, declared droppable keys do not count; everything
    else does, unknown keys included. Values compare by their documented type (instants,
    not strings; `"3"` and `3` for an integer field). Answers are grouped per form
    (`formdatas[form_id=12]`) as a multiset, so ids and order never count; tags by name,
    ignoring case; notes by their text (a digest, never the text).
    """
    meaning: dict[str, Any] = {}
    reader = _Meaning(catalog or FormCatalog([]), policy or ShapePolicy())
    reader.obj(contact, CONTACT, "", meaning)
    return meaning


def changed_paths(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    catalog: FormCatalog | None = None,
    policy: ShapePolicy | None = None,
) -> list[str]:
    """The paths whose meaning differs between two contacts (read or write shape), sorted."""
    old, new = fingerprint(before, catalog, policy), fingerprint(after, catalog, policy)
    return sorted(path for path in old.keys() | new.keys() if old.get(path) != new.get(path))


def note_path(text: str) -> str:
    """A note's path: a digest of its text (blanks folded), never the text itself."""
    return f"notes[{_digest(text)}]"


def tag_key(name: str) -> str:
    """A tag's identity: its name, ignoring case and extra blanks."""
    return " ".join(name.split()).casefold()


class _Meaning:
    def __init__(self, catalog: FormCatalog, policy: ShapePolicy) -> None:
        self.catalog = catalog
        self.policy = policy

    def obj(self, value: Any, node: Obj, pattern: str, out: dict[str, Any]) -> None:
        if not isinstance(value, Mapping):
            _put(out, pattern, _scalar(value))
            return
        for key, part in value.items():
            name = node.legacy.get(key, key)
            if name in value and name != key and not _is_empty(value[name]):
                continue  # both generations: the current name holds the value
            path = _join(pattern, name)
            child = node.written.get(name)
            if child is None:
                known = name in node.server_owned or name in node.read_only
                if not known and path not in self.policy.droppable:
                    _put(out, path, _scalar(part))
            elif isinstance(child, Leaf):
                _put(out, path, _normal(part, child.kind))
            elif isinstance(child, Obj):
                self.obj(part, child, path, out)
            else:
                self.many(part, child, path, out)

    def many(self, value: Any, node: Many, path: str, out: dict[str, Any]) -> None:
        if not isinstance(value, list):
            _put(out, path, _scalar(value))
            return
        groups: dict[str, Counter[Any]] = {}
        for raw in value:
            item = {"name": raw} if node.identity == "tag" and isinstance(raw, str) else raw
            if not isinstance(item, Mapping):
                groups.setdefault(path, Counter())[_scalar(item)] += 1
                continue
            if node.identity == "answer" and not _is_empty(item.get("deleted_at")):
                continue
            parts: dict[str, Any] = {}
            self.obj(item, node.item, f"{path}[]", parts)
            # A flag left false and a flag left out say the same of an item.
            parts = {k: v for k, v in parts.items() if v is not False}
            key, parts = self._identity(node, path, parts)
            groups.setdefault(key, Counter())[frozenset(parts.items())] += 1
        for key, items in groups.items():
            out[key] = frozenset(items.items())

    def _identity(self, node: Many, path: str, parts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The path an item is compared under, and what is compared of it there."""
        if node.identity == "answer":
            form_id = parts.pop(f"{path}[].form_id", None)
            self._answer_data(form_id, parts, f"{path}[].data")
            return f"{path}[form_id={form_id}]", parts
        if node.identity == "tag":
            name = parts.pop(f"{path}[].name", "")
            return f"{path}[{tag_key(str(name))}]", parts
        text = parts.pop(f"{path}[].data", "")
        return note_path(str(text)), parts

    def _answer_data(self, form_id: Any, parts: dict[str, Any], key: str) -> None:
        form = self.catalog.get(form_id)
        data = parts.get(key)
        if form is None or data is None:
            return
        kind = form.type.lower()
        if kind in DATE_FORMS:
            parts[key] = _normal(data, "date")
        elif kind in NUMBER_FORMS:
            number = as_number(data)
            if number is not None:
                parts[key] = number  # "4.0" and "4" are the same answer


def as_number(value: Any) -> float | None:
    """A finite number from a number or its text (a French decimal comma accepted)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace("\u202f", "").replace(" ", "")
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _normal(value: Any, kind: Kind) -> Any:
    """A value as its documented type means it, for comparison; None when empty."""
    if _is_empty(value):
        return None
    if kind == "date":
        return _instant(value)
    coerced = _COERCERS[kind](value)
    if coerced is _REFUSED:
        return _scalar(value)  # not of its type: compared as it is
    return tuple(sorted(coerced)) if kind == "integers" else coerced


def _instant(value: Any) -> Any:
    try:
        instant = parse_instant(value)
    except NotADate:
        return _scalar(value)
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _scalar(value: Any) -> Any:
    if _is_empty(value):
        return None
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _put(meaning: dict[str, Any], path: str, value: Any) -> None:
    if value is not None:
        meaning[path] = value


def _digest(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]
