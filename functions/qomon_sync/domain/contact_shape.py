"""From the contact Qomon reads to the contact Qomon accepts, and what a contact means.

`GET /contacts/{id}` answers more than `PATCH /contacts/{id}` accepts, and two generations
of Qomon's documentation spell some fields differently. Sending a read contact straight
back can fail or lose data, so the write shape is built by walking the field inventory
(domain.contact_fields), which gives every documented key one fate:

- written keys are sent back with their documented type (integers stay integers, dates
  are written with milliseconds and a four-digit year, whatever precision they were read
  with); both naming generations are read (one field when both are held with one
  meaning), the current names are always written;
- server-owned and read-only keys are left out (Qomon sets them);
- soft-deleted answers (`deleted_at` set) are left out: they are gone, re-sending would
  resurrect them. Answer ids change on every PATCH, so they are never sent or compared;
- a key we do not understand stops the write (ShapeError) unless the policy declares it
  passed through or droppable, because PATCH would otherwise delete it silently.

What a contact means, for comparing two of them, is domain.contact_meaning's.
Qomon quirks handled here: see docs/qomon-api.md#the-contact-read-shape-and-write-shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
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
from qomon_sync.domain.contact_meaning import means_the_same
from qomon_sync.domain.contact_values import (
    COERCERS,
    DATE_FORMS,
    KIND_WORDS,
    REFUSED,
    is_empty,
    join_path,
)
from qomon_sync.domain.dates import NotADate, to_qomon_date
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.policy import ShapePolicy
from qomon_sync.domain.refusal import Code, Refused

__all__ = [
    "ANSWER_LISTS",
    "ShapeError",
    "ShapePolicy",
    "WriteContact",
    "to_write_shape",
]

WriteContact = dict[str, Any]


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
        if is_empty(value) or pattern in self.policy.droppable:
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
        merged = self._merge_legacy_names(value, node, where, pattern)
        out: dict[str, Any] = {}
        for key, part in merged.items():
            child = node.written.get(key)
            if child is not None:
                out[key] = self.node(part, child, join_path(where, key), join_path(pattern, key))
            elif self._is_unknown(node, key) and self.keep_unknown(join_path(pattern, key), part):
                out[key] = part
        for key, child in node.written.items():
            if isinstance(child, Leaf) and child.required and out.get(key) is None:
                raise _invalid(f"`{where}` has no `{key}`", where)
        return out

    def _merge_legacy_names(
        self, value: Mapping[str, Any], node: Obj, where: str, pattern: str
    ) -> dict[str, Any]:
        """`value` with each older name read as the current one. A contact may hold both
        generations of a field: they are one field when they mean the same (ids in
        another order, answers with other ids or date precision), and the write stops
        when they do not, since either choice would silently lose the other."""
        merged = dict(value)
        for old, new in node.legacy.items():
            if old not in merged:
                continue
            old_value = merged.pop(old)
            if new not in merged or is_empty(merged[new]):
                merged[new] = old_value
            elif not is_empty(old_value) and not means_the_same(
                node.written[new],
                old_value,
                merged[new],
                join_path(pattern, new),
                catalog=self.catalog,
                policy=self.policy,
            ):
                path = join_path(where, new)
                raise ShapeError(
                    Code.CONFLICTING_NAMES,
                    f"`{join_path(where, old)}` and `{path}` both hold a value and they differ",
                    [path],
                )
        return merged

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
            if node.identity == "answer" and not is_empty(raw.get("deleted_at")):
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


def _coerce(value: Any, kind: Kind, where: str) -> Any:
    """`value` in its documented type, or a ShapeError naming the path."""
    if value is None or (value == "" and kind != "text"):
        # Empty is absent for every type but text (where "" is a text of its own).
        return [] if kind == "integers" else None
    coerced = COERCERS[kind](value)
    if coerced is REFUSED:
        raise _invalid(f"`{where}` is not {KIND_WORDS[kind]}", where)
    return coerced


def _invalid(detail: str, where: str) -> ShapeError:
    return ShapeError(Code.INVALID_CONTACT, detail, [where or "contact"])
