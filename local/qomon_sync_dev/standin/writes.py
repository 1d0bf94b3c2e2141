"""A write body (PATCH, POST, or a seed record) checked and turned into what the contact
becomes, with every problem named by its path. The types checked are the documented
ones listed in `standin.fields`."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qomon_sync_dev.standin.common import (
    InvalidRequest,
    JsonObject,
    Problem,
    SeedError,
    as_number,
    is_int,
    is_millis_timestamp,
    parse_instant,
)
from qomon_sync_dev.standin.config import Naming
from qomon_sync_dev.standin.fields import (
    ADDRESS_KEYS,
    BASIC_FIELD_KINDS,
    CURRENT_NAMES,
    ENTRY_KINDS,
    GENDERS,
    LENIENT_FIELD_KINDS,
    NOTE_FLAGS_SCHEMA,
    NOTE_SCHEMA,
    ROLE_SCHEMA,
    SERVER_OWNED_FIELDS,
    USER_KEYS,
    USER_SCHEMA,
    WRITABLE_FIELDS,
    EntryKind,
    Schema,
    ValueKind,
)
from qomon_sync_dev.standin.forms import CHOICE_TYPES, NUMBER_TYPES, Form, FormCatalog, RefValue

WRITE_DATE_FORM = "YYYY-MM-DDTHH:mm:ss.SSSZ"
"""The one form a written date may take: Qomon documents it as the input format."""
SEED_HISTORY_KEYS: Mapping[str, EntryKind] = {
    "deleted_formdatas": "formdatas",
    "deleted_custom_fields": "custom_fields",
}
"""Keys only a seed record has: its history, soft-deleted entries of either kind."""


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
    """How strictly a write body's values are checked (the types: `standin.fields`)."""

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


# -- the contact ------------------------------------------------------------------------


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
    if kind == "date":
        return _date_problem(value, rules)
    accepts, needs = _VALUE_KINDS.get(kind, (_any_scalar, "must be a string, a number or null"))
    return None if accepts(value) else needs


def _any_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


_VALUE_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "must be a string or null"),
    "boolean": (lambda v: isinstance(v, bool), "must be true, false or null"),
    "gender": (lambda v: v in GENDERS, "must be M, F, O or null"),
    "integers": (
        lambda v: isinstance(v, list) and all(is_int(item) for item in v),
        "must be a list of integers or null",
    ),
    "integer": (is_int, "must be an integer or null"),
}
"""Each value kind but dates: what it accepts, and what a refusal says."""


def _date_problem(value: Any, rules: WriteRules) -> str | None:
    if rules.write_dates:
        if is_millis_timestamp(value):
            return None
        return f"must be a date written {WRITE_DATE_FORM} (UTC, milliseconds) or null"
    return None if parse_instant(value) is not None else "must be an ISO 8601 timestamp or null"


def check_schema(
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
                check_schema(item, kind, spot, rules, problems)
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
        if not is_int(item):
            problems.append(Problem(f"{where}[{index}]", "must be an integer", item))
            continue
        ids.append(item)
    return ids


# -- notes ------------------------------------------------------------------------------


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
    check_schema(note, schema, where, rules, problems)
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


# -- answers ----------------------------------------------------------------------------


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
        entry = parse_entry(item, kind, f"{where}[{index}]", forms, rules=rules, problems=problems)
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
    form = forms.get(form_id) if is_int(form_id) else None
    message = _form_problem(form_id, form, kind)
    if message is not None or form is None:
        problems.append(Problem(f"{where}.form_id", message or "no such form", form_id))
        return None
    ref_id = item.get("form_ref_id")
    refvalue = form.refvalues.get(ref_id) if is_int(ref_id) else None
    if refvalue is None:
        message = f"is not a value of form {form_id} ({form.label})"
        problems.append(Problem(f"{where}.form_ref_id", message, ref_id))
        return None
    return form, refvalue


def _form_problem(form_id: Any, form: Form | None, kind: EntryKind) -> str | None:
    """Why `form_id` names no form that an entry of `kind` may answer; None when it does."""
    if not is_int(form_id):
        return "must be an integer form id"
    if form is None:
        return f"no form has id {form_id}"
    if kind == "custom_fields" and not form.is_custom_field:
        return f"form {form_id} is a {form.section} form, not a custom field"
    if kind == "formdatas" and form.is_custom_field:
        return f"form {form_id} is a custom field: it belongs in custom_fields"
    return None


def parse_entry(
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
    if survey_id is not None and not is_int(survey_id):
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
        return _number_problem(form, refvalue, data, rules)
    return None


def _number_problem(form: Form, refvalue: RefValue, data: Any, rules: WriteRules) -> str | None:
    if rules.documented_types and not isinstance(data, str):
        return 'must be a number written as a string (documented type), e.g. "4"'
    number = as_number(data)
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


# -- the seed ---------------------------------------------------------------------------


def parse_seed_time(value: Any, where: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    moment = parse_instant(value)
    if moment is None:
        problems.append(Problem(where, "must be an ISO 8601 timestamp", value))
    return moment


def parse_seed_history(
    record: Mapping[str, Any], forms: FormCatalog, problems: list[Problem]
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
            entry = parse_entry(raw, kind, spot, forms, rules=SEED_RULES, problems=problems)
            if entry is not None:
                deleted_at = parse_seed_time(raw.get("deleted_at"), f"{spot}.deleted_at", problems)
                history.append((entry, deleted_at))
    return history


def parse_seed_api_user(seed: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The seed's `api_user`, checked; None when the seed names none."""
    user = seed.get("api_user")
    if user is None:
        return None
    if not isinstance(user, Mapping) or not is_int(user.get("id")):
        raise SeedError("api_user: must be a user object with an integer id")
    problems: list[Problem] = []
    check_schema(user, USER_SCHEMA, "api_user", SEED_RULES, problems)
    if problems:
        raise SeedError(str(InvalidRequest(problems)))
    return user
