"""Qomon's contact semantics, in memory and without HTTP, so they can be tested directly.

What it plays: `PATCH /contacts/{id}` replaces the whole contact; every write
soft-deletes all advanced-field entries and recreates the ones sent with new ids; a note
sent back with its id keeps that id, its creation time and its author, a note without
one is new; GET speaks one of two naming generations and carries server-owned fields
that a write ignores; search takes a query of exactly two levels.

The documented types of a write body, from Qomon's PATCH reference (request body, and
the response body GET also answers), which `WriteRules.documented_types` enforces:

- integers: `age_category`, `user_contact_id`; an answer's `form_id`, `form_ref_id`,
  `survey_id`; a note's `id`, `contact_id`, `group_id`; its author's `id` and
  `role_data.id` / `role_data.order`. Lists of integers: `action_ids`, the author's
  `group_id`. A JSON number with a fraction, a numeric string or a boolean is refused.
- booleans: `black_list`, `phone_invalid`, `mobile_invalid`; a note's `pinned`,
  `only_super_admin`; the author's `two_factor_enable`, `role_data.web` / `.mobile`.
- strings: the names, `mail`, `phone`, `mobile`, nationality and birth place, every
  address key, tag names, an answer's `data` (also for numeric forms: `"4"`, not `4`),
  a note's `data`, the author's names, `mail`, `phone`, address and the like.
- dates: `birthdate`, an answer's `date`, a note's `created_at` / `updated_at`, the
  author's `birthdate`. On write the reference gives one input form, milliseconds in UTC:
  `YYYY-MM-DDTHH:mm:ss.SSSZ` with a 4-digit year; only that form is taken (no seconds-only,
  no microseconds, no offset), although reads may carry other precisions. The seed, which
  holds stored values rather than writes, may give any ISO 8601 instant.

null: every optional value may be null, which means the same as leaving it out (a basic
field or the address is cleared, a list is empty, a note flag is false, a note without
an id is new). null is refused where a value is what the item is: a list item, a tag's
`name`, an answer's `form_id` / `form_ref_id` / `data`, a note's `data`.

Keys outside the write schema: at the top level they are kept as sent (integrators find
such fields in search results); inside an address, answer, tag, note or author they are
ignored, as are the server-owned keys the response adds (`id`, `CreatedAt`, ...).

The field lists here deliberately repeat Qomon's documented names instead of importing
the client's whitelist from `qomon_sync.domain`: a stand-in that shared the client's
lists would share its mistakes, and the contract tests could no longer catch them.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard

from qomon_sync_dev.standin.config import Naming

JsonObject = dict[str, Any]
Clock = Callable[[], datetime]
EntryKind = Literal["formdatas", "custom_fields"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("formdatas", "custom_fields")

FORM_FAMILIES = (
    "consent",
    "level_of_support",
    "presence_status",
    "custom_fields",
    "survey",
    "tasks",
)
CUSTOM_FIELDS_SECTION = "custom_fields"

CHOICE_TYPES = frozenset({"radio", "checkbox", "select"})
NUMBER_TYPES = frozenset({"numeric", "integer", "range"})
FREE_INPUT_TYPES = NUMBER_TYPES | {"text", "date"}
SINGLE_ENTRY_TYPES = frozenset({"radio"})
"""Our reading of the docs (not confirmed): a radio keeps one entry, the last one sent."""

ValueKind = Literal["string", "integer", "integers", "boolean", "date", "gender", "scalar"]
Schema = Mapping[str, "ValueKind | Schema"]
"""The documented type of each key of an object; a nested schema is an object."""

BASIC_FIELD_KINDS: Mapping[str, ValueKind] = {
    "firstname": "string",
    "surname": "string",
    "married_name": "string",
    # Not in the current reference, only in the older schema: M, F or O.
    "gender": "gender",
    "birthdate": "date",
    "age_category": "integer",
    "birth_city": "string",
    "birth_country": "string",
    "birth_dept": "string",
    "nationality": "string",
    "mail": "string",
    "phone": "string",
    "phone_invalid": "boolean",
    "mobile": "string",
    "mobile_invalid": "boolean",
    "black_list": "boolean",
    "user_contact_id": "integer",
}
BASIC_FIELDS = tuple(BASIC_FIELD_KINDS)
LENIENT_FIELD_KINDS: Mapping[str, ValueKind] = {
    "birthdate": "string",
    "age_category": "scalar",
    "user_contact_id": "scalar",
}
"""What lenient rules check these fields against instead: the stand-in's checks from
before it played the documented types."""
LIST_FIELDS = ("tags", "action_ids", "formdatas", "custom_fields", "notes")
WRITABLE_FIELDS = frozenset({*BASIC_FIELDS, "address", *LIST_FIELDS})
GENDERS = ("M", "F", "O")

LEGACY_NAMES = {
    "birth_city": "birthcity",
    "birth_country": "birthcountry",
    "birth_dept": "birthdept",
    "action_ids": "actions_ids",
    "custom_fields": "customfields",
}
"""Current write name -> the older generation's name, used by GET when naming=legacy."""
CURRENT_NAMES = {legacy: current for current, legacy in LEGACY_NAMES.items()}

ADDRESS_KEYS = (
    "housenumber",
    "street",
    "postalcode",
    "city",
    "county",
    "state",
    "country",
    "addition",
    "infos",
    "building",
    "floor",
    "door",
    "pollingstation",
)
# The older generation renders these as JSON numbers when they are all digits.
LEGACY_NUMERIC_ADDRESS_KEYS = ("housenumber", "postalcode")

SERVER_OWNED_FIELDS = frozenset(
    {"id", "group_id", "CreatedAt", "UpdatedAt", "lastchange", "lastchangeuserid", "user_id"}
)

ROLE_SCHEMA: Schema = {
    "color": "string",
    "id": "integer",
    "mobile": "boolean",
    "name": "string",
    "order": "integer",
    "web": "boolean",
}
USER_SCHEMA: Schema = {
    # `id` is in the response only, but a note's author is nobody without it.
    "id": "integer",
    "address": "string",
    "avatar": "string",
    "birthdate": "date",
    "city": "string",
    "firstname": "string",
    "group_id": "integers",
    "locale": "string",
    "location": "string",
    "mail": "string",
    "phone": "string",
    "postal": "string",
    "role_data": ROLE_SCHEMA,
    "status": "string",
    "surname": "string",
    "two_factor_enable": "boolean",
}
"""A note's author (`notes[].user`) as the request body documents it. The response adds
`CreatedAt`, `UpdatedAt` and `created`, server-owned: a write's are ignored, unchecked."""
USER_KEYS = (
    "id",
    "CreatedAt",
    "UpdatedAt",
    "created",
    "firstname",
    "surname",
    "mail",
    "phone",
    "address",
    "postal",
    "city",
    "location",
    "locale",
    "avatar",
    "birthdate",
    "status",
    "group_id",
    "role_data",
    "two_factor_enable",
)
"""What an author renders: every key of the documented response, null when unknown."""

NOTE_FLAGS_SCHEMA: Schema = {"id": "integer", "pinned": "boolean", "only_super_admin": "boolean"}
"""What a note's keys are checked against whatever the rules (the stand-in always did)."""
NOTE_SCHEMA: Schema = {
    "id": "integer",
    "contact_id": "integer",
    "created_at": "date",
    "group_id": "integer",
    "only_super_admin": "boolean",
    "pinned": "boolean",
    "updated_at": "date",
    "user": USER_SCHEMA,
}
"""A note's keys besides its text, as the request body documents them. `contact_id`,
`group_id`, the times and the author are the server's: checked, then taken from the
stored note (or, for a new note, from the write's instant and the API key's user)."""

SEED_HISTORY_KEYS: Mapping[str, EntryKind] = {
    "deleted_formdatas": "formdatas",
    "deleted_custom_fields": "custom_fields",
}

SEARCHABLE_FIELDS = frozenset(name for name, kind in BASIC_FIELD_KINDS.items() if kind != "boolean")
SEARCH_GROUPS = {"$all": True, "$at_least_one": False}
"""Group key -> whether every item must match (else at least one)."""
STRICT_EQUALS = "eql:strictdata"
LOOSE_EQUALS = "eql"
MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
"""Used when a search omits `per_page`: the docs do not say whether it may be omitted."""

DEFAULT_GROUP_ID = 4242
DEFAULT_API_USER_ID = 9001
"""Stand-in values for the space's group and the user behind the API key."""
FIRST_CONTACT_ID = 700_001
FIRST_ENTRY_ID = 5_000_001
FIRST_NOTE_ID = 80_001
DEFAULT_API_USER: Mapping[str, Any] = {
    "id": DEFAULT_API_USER_ID,
    "firstname": "Clé",
    "surname": "API",
    "group_id": [DEFAULT_GROUP_ID],
}
"""The author of the notes an API write creates, unless the seed names its `api_user`."""
WRITE_DATE_FORM = "YYYY-MM-DDTHH:mm:ss.SSSZ"

_MILLIS_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_TOKEN_SEPARATORS = re.compile(r"[\W_]+")
_TAG_COLORS = ("#4f46e5", "#0891b2", "#16a34a", "#ca8a04", "#dc2626", "#9333ea", "#475569")


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- errors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One item of a problem answer's `errors[]`."""

    location: str
    message: str
    value: Any = None

    def as_json(self) -> JsonObject:
        return {"location": self.location, "message": self.message, "value": self.value}


class InvalidRequest(Exception):
    """The request is refused whole; nothing was changed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.location}: {p.message}" for p in self.problems))


class UnknownContact(LookupError):
    def __init__(self, contact_id: int) -> None:
        self.contact_id = contact_id
        super().__init__(f"no contact has id {contact_id}")


class SeedError(ValueError):
    """The seed (forms and contacts) cannot be loaded."""


# -- forms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefValue:
    id: int
    label: str | None
    value: Any
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class Form:
    id: int
    type: str
    label: str
    section: str
    refvalues: Mapping[int, RefValue]
    definition: Mapping[str, Any]
    """The form as seeded, which is what the forms endpoints answer."""

    @property
    def is_custom_field(self) -> bool:
        return self.section == CUSTOM_FIELDS_SECTION

    @property
    def keeps_single_entry(self) -> bool:
        return self.type in SINGLE_ENTRY_TYPES


class FormCatalog:
    """The space's forms. Qomon creates them only in its web UI, so they never change here."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]]) -> None:
        self._forms: dict[int, Form] = {}
        seen_refvalues: set[int] = set()
        for index, definition in enumerate(definitions):
            form = _load_form(definition, f"forms[{index}]")
            if form.id in self._forms:
                raise SeedError(f"forms[{index}]: form id {form.id} is used twice")
            clash = seen_refvalues & form.refvalues.keys()
            if clash:
                raise SeedError(f"forms[{index}]: refvalue id {min(clash)} is used twice")
            seen_refvalues |= form.refvalues.keys()
            self._forms[form.id] = form

    def get(self, form_id: int) -> Form | None:
        return self._forms.get(form_id)

    def definitions(self, section: str) -> list[JsonObject]:
        return [
            copy.deepcopy(dict(f.definition)) for f in self._forms.values() if f.section == section
        ]

    def definition(self, form_id: int) -> JsonObject | None:
        form = self._forms.get(form_id)
        return None if form is None else copy.deepcopy(dict(form.definition))


def _load_form(definition: Mapping[str, Any], where: str) -> Form:
    if not isinstance(definition, Mapping):
        raise SeedError(f"{where}: a form must be an object")
    form_id = definition.get("id")
    form_type = definition.get("type")
    section = definition.get("section")
    if not _is_int(form_id):
        raise SeedError(f"{where}.id: must be an integer")
    if not isinstance(form_type, str) or not form_type:
        raise SeedError(f"{where}.type: must be the input type (radio, checkbox, text, ...)")
    if section not in FORM_FAMILIES:
        raise SeedError(f"{where}.section: must be one of {', '.join(FORM_FAMILIES)}")
    raw_refvalues = definition.get("refvalues")
    if not isinstance(raw_refvalues, list) or not raw_refvalues:
        raise SeedError(f"{where}.refvalues: must be a non-empty list")
    refvalues: dict[int, RefValue] = {}
    for index, raw in enumerate(raw_refvalues):
        spot = f"{where}.refvalues[{index}]"
        if not isinstance(raw, Mapping) or not _is_int(raw.get("id")):
            raise SeedError(f"{spot}: must be an object with an integer id")
        if raw.get("form_id", form_id) != form_id:
            raise SeedError(f"{spot}.form_id: must be the form's id {form_id}")
        if raw["id"] in refvalues:
            raise SeedError(f"{spot}: refvalue id {raw['id']} is used twice")
        refvalues[raw["id"]] = RefValue(
            id=raw["id"],
            label=raw.get("label"),
            value=raw.get("value"),
            minimum=_as_number(raw.get("min")),
            maximum=_as_number(raw.get("max")),
        )
    if form_type.lower() in FREE_INPUT_TYPES and len(refvalues) != 1:
        raise SeedError(f"{where}: a free-input form has exactly one refvalue")
    return Form(
        id=form_id,
        type=form_type.lower(),
        label=str(definition.get("label", "")),
        section=section,
        refvalues=refvalues,
        definition=copy.deepcopy(dict(definition)),
    )


# -- what is stored ---------------------------------------------------------------------


@dataclass
class Entry:
    """One advanced-field answer (a formdata or a custom field)."""

    id: int
    kind: EntryKind
    form_id: int
    form_ref_id: int
    data: Any
    date: str | None
    survey_id: int | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass
class Note:
    id: int
    data: str
    pinned: bool
    only_super_admin: bool
    created_at: datetime
    updated_at: datetime
    author: JsonObject
    """The user who wrote it, in the documented response's shape (`notes[].user`)."""


def author_shape(user: Mapping[str, Any]) -> JsonObject:
    """A note's author as the documented response shows one: every documented key, in
    order, null when not known, then any other key as given."""
    shape: JsonObject = {key: copy.deepcopy(user.get(key)) for key in USER_KEYS}
    role = user.get("role_data")
    if isinstance(role, Mapping):
        shape["role_data"] = {key: copy.deepcopy(role.get(key)) for key in ROLE_SCHEMA}
        shape["role_data"].update(
            (key, copy.deepcopy(value)) for key, value in role.items() if key not in ROLE_SCHEMA
        )
    shape.update((key, copy.deepcopy(value)) for key, value in user.items() if key not in shape)
    return shape


@dataclass
class StoredContact:
    id: int
    group_id: int
    user_id: int
    lastchangeuserid: int
    created_at: datetime
    updated_at: datetime
    lastchange: datetime
    fields: dict[str, Any]
    """Every basic field under its current write name; a cleared field is None."""
    address: dict[str, str]
    tags: list[str]
    action_ids: list[int]
    notes: list[Note]
    entries: list[Entry]
    """Live and soft-deleted entries, oldest first."""
    unknown_fields: dict[str, Any]
    """Top-level keys no schema lists (`external_id`, ...), kept as sent."""

    def live_entries(self, kind: EntryKind) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and e.deleted_at is None]


# -- what a write asks for --------------------------------------------------------------


@dataclass(frozen=True)
class EntryWrite:
    kind: EntryKind
    form_id: int
    form_ref_id: int
    data: Any
    date: str | None
    survey_id: int | None


@dataclass(frozen=True)
class NoteWrite:
    id: int | None
    data: str
    pinned: bool
    only_super_admin: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None
    author: JsonObject | None = None
    """The times and author as sent: a write's are ignored, a seed's are what is stored."""


@dataclass(frozen=True)
class WriteRules:
    """How strictly a write body's values are checked (see the module docstring)."""

    documented_types: bool = True
    """Every value must have its documented type. False: the lenient checks the stand-in
    made before (any scalar for `age_category` / `user_contact_id`, numbers for numeric
    answers, any string as a birthdate, the note keys besides id and flags unchecked)."""
    write_dates: bool = True
    """Dates must be in the documented input form; False takes any ISO 8601 instant."""


WRITE_RULES = WriteRules()
"""What `PATCH /contacts/{id}` and `POST /contacts` take by default."""
SEED_RULES = WriteRules(documented_types=True, write_dates=False)
"""The seed holds what Qomon stores, which it answers in several date precisions."""


@dataclass(frozen=True)
class ContactWrite:
    """A validated write body: the whole contact as it must be after the write."""

    fields: dict[str, Any]
    address: dict[str, str]
    tags: list[str]
    action_ids: list[int]
    notes: list[NoteWrite]
    entries: list[EntryWrite]
    unknown_fields: dict[str, Any]


def parse_contact_write(
    contact: Mapping[str, Any],
    forms: FormCatalog,
    *,
    naming: Naming = "current",
    rules: WriteRules = WRITE_RULES,
    location: str = "contact",
) -> ContactWrite:
    """Validate a write body and say what the contact becomes; raises `InvalidRequest`.

    A writable field that is absent is cleared (full replacement). Server-owned fields are
    ignored. Any other key is kept as sent. The older generation's names are write names
    only when playing that generation; otherwise they are unknown keys like any other.
    """
    problems: list[Problem] = []
    sent, unknown = _sort_keys(contact, naming)

    def where(name: str) -> str:
        return f"{location}.{sent[name][0]}" if name in sent else f"{location}.{name}"

    def value_of(name: str) -> Any:
        return sent[name][1] if name in sent else None

    kinds = {**BASIC_FIELD_KINDS, **({} if rules.documented_types else LENIENT_FIELD_KINDS)}
    fields: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = value_of(name)
        message = None if value is None else _value_problem(kind, value, rules)
        if message is not None:
            problems.append(Problem(where(name), message, value))
        fields[name] = copy.deepcopy(value)

    address = _parse_address(value_of("address"), where("address"), problems)
    tags = _parse_tags(value_of("tags"), where("tags"), problems)
    action_ids = _parse_action_ids(value_of("action_ids"), where("action_ids"), problems)
    notes = _parse_notes(value_of("notes"), where("notes"), naming, rules, problems)
    entries = [
        entry
        for kind in ENTRY_KINDS
        for entry in _parse_entries(
            value_of(kind), kind, where(kind), forms, rules=rules, problems=problems
        )
    ]
    if problems:
        raise InvalidRequest(problems)
    return ContactWrite(
        fields=fields,
        address=address,
        tags=tags,
        action_ids=action_ids,
        notes=notes,
        entries=_keep_last_single_entries(entries, forms),
        unknown_fields=unknown,
    )


def _sort_keys(
    contact: Mapping[str, Any], naming: Naming
) -> tuple[dict[str, tuple[str, Any]], dict[str, Any]]:
    """The writable fields sent (write name -> key as sent, value) and the unknown keys."""
    sent: dict[str, tuple[str, Any]] = {}
    unknown: dict[str, Any] = {}
    for key, value in contact.items():
        name = key if key in WRITABLE_FIELDS else None
        if name is None and naming == "legacy":
            name = CURRENT_NAMES.get(key)
        if name is None:
            if key not in SERVER_OWNED_FIELDS:
                unknown[key] = copy.deepcopy(value)
            continue
        if name in sent and key != name:
            continue  # the current name wins over the older one
        sent[name] = (key, value)
    return sent, unknown


def _value_problem(kind: ValueKind, value: Any, rules: WriteRules) -> str | None:
    """Why a value that is not null is not of `kind` under `rules`; None when it is."""
    if kind == "string":
        return None if isinstance(value, str) else "must be a string or null"
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true, false or null"
    if kind == "gender":
        return None if value in GENDERS else "must be M, F, O or null"
    if kind == "date":
        return _date_problem(value, rules)
    if kind == "integers":
        ok = isinstance(value, list) and all(_is_int(item) for item in value)
        return None if ok else "must be a list of integers or null"
    if kind == "integer":
        return None if _is_int(value) else "must be an integer or null"
    return "must be a string, a number or null" if isinstance(value, dict | list) else None


def _date_problem(value: Any, rules: WriteRules) -> str | None:
    if rules.write_dates:
        if is_millis_timestamp(value):
            return None
        return f"must be a date written {WRITE_DATE_FORM} (UTC, milliseconds) or null"
    return None if parse_instant(value) is not None else "must be an ISO 8601 timestamp or null"


def _check_schema(
    value: Mapping[str, Any],
    schema: Schema,
    where: str,
    rules: WriteRules,
    problems: list[Problem],
) -> None:
    """Notes a problem for each key of `value` whose type is not the schema's; keys the
    schema does not list are not looked at, and null is always taken."""
    for key, kind in schema.items():
        item = value.get(key)
        if item is None:
            continue
        spot = f"{where}.{key}"
        if isinstance(kind, Mapping):
            if isinstance(item, Mapping):
                _check_schema(item, kind, spot, rules, problems)
            else:
                problems.append(Problem(spot, "must be an object or null", item))
            continue
        message = _value_problem(kind, item, rules)
        if message is not None:
            problems.append(Problem(spot, message, item))


def _parse_address(value: Any, where: str, problems: list[Problem]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(Problem(where, "must be an object or null", value))
        return {}
    address: dict[str, str] = {}
    # Server-owned keys (id, score, latitude, ...) and keys outside the write schema are
    # ignored, as an API that validates against its schema would.
    for key in ADDRESS_KEYS:
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, str):
            # The write schema says strings, although GET may answer numbers.
            problems.append(Problem(f"{where}.{key}", "must be a string or null", item))
            continue
        address[key] = item
    return address


def _parse_tags(value: Any, where: str, problems: list[Problem]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem(where, "must be a list of {name} objects", value))
        return []
    names: list[str] = []
    for index, tag in enumerate(value):
        name = tag.get("name") if isinstance(tag, Mapping) else None
        if not isinstance(name, str):
            problems.append(
                Problem(f"{where}[{index}]", "must be an object with a string name", tag)
            )
            continue
        names.append(name)
    return names


def _parse_action_ids(value: Any, where: str, problems: list[Problem]) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem(where, "must be a list of integers", value))
        return []
    ids: list[int] = []
    for index, item in enumerate(value):
        if not _is_int(item):
            problems.append(Problem(f"{where}[{index}]", "must be an integer", item))
            continue
        ids.append(item)
    return ids


def _parse_notes(
    value: Any, where: str, naming: Naming, rules: WriteRules, problems: list[Problem]
) -> list[NoteWrite]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem(where, "must be a list of note objects", value))
        return []
    notes = [
        _parse_note(note, f"{where}[{index}]", naming, rules, problems)
        for index, note in enumerate(value)
    ]
    return [note for note in notes if note is not None]


def _parse_note(
    note: Any, where: str, naming: Naming, rules: WriteRules, problems: list[Problem]
) -> NoteWrite | None:
    if not isinstance(note, Mapping):
        problems.append(Problem(where, "must be an object with a string data", note))
        return None
    before = len(problems)
    text_key = "content" if naming == "legacy" and "data" not in note else "data"
    text = note.get(text_key)
    if not isinstance(text, str):
        problems.append(Problem(f"{where}.{text_key}", "must be a string", text))
    schema = NOTE_SCHEMA if rules.documented_types else NOTE_FLAGS_SCHEMA
    _check_schema(note, schema, where, rules, problems)
    if len(problems) > before or not isinstance(text, str):
        return None
    if not rules.documented_types:
        return NoteWrite(
            note.get("id"), text, note.get("pinned") is True, note.get("only_super_admin") is True
        )
    user = note.get("user")
    return NoteWrite(
        id=note.get("id"),
        data=text,
        pinned=note.get("pinned") is True,
        only_super_admin=note.get("only_super_admin") is True,
        created_at=parse_instant(note.get("created_at")),
        updated_at=parse_instant(note.get("updated_at")),
        author=author_shape(user) if isinstance(user, Mapping) else None,
    )


def _parse_entries(
    value: Any,
    kind: EntryKind,
    where: str,
    forms: FormCatalog,
    *,
    rules: WriteRules,
    problems: list[Problem],
) -> list[EntryWrite]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem(where, "must be a list of entry objects", value))
        return []
    entries: list[EntryWrite] = []
    for index, item in enumerate(value):
        entry = _parse_entry(item, kind, f"{where}[{index}]", forms, rules=rules, problems=problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _entry_form(
    item: Any, kind: EntryKind, where: str, forms: FormCatalog, problems: list[Problem]
) -> tuple[Form, RefValue] | None:
    """The form and value an entry names, or None after noting why it names none."""
    if not isinstance(item, Mapping):
        problems.append(Problem(where, "must be an object {form_id, form_ref_id, data}", item))
        return None
    form_id = item.get("form_id")
    if not _is_int(form_id):
        problems.append(Problem(f"{where}.form_id", "must be an integer form id", form_id))
        return None
    form = forms.get(form_id)
    if form is None:
        problems.append(Problem(f"{where}.form_id", f"no form has id {form_id}", form_id))
        return None
    if kind == "custom_fields" and not form.is_custom_field:
        message = f"form {form_id} is a {form.section} form, not a custom field"
        problems.append(Problem(f"{where}.form_id", message, form_id))
        return None
    if kind == "formdatas" and form.is_custom_field:
        message = f"form {form_id} is a custom field: it belongs in custom_fields"
        problems.append(Problem(f"{where}.form_id", message, form_id))
        return None
    ref_id = item.get("form_ref_id")
    refvalue = form.refvalues.get(ref_id) if _is_int(ref_id) else None
    if refvalue is None:
        message = f"is not a value of form {form_id} ({form.label})"
        problems.append(Problem(f"{where}.form_ref_id", message, ref_id))
        return None
    return form, refvalue


def _parse_entry(
    item: Any,
    kind: EntryKind,
    where: str,
    forms: FormCatalog,
    *,
    rules: WriteRules,
    problems: list[Problem],
) -> EntryWrite | None:
    named = _entry_form(item, kind, where, forms, problems)
    if named is None:
        return None
    form, refvalue = named
    before = len(problems)
    data = item.get("data")
    data_problem = _data_problem(form, refvalue, data, rules)
    if data_problem is not None:
        problems.append(Problem(f"{where}.data", data_problem, data))
    date = item.get("date")
    if date is not None and not is_millis_timestamp(date):
        # Always the write form, as the stand-in always took it, whatever the rules.
        problems.append(Problem(f"{where}.date", f"must be written {WRITE_DATE_FORM}", date))
    survey_id = item.get("survey_id")
    if survey_id is not None and not _is_int(survey_id):
        problems.append(Problem(f"{where}.survey_id", "must be an integer or null", survey_id))
    if len(problems) > before:
        return None
    return EntryWrite(kind, form.id, refvalue.id, copy.deepcopy(data), date, survey_id)


def _data_problem(form: Form, refvalue: RefValue, data: Any, rules: WriteRules) -> str | None:
    if form.type in CHOICE_TYPES:
        if data != refvalue.value:
            return f"must be {refvalue.value!r}, the value of refvalue {refvalue.id}"
        return None
    if form.type == "text":
        return None if isinstance(data, str) else "must be text"
    if form.type == "date":
        return None if is_millis_timestamp(data) else f"must be a date {WRITE_DATE_FORM}"
    if form.type in NUMBER_TYPES:
        if rules.documented_types and not isinstance(data, str):
            return 'must be a number written as a string (documented type), e.g. "4"'
        number = _as_number(data)
        if number is None:
            return "must be a number"
        if form.type == "integer" and not number.is_integer():
            return "must be a whole number"
        if refvalue.minimum is not None and number < refvalue.minimum:
            return f"must be at least {refvalue.minimum:g}"
        if refvalue.maximum is not None and number > refvalue.maximum:
            return f"must be at most {refvalue.maximum:g}"
    return None


def _keep_last_single_entries(entries: list[EntryWrite], forms: FormCatalog) -> list[EntryWrite]:
    last: dict[int, int] = {}
    for index, entry in enumerate(entries):
        form = forms.get(entry.form_id)
        if form is not None and form.keeps_single_entry:
            last[entry.form_id] = index
    return [e for i, e in enumerate(entries) if last.get(e.form_id, i) == i]


# -- search -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    attr: str
    strict: bool
    value: str


@dataclass(frozen=True)
class Group:
    every: bool
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class SearchRequest:
    every: bool
    groups: tuple[Group, ...]
    per_page: int
    page: int


def parse_search(
    advanced_search: Any, *, location: str = "body.data.advanced_search"
) -> SearchRequest:
    """Validate `data.advanced_search`; raises `InvalidRequest` naming each bad spot."""
    if not isinstance(advanced_search, Mapping):
        raise InvalidRequest([Problem(location, "must be an object", advanced_search)])
    problems: list[Problem] = []
    per_page = advanced_search.get("per_page", DEFAULT_PER_PAGE)
    page = advanced_search.get("page", 0)
    if not _is_int(per_page) or not 1 <= per_page <= MAX_PER_PAGE:
        message = f"must be an integer from 1 to {MAX_PER_PAGE}"
        problems.append(Problem(f"{location}.per_page", message, per_page))
    if not _is_int(page) or page < 0:
        problems.append(Problem(f"{location}.page", "must be an integer, 0 or more", page))
    where = f"{location}.query"
    groups: list[Group] = []
    root = _group_items(advanced_search.get("query"), where, problems, root=True)
    if root is not None:
        root_key, items = root
        for index, item in enumerate(items):
            spot = f"{where}.{root_key}[{index}]"
            group = _group_items(item, spot, problems, root=False)
            if group is None:
                continue
            group_key, raw_conditions = group
            conditions = [
                _parse_condition(raw, f"{spot}.{group_key}[{position}]", problems)
                for position, raw in enumerate(raw_conditions)
            ]
            groups.append(
                Group(SEARCH_GROUPS[group_key], tuple(c for c in conditions if c is not None))
            )
    if problems or root is None:
        raise InvalidRequest(problems)
    return SearchRequest(SEARCH_GROUPS[root[0]], tuple(groups), per_page, page)


def _group_items(
    node: Any, where: str, problems: list[Problem], *, root: bool
) -> tuple[str, list[Any]] | None:
    """The key and items of a group node, or None after noting why it is not one.

    Observed: the query has exactly two levels, the root and its groups of conditions.
    """
    if isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in SEARCH_GROUPS:
        key, items = next(iter(node.items()))
        if isinstance(items, list):
            return key, items
        problems.append(Problem(f"{where}.{key}", "must be a list", items))
        return None
    kinds = " or ".join(f'{{"{key}": [...]}}' for key in SEARCH_GROUPS)
    if isinstance(node, Mapping) and "$condition" in node:
        message = (
            f"the query has exactly two levels: its root must be {kinds}"
            if root
            else f"a condition cannot sit directly under the root: wrap it in {kinds}"
        )
    else:
        message = f"must be {kinds}"
    problems.append(Problem(where, message, node))
    return None


def _parse_condition(node: Any, where: str, problems: list[Problem]) -> Condition | None:
    body = node.get("$condition") if isinstance(node, Mapping) and len(node) == 1 else None
    if not isinstance(body, Mapping):
        message = 'must be {"$condition": {"attr", "ope", "value"}}: groups do not nest deeper'
        problems.append(Problem(where, message, node))
        return None
    where = f"{where}.$condition"
    attr, ope, value = body.get("attr"), body.get("ope"), body.get("value")
    before = len(problems)
    attr = CURRENT_NAMES.get(attr, attr) if isinstance(attr, str) else attr
    if attr != "tags" and attr not in SEARCHABLE_FIELDS:
        problems.append(Problem(f"{where}.attr", "is not a searchable attribute", body.get("attr")))
    if ope not in (STRICT_EQUALS, LOOSE_EQUALS):
        message = f"unsupported operator: use {STRICT_EQUALS!r} or {LOOSE_EQUALS!r}"
        problems.append(Problem(f"{where}.ope", message, ope))
    if not isinstance(value, str):
        problems.append(Problem(f"{where}.value", "must be a string", value))
    if len(problems) > before or not isinstance(attr, str) or not isinstance(value, str):
        return None
    return Condition(attr, ope == STRICT_EQUALS, value)


def _condition_matches(contact: StoredContact, condition: Condition) -> bool:
    if condition.attr == "tags":
        candidates = contact.tags
    else:
        value = contact.fields.get(condition.attr)
        candidates = [] if value is None or isinstance(value, bool) else [str(value)]
    wanted = condition.value.casefold()
    for candidate in candidates:
        text = candidate.casefold()
        if condition.strict:
            if text == wanted:
                return True
        elif text.startswith(wanted) or any(
            token.startswith(wanted) for token in _TOKEN_SEPARATORS.split(text) if token
        ):
            # Observed: `eql` is a loose case-insensitive token/prefix match, so searching
            # one e-mail also finds longer addresses that begin with it.
            return True
    return False


def _group_matches(contact: StoredContact, group: Group) -> bool:
    results = (_condition_matches(contact, c) for c in group.conditions)
    return all(results) if group.every else any(results)


# -- the store --------------------------------------------------------------------------


class ContactStore:
    """The contacts of one Qomon space, with Qomon's write, read and search semantics."""

    def __init__(
        self,
        forms: FormCatalog,
        *,
        clock: Clock = utc_now,
        group_id: int = DEFAULT_GROUP_ID,
        api_user: Mapping[str, Any] = DEFAULT_API_USER,
    ) -> None:
        """`api_user` is the user behind the API key (it needs an integer `id`): the
        owner of the contacts it creates and the author of the notes it writes."""
        self.forms = forms
        self.group_id = group_id
        self.api_user = author_shape(api_user)
        self.api_user_id: int = api_user["id"]
        self._clock = clock
        self._contacts: dict[int, StoredContact] = {}
        self._entry_ids = itertools.count(FIRST_ENTRY_ID)
        self._highest_note_id = FIRST_NOTE_ID - 1
        self._highest_contact_id = FIRST_CONTACT_ID - 1
        self._tag_counts: Counter[str] | None = None

    @classmethod
    def from_seed(cls, seed: Mapping[str, Any], *, clock: Clock = utc_now) -> ContactStore:
        """A store holding `{"forms": [...], "contacts": [...], "api_user"?: {...}}`;
        raises `SeedError`. `api_user` is the documented user shape of a note's author."""
        if not isinstance(seed, Mapping):
            raise SeedError('the seed must be an object {"forms": [...], "contacts": [...]}')
        forms, contacts = seed.get("forms", []), seed.get("contacts", [])
        if not isinstance(forms, list) or not isinstance(contacts, list):
            raise SeedError("the seed's forms and contacts must be lists")
        store = cls(FormCatalog(forms), clock=clock, api_user=_seed_api_user(seed))
        for index, record in enumerate(contacts):
            record_id = record.get("id") if isinstance(record, Mapping) else None
            if _is_int(record_id) and record_id in store._contacts:
                raise SeedError(f"contacts[{index}]: contact id {record_id} is used twice")
            try:
                store.put_seed_contact(record)
            except InvalidRequest as error:
                raise SeedError(f"contacts[{index}] (id {record_id}): {error}") from None
        return store

    # -- reading ------------------------------------------------------------------------

    def get(self, contact_id: int) -> StoredContact:
        try:
            return self._contacts[contact_id]
        except KeyError:
            raise UnknownContact(contact_id) from None

    def contacts(self) -> list[StoredContact]:
        return [self._contacts[key] for key in sorted(self._contacts)]

    def search(self, request: SearchRequest) -> list[StoredContact]:
        """One page of matches in id order. No total: a short or empty page is the end."""

        def matches(contact: StoredContact) -> bool:
            results = (_group_matches(contact, group) for group in request.groups)
            return all(results) if request.every else any(results)

        found = [contact for contact in self.contacts() if matches(contact)]
        start = request.page * request.per_page
        return found[start : start + request.per_page]

    # -- writing ------------------------------------------------------------------------

    def replace(
        self,
        contact_id: int,
        contact: Mapping[str, Any],
        *,
        naming: Naming = "current",
        rules: WriteRules = WRITE_RULES,
        location: str = "contact",
    ) -> StoredContact:
        """`PATCH /contacts/{id}`: the contact becomes exactly `contact`."""
        stored = self.get(contact_id)
        write = parse_contact_write(
            contact, self.forms, naming=naming, rules=rules, location=location
        )
        now = self._clock()
        self._apply(stored, write, now)
        # Observed: API writes move UpdatedAt but not lastchange.
        stored.updated_at = now
        return stored

    def create(
        self,
        contact: Mapping[str, Any],
        *,
        naming: Naming = "current",
        rules: WriteRules = WRITE_RULES,
        location: str = "contact",
    ) -> StoredContact:
        """`POST /contacts`: a new contact with a new id, synchronously."""
        write = parse_contact_write(
            contact, self.forms, naming=naming, rules=rules, location=location
        )
        now = self._clock()
        stored = self._new_contact(self._next_contact_id(), now, now, now, self.api_user_id)
        self._apply(stored, write, now)
        self._contacts[stored.id] = stored
        return stored

    def delete(self, contact_id: int) -> None:
        self.get(contact_id)
        del self._contacts[contact_id]
        self._tag_counts = None

    def put_seed_contact(
        self, record: Mapping[str, Any], *, contact_id: int | None = None
    ) -> tuple[StoredContact, bool]:
        """Insert or replace one contact from the seed format; True when it was inserted.

        The seed format is the documented write shape plus `id`, optional server
        timestamps (`CreatedAt`, `UpdatedAt`, `lastchange`), `user_id`, `lastchangeuserid`,
        and `deleted_formdatas` / `deleted_custom_fields`: history stored soft-deleted.
        Values have their documented types; timestamps may have any ISO 8601 precision.
        A note's `id`, `created_at`, `updated_at` and author `user` are stored as given
        (by default: a new id, the contact's creation, the API key's user).
        """
        if not isinstance(record, Mapping):
            raise InvalidRequest([Problem("contact", "must be an object", record)])
        new_id = record.get("id") if contact_id is None else contact_id
        if not _is_int(new_id) or new_id <= 0:
            raise InvalidRequest([Problem("contact.id", "must be a positive integer", new_id)])
        problems: list[Problem] = []
        times = {
            key: _parse_seed_time(record.get(key), f"contact.{key}", problems)
            for key in ("CreatedAt", "UpdatedAt", "lastchange")
        }
        history = self._seed_history(record, problems)
        body = {k: v for k, v in record.items() if k not in SEED_HISTORY_KEYS}
        try:
            write = parse_contact_write(body, self.forms, rules=SEED_RULES)
        except InvalidRequest as error:
            problems.extend(error.problems)
        else:
            problems.extend(self._note_id_problems(write, new_id))
        if problems:
            raise InvalidRequest(problems)
        now = self._clock()
        created_at = times["CreatedAt"] or now
        updated_at = times["UpdatedAt"] or created_at
        user_id, changer = record.get("user_id"), record.get("lastchangeuserid")
        stored = self._new_contact(
            new_id,
            created_at,
            updated_at,
            times["lastchange"] or updated_at,
            user_id if _is_int(user_id) else self.api_user_id,
        )
        if _is_int(changer):
            stored.lastchangeuserid = changer
        for entry, deleted_at in history:
            stored.entries.append(self._new_entry(entry, created_at, deleted_at or updated_at))
        self._apply(stored, write, created_at, seeding=True)
        stored.updated_at = updated_at
        inserted = new_id not in self._contacts
        self._contacts[new_id] = stored
        self._highest_contact_id = max(self._highest_contact_id, new_id)
        return stored, inserted

    def _seed_history(
        self, record: Mapping[str, Any], problems: list[Problem]
    ) -> list[tuple[EntryWrite, datetime | None]]:
        """A seed record's soft-deleted entries, with when each was deleted."""
        history: list[tuple[EntryWrite, datetime | None]] = []
        for key, kind in SEED_HISTORY_KEYS.items():
            raw_entries = record.get(key)
            if raw_entries is None:
                continue
            if not isinstance(raw_entries, list):
                problems.append(Problem(f"contact.{key}", "must be a list", raw_entries))
                continue
            for index, raw in enumerate(raw_entries):
                spot = f"contact.{key}[{index}]"
                entry = _parse_entry(
                    raw, kind, spot, self.forms, rules=SEED_RULES, problems=problems
                )
                if entry is not None:
                    deleted_at = _parse_seed_time(
                        raw.get("deleted_at"), f"{spot}.deleted_at", problems
                    )
                    history.append((entry, deleted_at))
        return history

    def _note_id_problems(self, write: ContactWrite, contact_id: int) -> list[Problem]:
        """A seeded note's id must be the space's only note with that id."""
        taken = {
            note.id
            for contact in self._contacts.values()
            if contact.id != contact_id
            for note in contact.notes
        }
        problems: list[Problem] = []
        for index, note in enumerate(write.notes):
            if note.id is None:
                continue
            if note.id in taken:
                message = f"note id {note.id} is used twice"
                problems.append(Problem(f"contact.notes[{index}].id", message, note.id))
            taken.add(note.id)
        return problems

    def _apply(
        self, stored: StoredContact, write: ContactWrite, now: datetime, *, seeding: bool = False
    ) -> None:
        stored.fields = copy.deepcopy(write.fields)
        stored.address = dict(write.address)
        stored.tags = list(write.tags)
        stored.action_ids = list(write.action_ids)
        stored.unknown_fields = copy.deepcopy(write.unknown_fields)
        # DOC: every write soft-deletes all entries and recreates those sent, with new ids,
        # even when nothing changed.
        for entry in stored.entries:
            if entry.deleted_at is None:
                entry.deleted_at = now
                entry.updated_at = now
        stored.entries.extend(self._new_entry(entry, now) for entry in write.entries)
        if seeding:
            stored.notes = [self._seeded_note(sent, now) for sent in write.notes]
        else:
            stored.notes = self._written_notes(stored.notes, write.notes, now)
        self._tag_counts = None

    def _written_notes(
        self, before: list[Note], sent: list[NoteWrite], now: datetime
    ) -> list[Note]:
        """The notes after a write. A note sent with the id of one of the contact's notes is
        that note: it keeps its id, creation and author, and `updated_at` moves only when
        its text or flags change. Any other note is new: a new id, created now, by the API
        key's user. The times and author a write carries are the server's: ignored."""
        kept = {note.id: note for note in before}
        notes: list[Note] = []
        for write in sent:
            note = kept.pop(write.id, None) if write.id is not None else None
            if note is None:
                note = Note(
                    id=self._next_note_id(),
                    data=write.data,
                    pinned=write.pinned,
                    only_super_admin=write.only_super_admin,
                    created_at=now,
                    updated_at=now,
                    author=copy.deepcopy(self.api_user),
                )
            elif (note.data, note.pinned, note.only_super_admin) != (
                write.data,
                write.pinned,
                write.only_super_admin,
            ):
                note.data = write.data
                note.pinned = write.pinned
                note.only_super_admin = write.only_super_admin
                note.updated_at = now
            notes.append(note)
        return notes

    def _seeded_note(self, write: NoteWrite, created: datetime) -> Note:
        if write.id is None:
            note_id = self._next_note_id()
        else:
            note_id = write.id
            self._highest_note_id = max(self._highest_note_id, note_id)
        created_at = write.created_at or created
        return Note(
            id=note_id,
            data=write.data,
            pinned=write.pinned,
            only_super_admin=write.only_super_admin,
            created_at=created_at,
            updated_at=write.updated_at or created_at,
            author=copy.deepcopy(write.author or self.api_user),
        )

    def _new_contact(
        self,
        contact_id: int,
        created_at: datetime,
        updated_at: datetime,
        lastchange: datetime,
        user_id: int,
    ) -> StoredContact:
        return StoredContact(
            id=contact_id,
            group_id=self.group_id,
            user_id=user_id,
            lastchangeuserid=user_id,
            created_at=created_at,
            updated_at=updated_at,
            lastchange=lastchange,
            fields=dict.fromkeys(BASIC_FIELDS),
            address={},
            tags=[],
            action_ids=[],
            notes=[],
            entries=[],
            unknown_fields={},
        )

    def _new_entry(
        self, write: EntryWrite, now: datetime, deleted_at: datetime | None = None
    ) -> Entry:
        return Entry(
            id=next(self._entry_ids),
            kind=write.kind,
            form_id=write.form_id,
            form_ref_id=write.form_ref_id,
            data=copy.deepcopy(write.data),
            date=write.date,
            survey_id=write.survey_id,
            created_at=now,
            updated_at=deleted_at or now,
            deleted_at=deleted_at,
        )

    def _next_contact_id(self) -> int:
        # Ids only grow: a deleted contact's id is never given again.
        self._highest_contact_id += 1
        return self._highest_contact_id

    def _next_note_id(self) -> int:
        # Above every note id seeded or given, so a new note never takes a seeded one's.
        self._highest_note_id += 1
        return self._highest_note_id

    # -- rendering ----------------------------------------------------------------------

    def render(
        self, contact: StoredContact, *, naming: Naming = "current", include_deleted: bool = False
    ) -> JsonObject:
        """The read shape GET answers, in one of the two naming generations."""
        if self._tag_counts is None:
            self._tag_counts = Counter(
                name for c in self._contacts.values() for name in set(c.tags)
            )
        tag_counts = self._tag_counts
        legacy = naming == "legacy"

        def name(current: str) -> str:
            return LEGACY_NAMES.get(current, current) if legacy else current

        def entries(kind: EntryKind) -> list[JsonObject]:
            chosen = [
                e
                for e in contact.entries
                if e.kind == kind and (include_deleted or e.deleted_at is None)
            ]
            return [self._render_entry(contact, e) for e in chosen]

        shape: JsonObject = {
            "id": contact.id,
            "group_id": contact.group_id,
            "user_id": contact.user_id,
        }
        for field_name in BASIC_FIELDS:
            shape[name(field_name)] = copy.deepcopy(contact.fields.get(field_name))
        shape["address"] = _render_address(contact, legacy=legacy)
        shape["tags"] = [
            {"name": tag, "appearance_count": tag_counts[tag], "color": _tag_color(tag)}
            for tag in contact.tags
        ]
        shape[name("action_ids")] = list(contact.action_ids)
        shape["formdatas"] = entries("formdatas")
        shape[name("custom_fields")] = entries("custom_fields")
        text_key = "content" if legacy else "data"
        shape["notes"] = [_render_note(contact, note, text_key) for note in contact.notes]
        shape["CreatedAt"] = format_micros(contact.created_at)
        shape["UpdatedAt"] = format_micros(contact.updated_at)
        shape["lastchange"] = format_millis(contact.lastchange)
        shape["lastchangeuserid"] = contact.lastchangeuserid
        for key, value in contact.unknown_fields.items():
            shape.setdefault(key, copy.deepcopy(value))
        return shape

    def _render_entry(self, contact: StoredContact, entry: Entry) -> JsonObject:
        form = self.forms.get(entry.form_id)
        refvalue = form.refvalues.get(entry.form_ref_id) if form is not None else None
        return {
            "id": entry.id,
            "form_id": entry.form_id,
            "form_ref_id": entry.form_ref_id,
            "data": copy.deepcopy(entry.data),
            # The docs do not say what an entry written without a date shows: its creation.
            "date": entry.date or format_millis(entry.created_at),
            "survey_id": entry.survey_id,
            "donedate": None,
            "label": refvalue.label if refvalue is not None else None,
            "type_of_form": form.section if form is not None else None,
            "group_id": contact.group_id,
            "contact_id": contact.id,
            "created_at": format_millis(entry.created_at),
            "updated_at": format_millis(entry.updated_at),
            "deleted_at": format_millis(entry.deleted_at) if entry.deleted_at else None,
        }

    def raw(self, contact: StoredContact) -> JsonObject:
        """Everything stored, soft-deleted entries included, for the inspection surface."""

        def entries(kind: EntryKind) -> list[JsonObject]:
            return [
                {
                    "id": e.id,
                    "form_id": e.form_id,
                    "form_ref_id": e.form_ref_id,
                    "data": copy.deepcopy(e.data),
                    "date": e.date,
                    "survey_id": e.survey_id,
                    "created_at": format_millis(e.created_at),
                    "updated_at": format_millis(e.updated_at),
                    "deleted_at": format_millis(e.deleted_at) if e.deleted_at else None,
                }
                for e in contact.entries
                if e.kind == kind
            ]

        return {
            "id": contact.id,
            "group_id": contact.group_id,
            "user_id": contact.user_id,
            "CreatedAt": format_micros(contact.created_at),
            "UpdatedAt": format_micros(contact.updated_at),
            "lastchange": format_millis(contact.lastchange),
            "lastchangeuserid": contact.lastchangeuserid,
            **copy.deepcopy(contact.fields),
            "address": dict(contact.address),
            "tags": [{"name": tag} for tag in contact.tags],
            "action_ids": list(contact.action_ids),
            "notes": [_render_note(contact, note, "data") for note in contact.notes],
            "formdatas": entries("formdatas"),
            "custom_fields": entries("custom_fields"),
            "unknown_fields": copy.deepcopy(contact.unknown_fields),
        }


def _render_note(contact: StoredContact, note: Note, text_key: str) -> JsonObject:
    """A note in the documented response's shape; dates in the write form, so that a
    note read can be sent back as it is."""
    return {
        "id": note.id,
        "contact_id": contact.id,
        "created_at": format_millis(note.created_at),
        text_key: note.data,
        "group_id": contact.group_id,
        "only_super_admin": note.only_super_admin,
        "pinned": note.pinned,
        "updated_at": format_millis(note.updated_at),
        "user": copy.deepcopy(note.author),
    }


def _render_address(contact: StoredContact, *, legacy: bool) -> JsonObject:
    address: JsonObject = {key: contact.address.get(key) for key in ADDRESS_KEYS}
    if legacy:
        for key in LEGACY_NUMERIC_ADDRESS_KEYS:
            value = address[key]
            if isinstance(value, str) and value.isascii() and value.isdigit():
                address[key] = int(value)
    city = contact.address.get("city")
    latitude = longitude = None
    if city:
        # A made-up but stable geocode inside mainland France: enough for a read shape.
        key = "|".join(contact.address.get(k, "") for k in ("housenumber", "street", "postalcode"))
        spread = zlib.crc32(f"{key}|{city}".encode())
        latitude = round(43.0 + (spread % 70_000) / 10_000, 6)
        longitude = round(-1.5 + (spread // 70_000 % 85_000) / 10_000, 6)
    address.update(
        id=contact.id,
        score=(0.95 if contact.address.get("street") else 0.5) if city else None,
        latitude=latitude,
        longitude=longitude,
        location=None
        if latitude is None
        else {"type": "Point", "coordinates": [longitude, latitude]},
        invalid=bool(contact.address) and not city,
    )
    return address


def _tag_color(name: str) -> str:
    return _TAG_COLORS[zlib.crc32(name.encode()) % len(_TAG_COLORS)]


# -- small helpers ----------------------------------------------------------------------


def format_micros(moment: datetime) -> str:
    """`CreatedAt` / `UpdatedAt`: 6 fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_millis(moment: datetime) -> str:
    """`lastchange` and entry dates: 3 fractional digits, the shape writes must use."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def is_millis_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _MILLIS_TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware instant (UTC when it names no offset), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_seed_time(value: Any, where: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    moment = parse_instant(value)
    if moment is None:
        problems.append(Problem(where, "must be an ISO 8601 timestamp", value))
    return moment


def _seed_api_user(seed: Mapping[str, Any]) -> Mapping[str, Any]:
    """The seed's `api_user`, checked; the default one when the seed names none."""
    user = seed.get("api_user")
    if user is None:
        return DEFAULT_API_USER
    if not isinstance(user, Mapping) or not _is_int(user.get("id")):
        raise SeedError("api_user: must be a user object with an integer id")
    problems: list[Problem] = []
    _check_schema(user, USER_SCHEMA, "api_user", SEED_RULES, problems)
    if problems:
        raise SeedError(str(InvalidRequest(problems)))
    return user


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return None
