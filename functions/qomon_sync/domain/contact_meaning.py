"""What a contact means, path by path, for the unchanged check, the data-loss guard and
the echo check.

`fingerprint` reads the read shape and the write shape alike, through the field
inventory (domain.contact_fields): legacy names count as the current ones, server-owned
and read-only keys and soft-deleted answers do not count, everything else does, compared
by its documented type (instants, not strings; numbers as numbers for number forms).
So the guard can compare the contact as Qomon holds it (before any translation) with the
body: a key the translator drops shows as a change.
Qomon quirks handled here: see docs/qomon-api.md#dates-and-timestamps.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from qomon_sync.domain.contact_fields import CONTACT, Kind, Leaf, Many, Node, Obj
from qomon_sync.domain.contact_values import (
    COERCERS,
    DATE_FORMS,
    NUMBER_FORMS,
    REFUSED,
    canonical_text,
    is_empty,
    join_path,
    name_key,
)
from qomon_sync.domain.dates import NotADate, parse_instant
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.policy import ShapePolicy

__all__ = [
    "answer_meaning",
    "as_number",
    "changed_paths",
    "fingerprint",
    "means_the_same",
    "note_key",
    "note_path",
    "tag_key",
]


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
    not strings; `"3"` and `3` for an integer field; text in one Unicode form). Answers
    are grouped per form (`formdatas[form_id=12]`) as a multiset, so ids and order never
    count; tags by name, ignoring case; notes by their text (a digest, never the text).
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


def means_the_same(
    node: Node,
    one: Any,
    other: Any,
    path: str,
    *,
    catalog: FormCatalog | None = None,
    policy: ShapePolicy | None = None,
) -> bool:
    """Whether two values of one field of the inventory (`node`, at `path`) mean the same,
    compared as `fingerprint` compares them."""
    reader = _Meaning(catalog or FormCatalog([]), policy or ShapePolicy())
    return reader.value(one, node, path) == reader.value(other, node, path)


def answer_meaning(form_type: str, data: Any) -> Any:
    """What an answer's `data` means for a form of this type: numbers as numbers (`"4.0"`
    is `4`), dates as instants, text in one Unicode form."""
    kind = form_type.lower()
    if kind in DATE_FORMS:
        return _normal(data, "date")
    number = as_number(data) if kind in NUMBER_FORMS else None
    return number if number is not None else _normal(data, "text")


def note_key(text: str) -> str:
    """What makes two notes' texts one: blanks folded, in one Unicode form."""
    return canonical_text(" ".join(text.split()))


def note_path(text: str) -> str:
    """A note's path: a digest of its text (`note_key`), never the text itself."""
    return f"notes[{_digest(text)}]"


def tag_key(name: str) -> str:
    """A tag's identity: its name, ignoring case, extra blanks and its Unicode form (a tag
    held with a decomposed accent and one sent composed are one tag, not look-alikes)."""
    return name_key(name)


class _Meaning:
    def __init__(self, catalog: FormCatalog, policy: ShapePolicy) -> None:
        self.catalog = catalog
        self.policy = policy

    def value(self, value: Any, node: Node, path: str) -> dict[str, Any]:
        """What one field means, as {path: comparable value}."""
        out: dict[str, Any] = {}
        self.put(value, node, path, out)
        return out

    def put(self, value: Any, node: Node, path: str, out: dict[str, Any]) -> None:
        if isinstance(node, Leaf):
            _put(out, path, _normal(value, node.kind))
        elif isinstance(node, Obj):
            self.obj(value, node, path, out)
        else:
            self.many(value, node, path, out)

    def obj(self, value: Any, node: Obj, pattern: str, out: dict[str, Any]) -> None:
        if not isinstance(value, Mapping):
            _put(out, pattern, _scalar(value))
            return
        for key, part in value.items():
            name = node.legacy.get(key, key)
            if name in value and name != key and not is_empty(value[name]):
                continue  # both generations: the current name holds the value
            path = join_path(pattern, name)
            child = node.written.get(name)
            if child is None:
                known = name in node.server_owned or name in node.read_only
                if not known and path not in self.policy.droppable:
                    _put(out, path, _scalar(part))
            else:
                self.put(part, child, path, out)

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
            if node.identity == "answer" and not is_empty(item.get("deleted_at")):
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
        if form is not None and data is not None:
            parts[key] = answer_meaning(form.type, data)  # "4.0" and "4" are one answer


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
    if is_empty(value):
        return None
    if kind == "date":
        return _instant(value)
    coerced = COERCERS[kind](value)
    if coerced is REFUSED:
        return _scalar(value)  # not of its type: compared as it is
    if kind == "integers":
        return tuple(sorted(coerced))
    if kind == "email":
        # One address whatever its case, as Qomon's search and ours match it: an event
        # spelling it otherwise is no change, and Qomon lower-casing it is no mismatch.
        return name_key(coerced)
    return canonical_text(coerced) if kind == "text" else coerced


def _instant(value: Any) -> Any:
    try:
        instant = parse_instant(value)
    except NotADate:
        return _scalar(value)
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _scalar(value: Any) -> Any:
    if is_empty(value):
        return None
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _put(meaning: dict[str, Any], path: str, value: Any) -> None:
    if value is not None:
        meaning[path] = value


def _digest(text: str) -> str:
    return hashlib.sha256(note_key(text).encode("utf-8")).hexdigest()[:12]
