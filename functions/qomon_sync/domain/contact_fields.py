"""The field inventory: every key of Qomon's documented contact, and what we do with it.

Qomon's PATCH reference page (docs/qomon-api.md; the documented bodies are shipped in
events/qomon-docs/) documents a request body and a response body, which is also what GET
returns. Every key of the response, at every depth, has exactly one fate here:

- written: sent back on every replacement, with its documented type;
- server-owned: Qomon sets it (ids, timestamps, computed geodata); never sent;
- read-only: read from Qomon but not part of the write, with the reason.

The translator (contact_shape), the meaning used by the unchanged check, the data-loss
guard and the echo check, and the typed write model (replacement_body) are all driven by
this one tree, so they cannot disagree about a field. Paths use `[]` for list items:
`notes[].user.role_data.color`.
Qomon quirks handled here: see docs/qomon-api.md#every-key-has-one-fate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Kind = Literal["text", "email", "integer", "boolean", "date", "integers", "gender"]
Identity = Literal["answer", "tag", "note"]
Fate = Literal["written", "server-owned", "read-only"]


@dataclass(frozen=True)
class Leaf:
    """A value of one documented type; `required` ones must be present in every item."""

    kind: Kind
    required: bool = False
    note: str = ""


@dataclass(frozen=True)
class Obj:
    written: Mapping[str, Node]
    server_owned: Mapping[str, str] = field(default_factory=dict)
    """Key -> why Qomon owns it."""
    read_only: Mapping[str, str] = field(default_factory=dict)
    """Key -> why it is read but not written."""
    legacy: Mapping[str, str] = field(default_factory=dict)
    """Older read-side name -> current write name."""

    def __post_init__(self) -> None:
        # The tree is shared by the whole process: read-only, so no caller can edit it.
        for name in ("written", "server_owned", "read_only", "legacy"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


@dataclass(frozen=True)
class Many:
    """A list of objects, and how one item is told from another when comparing meaning:
    answers by form (their ids change on every PATCH), tags by name, notes by text."""

    item: Obj
    identity: Identity


Node = Leaf | Obj | Many

TEXT = Leaf("text")
INTEGER = Leaf("integer")
BOOLEAN = Leaf("boolean")
DATE = Leaf("date")

ADDRESS = Obj(
    written={
        key: TEXT
        for key in (
            "addition",
            "building",
            "city",
            "country",
            "county",
            "door",
            "floor",
            "housenumber",
            "infos",
            "pollingstation",
            "postalcode",
            "state",
            "street",
        )
    },
    server_owned={
        "id": "the address record's id",
        "latitude": "geocoded by Qomon from the address",
        "longitude": "geocoded by Qomon from the address",
        "location": "geocoded by Qomon from the address",
        "score": "the geocoder's confidence",
        "invalid": "set by Qomon's geocoder (older read shape)",
    },
)

_ANSWER_SERVER_OWNED: Mapping[str, str] = MappingProxyType(
    {
        "id": "recreated with a new id by every PATCH",
        "contact_id": "the contact the answer belongs to",
        "group_id": "the space",
        "created_at": "set when Qomon recreates the answer",
        "updated_at": "set when Qomon recreates the answer",
        "deleted_at": "soft deletion: an answer with it set is gone and is not sent back",
        "donedate": "set by Qomon for tasks (older read shape)",
        "label": "the form's display label, read from the form (older read shape)",
        "type_of_form": "the form's family, read from the form (older read shape)",
    }
)

FORMDATA = Obj(
    written={
        "form_id": Leaf("integer", required=True),
        "form_ref_id": Leaf("integer", required=True),
        "data": Leaf("text", note="free text, or the chosen value's `value`"),
        "date": DATE,
        "survey_id": INTEGER,
    },
    server_owned=_ANSWER_SERVER_OWNED,
)
CUSTOM_FIELD = Obj(
    written={
        "form_id": Leaf("integer", required=True),
        "form_ref_id": Leaf("integer", required=True),
        "data": Leaf("text", note="free text, or the chosen value's `value`"),
        "date": Leaf("date", note="documented in the page's custom_fields example"),
    },
    server_owned=_ANSWER_SERVER_OWNED,
)

ROLE = Obj(
    written={
        "color": TEXT,
        "id": INTEGER,
        "mobile": BOOLEAN,
        "name": TEXT,
        "order": INTEGER,
        "web": BOOLEAN,
    }
)
NOTE_AUTHOR = Obj(
    written={
        "address": TEXT,
        "avatar": TEXT,
        "birthdate": DATE,
        "city": TEXT,
        "firstname": TEXT,
        "group_id": Leaf("integers"),
        "locale": TEXT,
        "location": TEXT,
        "mail": Leaf("email"),
        "phone": TEXT,
        "postal": TEXT,
        "role_data": ROLE,
        "status": TEXT,
        "surname": TEXT,
        "two_factor_enable": BOOLEAN,
    },
    server_owned={
        "id": "the Qomon user's id (the documented request body leaves it out)",
        "CreatedAt": "the Qomon user's record",
        "UpdatedAt": "the Qomon user's record",
        "created": "the Qomon user's record",
    },
)
NOTE = Obj(
    written={
        "id": Leaf("integer", note="kept, so Qomon keeps the note rather than recreating it"),
        "contact_id": INTEGER,
        "created_at": DATE,
        "data": Leaf("text", required=True),
        "group_id": INTEGER,
        "only_super_admin": BOOLEAN,
        "pinned": BOOLEAN,
        "updated_at": DATE,
        "user": NOTE_AUTHOR,
    },
    read_only={
        "CreatedAt": "older read shape; not in the documented bodies",
        "UpdatedAt": "older read shape; not in the documented bodies",
        "user_id": "older read shape; the author travels in `user`",
    },
    legacy={"content": "data"},
)
TAG = Obj(
    written={"name": Leaf("text", required=True)},
    read_only={
        "id": "read-side display data: Qomon keys tags by name",
        "appearance_count": "read-side display data, computed by Qomon",
        "color": "read-side display data, chosen in Qomon's UI",
        "group_id": "the space",
        "created_at": "read-side display data",
        "updated_at": "read-side display data",
    },
)

CONTACT = Obj(
    written={
        "action_ids": Leaf("integers"),
        "address": ADDRESS,
        "age_category": INTEGER,
        "birth_city": TEXT,
        "birth_country": TEXT,
        "birth_dept": TEXT,
        "birthdate": DATE,
        "black_list": Leaf("boolean", note="blocks all communication; opt-outs are sticky"),
        "custom_fields": Many(CUSTOM_FIELD, "answer"),
        "firstname": TEXT,
        "formdatas": Many(FORMDATA, "answer"),
        "gender": Leaf("gender", note="older schema only (M, F, O); sent back when read"),
        "mail": Leaf("email", note="text; one address whatever its case"),
        "married_name": TEXT,
        "mobile": TEXT,
        "mobile_invalid": BOOLEAN,
        "nationality": TEXT,
        "notes": Many(NOTE, "note"),
        "phone": TEXT,
        "phone_invalid": BOOLEAN,
        "surname": TEXT,
        "tags": Many(TAG, "tag"),
        "user_contact_id": INTEGER,
    },
    server_owned={
        "id": "the contact's id: in the URL, never in the body",
        "CreatedAt": "set by Qomon",
        "UpdatedAt": "set by Qomon on every write",
        "group_id": "the space",
        "lastchange": "set by Qomon",
        "lastchangeuserid": "set by Qomon",
        "user_id": "set by Qomon (older read shape)",
    },
    legacy={
        "birthcity": "birth_city",
        "birthcountry": "birth_country",
        "birthdept": "birth_dept",
        "actions_ids": "action_ids",
        "customfields": "custom_fields",
    },
)

ANSWER_LISTS = ("formdatas", "custom_fields")


@dataclass(frozen=True)
class Row:
    path: str
    fate: Fate
    kind: str
    why: str


def inventory(node: Obj = CONTACT, prefix: str = "") -> Iterator[Row]:
    """Every path of the tree with its fate, in the tree's order."""
    for key, child in node.written.items():
        path = f"{prefix}{key}"
        if isinstance(child, Leaf):
            yield Row(path, "written", child.kind, child.note)
        elif isinstance(child, Obj):
            yield Row(path, "written", "object", "")
            yield from inventory(child, f"{path}.")
        else:
            yield Row(path, "written", "list", f"items compared by {child.identity}")
            yield from inventory(child.item, f"{path}[].")
    for key, why in node.server_owned.items():
        yield Row(f"{prefix}{key}", "server-owned", "", why)
    for key, why in node.read_only.items():
        yield Row(f"{prefix}{key}", "read-only", "", why)
