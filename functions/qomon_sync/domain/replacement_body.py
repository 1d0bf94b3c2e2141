"""The typed write model: the documented PATCH /contacts/{id} body, as pydantic models.

Built from the field inventory (domain.contact_fields), so the types the translator
writes and the types this model checks are one list. Every replacement body is checked
against it before it leaves: a body that fails is our bug, never Qomon's, so nothing is
sent and the events go to the dead-letter queue with the paths at fault.

Strict types: an integer field takes an integer (not `"3"`), a boolean a boolean, text
text; dates are `YYYY-MM-DDTHH:mm:ss.SSSZ` with a four-digit year. `null` is accepted
wherever a value may be cleared (every key that is not an item's identity).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, create_model

from qomon_sync.domain.contact_fields import CONTACT, Leaf, Node, Obj
from qomon_sync.domain.dates import QOMON_DATE
from qomon_sync.domain.validation import error_paths

QomonDate = Annotated[str, StringConstraints(pattern=QOMON_DATE.pattern)]

_LEAF_TYPES: Mapping[str, Any] = MappingProxyType(
    {
        "text": str,
        "email": str,
        "gender": Literal["M", "F", "O"],
        "integer": int,
        "boolean": bool,
        "date": QomonDate,
        "integers": list[int],
    }
)


def _strict() -> ConfigDict:
    """Each model's own configuration (pydantic's ConfigDict is a dict: none is shared)."""
    return ConfigDict(extra="forbid", strict=True)


def _annotation(name: str, node: Node) -> Any:
    if isinstance(node, Leaf):
        return _LEAF_TYPES[node.kind]
    if isinstance(node, Obj):
        return _model(name, node)
    return list[_model(name, node.item)]  # type: ignore[misc]


def _model(name: str, node: Obj) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for key, child in node.written.items():
        annotation = _annotation(f"{name}_{key}", child)
        if isinstance(child, Leaf) and child.required:
            fields[key] = (annotation, ...)
        else:
            fields[key] = (annotation | None, None)
    model: type[BaseModel] = create_model(name, __config__=_strict(), **fields)
    return model


ContactBody = _model("ContactBody", CONTACT)
ReplacementBody = create_model(
    "ReplacementBody",
    __config__=_strict(),
    data=(create_model("ReplacementData", __config__=_strict(), contact=(ContactBody, ...)), ...),
)
"""`{"data": {"contact": {...}}}`, as PATCH /contacts/{id} and POST /contacts take it."""


def body_problems(contact: Mapping[str, Any], passthrough: Iterable[str] = ()) -> list[str]:
    """`path: why` for each way `contact` differs from the documented write model.

    Keys the policy passes through (undocumented fields Qomon holds, sent back as read)
    are not Qomon's documented fields, so they are left out of the check.
    """
    checked = copy.deepcopy(dict(contact))
    for pattern in passthrough:
        _strip(checked, pattern.split("."))
    try:
        ContactBody.model_validate(checked)
    except ValidationError as exc:
        return [f"{path}: {why}" for path, why in error_paths(exc)]
    return []


def _strip(value: Any, parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    items = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(value, dict) or key not in value:
        return
    if not rest:
        value.pop(key)
        return
    targets = value[key] if items and isinstance(value[key], list) else [value[key]]
    for target in targets:
        _strip(target, rest)
