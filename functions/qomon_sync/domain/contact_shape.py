"""From the contact Qomon reads to the contact Qomon accepts, and what a contact means.

`GET /contacts/{id}` answers more than `PATCH /contacts/{id}` accepts, and two generations
of Qomon's documentation spell some fields differently. Sending a read contact straight
back can fail or lose data, so the write shape is built from an explicit whitelist:

- both naming generations are read, the current names are always written;
- server-owned fields are dropped (Qomon sets them; sending them is at best ignored);
- soft-deleted answers (`deleted_at` set) are dropped: they are gone, re-sending would
  resurrect them;
- answers keep only `form_id`, `form_ref_id`, `data` and, when present, `date` and
  `survey_id`: their ids change on every PATCH, so they are never stored or compared;
- every date is written with milliseconds, whatever precision it was read with;
- a field we do not understand stops the write (ShapeError) unless the policy declares it
  passed through or droppable, because PATCH would otherwise delete it silently.

`fingerprint` says what a contact means, path by path (answers as form, value, data;
instants, not strings), for the unchanged check, the data-loss guard and the echo check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qomon_sync.domain.dates import NotADate, parse_instant, to_qomon_date
from qomon_sync.domain.forms import FormCatalog

WriteContact = dict[str, Any]

SERVER_OWNED = frozenset(
    {"id", "group_id", "CreatedAt", "UpdatedAt", "lastchange", "lastchangeuserid", "user_id"}
)
LEGACY_NAMES = {
    "birthcity": "birth_city",
    "birthcountry": "birth_country",
    "birthdept": "birth_dept",
    "actions_ids": "action_ids",
    "customfields": "custom_fields",
}
TEXT_FIELDS = (
    "firstname",
    "surname",
    "married_name",
    "gender",
    "age_category",
    "birth_city",
    "birth_country",
    "birth_dept",
    "nationality",
    "mail",
    "phone",
    "mobile",
    "user_contact_id",
)
FLAG_FIELDS = ("phone_invalid", "mobile_invalid", "black_list")
DATE_FIELDS = ("birthdate",)
ANSWER_LISTS = ("formdatas", "custom_fields")
WRITABLE = frozenset(
    {
        *TEXT_FIELDS,
        *FLAG_FIELDS,
        *DATE_FIELDS,
        *ANSWER_LISTS,
        "address",
        "tags",
        "action_ids",
        "notes",
    }
)

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
ADDRESS_SERVER_OWNED = frozenset({"id", "score", "latitude", "longitude", "location", "invalid"})
ANSWER_SERVER_OWNED = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "deleted_at",
        "donedate",
        "label",
        "type_of_form",
        "group_id",
        "contact_id",
    }
)
# Tag and note read-side extras: display data and ownership Qomon computes itself.
TAG_READ_ONLY = frozenset(
    {"id", "appearance_count", "color", "group_id", "created_at", "updated_at"}
)
NOTE_READ_ONLY = frozenset(
    {"created_at", "updated_at", "CreatedAt", "UpdatedAt", "user_id", "group_id", "contact_id"}
)


class ShapeError(ValueError):
    """The read contact cannot be turned into a write body without losing or inventing data."""

    def __init__(self, code: str, detail: str, fields: Iterable[str]) -> None:
        self.code = code
        self.detail = detail
        self.fields = tuple(fields)
        super().__init__(detail)


@dataclass(frozen=True)
class ShapePolicy:
    """What to do with fields the translator does not know (paths like `external_id`,
    `address.citycode`, `formdatas[].origin`, `notes[].author`, `tags[].slug`).

    By default an unknown field holding data stops the write; `passthrough` sends it back
    unchanged, `droppable` leaves it out knowingly. `citycode` belongs to older address
    schemas, so it is sent back as read unless configured otherwise.
    """

    passthrough: frozenset[str] = field(default_factory=lambda: frozenset({"address.citycode"}))
    droppable: frozenset[str] = frozenset()


class _Unknowns:
    def __init__(self, policy: ShapePolicy) -> None:
        self.policy = policy
        self.refused: list[str] = []

    def keep(self, path: str, value: Any) -> bool:
        """Whether to send an unknown field back; records it when it must stop the write."""
        if _is_empty(value) or path in self.policy.droppable:
            return False  # an empty field holds nothing to lose
        if path in self.policy.passthrough:
            return True
        self.refused.append(path)
        return False


def to_write_shape(
    read: Mapping[str, Any], catalog: FormCatalog, policy: ShapePolicy | None = None
) -> WriteContact:
    """The PATCH body's contact that sends back exactly what `read` holds."""
    if not isinstance(read, Mapping):
        raise ShapeError("invalid_contact", "the contact is not a JSON object", ["contact"])
    unknowns = _Unknowns(policy or ShapePolicy())
    merged = _merge_legacy_names(read)
    out: WriteContact = {}
    for name in TEXT_FIELDS:
        if name in merged:
            out[name] = _text(merged[name], name)
    for name in FLAG_FIELDS:
        if name in merged:
            out[name] = _flag(merged[name], name)
    for name in DATE_FIELDS:
        if name in merged:
            out[name] = _date_or_none(merged[name], name)
    if "address" in merged:
        out["address"] = _address(merged["address"], unknowns)
    if "tags" in merged:
        out["tags"] = _tags(merged["tags"], unknowns)
    if "action_ids" in merged:
        out["action_ids"] = _ids(merged["action_ids"], "action_ids")
    for name in ANSWER_LISTS:
        if name in merged:
            out[name] = _answers(merged[name], name, catalog, unknowns)
    if "notes" in merged:
        out["notes"] = _notes(merged["notes"], unknowns)
    for key, value in merged.items():
        if key not in WRITABLE and key not in SERVER_OWNED and unknowns.keep(key, value):
            out[key] = value
    if unknowns.refused:
        raise ShapeError(
            "unknown_field",
            "the contact holds fields qomon-sync does not understand; a replacement would "
            "delete them, so nothing is written (declare them passthrough or droppable)",
            unknowns.refused,
        )
    return out


def _merge_legacy_names(read: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(read)
    for old, new in LEGACY_NAMES.items():
        if old not in merged:
            continue
        old_value = merged.pop(old)
        if new not in merged or _is_empty(merged[new]):
            merged[new] = old_value
        elif not _is_empty(old_value) and old_value != merged[new]:
            raise ShapeError(
                "conflicting_names",
                f"`{old}` and `{new}` both hold a value and they differ",
                [new],
            )
    return merged


def _text(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # GET returns some codes as numbers; Qomon writes them as text
    raise ShapeError("invalid_contact", f"`{path}` is a {type(value).__name__}, not text", [path])


def _flag(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise ShapeError("invalid_contact", f"`{path}` is not true or false", [path])


def _date_or_none(value: Any, path: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        return to_qomon_date(value)
    except NotADate:
        raise ShapeError("invalid_contact", f"`{path}` is not a date", [path]) from None


def _address(value: Any, unknowns: _Unknowns) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ShapeError("invalid_contact", "`address` is not an object", ["address"])
    out: dict[str, Any] = {}
    for key in ADDRESS_KEYS:
        if key in value:
            out[key] = _text(value[key], f"address.{key}")
    for key, part in value.items():
        known = key in ADDRESS_KEYS or key in ADDRESS_SERVER_OWNED
        if not known and unknowns.keep(f"address.{key}", part):
            out[key] = part
    return out


def _tags(value: Any, unknowns: _Unknowns) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError("invalid_contact", "`tags` is not a list", ["tags"])
    out = []
    for index, tag in enumerate(value):
        name = tag.get("name") if isinstance(tag, Mapping) else tag
        if not isinstance(name, str) or not name.strip():
            raise ShapeError("invalid_contact", f"tag {index} has no name", [f"tags[{index}]"])
        entry: dict[str, Any] = {"name": name}
        if isinstance(tag, Mapping):
            for key, part in tag.items():
                if (
                    key != "name"
                    and key not in TAG_READ_ONLY
                    and unknowns.keep(f"tags[].{key}", part)
                ):
                    entry[key] = part
        out.append(entry)
    return out


def _ids(value: Any, path: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError("invalid_contact", f"`{path}` is not a list", [path])
    out = []
    for item in value:
        number = _as_int(item)
        if number is None:
            raise ShapeError("invalid_contact", f"`{path}` holds a value that is not an id", [path])
        out.append(number)
    return out


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _answers(
    value: Any, list_name: str, catalog: FormCatalog, unknowns: _Unknowns
) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError("invalid_contact", f"`{list_name}` is not a list", [list_name])
    out = []
    for index, raw in enumerate(value):
        where = f"{list_name}[{index}]"
        if not isinstance(raw, Mapping):
            raise ShapeError("invalid_contact", f"`{where}` is not an object", [where])
        if raw.get("deleted_at") not in (None, ""):
            continue  # soft-deleted: gone for Qomon, must not come back
        form_id, ref_id = _as_int(raw.get("form_id")), _as_int(raw.get("form_ref_id"))
        if form_id is None or ref_id is None:
            raise ShapeError("invalid_contact", f"`{where}` has no form_id/form_ref_id", [where])
        answer: dict[str, Any] = {
            "form_id": form_id,
            "form_ref_id": ref_id,
            "data": raw.get("data"),
        }
        form = catalog.get(form_id)
        if form is not None and form.type.lower() == "date" and isinstance(answer["data"], str):
            # A date answer Qomon holds in a shape we cannot read is sent back as it is.
            with contextlib.suppress(NotADate):
                answer["data"] = to_qomon_date(answer["data"])
        elif isinstance(answer["data"], int | float) and not isinstance(answer["data"], bool):
            answer["data"] = str(answer["data"])
        if raw.get("date") not in (None, ""):
            answer["date"] = _date_or_none(raw["date"], f"{where}.date")
        if raw.get("survey_id") is not None:
            answer["survey_id"] = raw["survey_id"]
        for key, part in raw.items():
            if key in answer or key in ANSWER_SERVER_OWNED or key in ("date", "survey_id"):
                continue
            if unknowns.keep(f"{list_name}[].{key}", part):
                answer[key] = part
        out.append(answer)
    return out


def _notes(value: Any, unknowns: _Unknowns) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError("invalid_contact", "`notes` is not a list", ["notes"])
    out = []
    for index, raw in enumerate(value):
        where = f"notes[{index}]"
        if not isinstance(raw, Mapping):
            raise ShapeError("invalid_contact", f"`{where}` is not an object", [where])
        text = raw.get("data") if raw.get("data") is not None else raw.get("content")
        if not isinstance(text, str):
            raise ShapeError("invalid_contact", f"`{where}` has no text", [where])
        note: dict[str, Any] = {}
        if raw.get("id") is not None:
            note["id"] = raw["id"]
        note["data"] = text
        for flag in ("pinned", "only_super_admin"):
            if raw.get(flag) is not None:
                note[flag] = bool(raw[flag])
        for key, part in raw.items():
            if key in note or key in ("content", "data") or key in NOTE_READ_ONLY:
                continue
            if unknowns.keep(f"notes[].{key}", part):
                note[key] = part
        out.append(note)
    return out


def _is_empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


# -- meaning ---------------------------------------------------------------------------


def fingerprint(contact: Mapping[str, Any]) -> dict[str, Any]:
    """What a write-shaped contact means, as {path: comparable value}; empty means absent.

    Answers are grouped per form (`formdatas[form_id=12]`) as a multiset of (value, data,
    date, survey) so that ids and order never count; dates compare as instants; tags by
    name, ignoring case; notes by text and flags (their ids are Qomon's, like answers').
    """
    meaning: dict[str, Any] = {}
    for key, value in contact.items():
        if key == "address" and isinstance(value, Mapping):
            for part, text in value.items():
                _put(meaning, f"address.{part}", _scalar(text))
        elif key == "tags" and isinstance(value, list):
            for tag in value:
                meaning[f"tags[{tag_key(tag['name'])}]"] = True
        elif key == "action_ids" and isinstance(value, list):
            _put(meaning, key, tuple(sorted(value)) or None)
        elif key in ANSWER_LISTS and isinstance(value, list):
            groups: dict[int, Counter[tuple[Any, ...]]] = {}
            for answer in value:
                groups.setdefault(answer["form_id"], Counter())[_answer_key(answer)] += 1
            for form_id, answers in groups.items():
                meaning[f"{key}[form_id={form_id}]"] = frozenset(answers.items())
        elif key == "notes" and isinstance(value, list):
            # Qomon gives a note its id when it is saved, so ids never count: a note is
            # its text and flags, and several notes may share a text.
            notes: dict[str, Counter[tuple[bool, bool]]] = {}
            for note in value:
                flags = (bool(note.get("pinned")), bool(note.get("only_super_admin")))
                notes.setdefault(note_path(note["data"]), Counter())[flags] += 1
            for path, counts in notes.items():
                meaning[path] = frozenset(counts.items())
        elif key in DATE_FIELDS:
            _put(meaning, key, _instant(value))
        else:
            _put(meaning, key, _scalar(value))
    return meaning


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The paths whose meaning differs between two write-shaped contacts, sorted."""
    old, new = fingerprint(before), fingerprint(after)
    return sorted(path for path in old.keys() | new.keys() if old.get(path) != new.get(path))


def note_path(text: str) -> str:
    """A note's path: a digest of its text (blanks folded), never the text itself."""
    return f"notes[{_digest(text)}]"


def tag_key(name: str) -> str:
    """A tag's identity: its name, ignoring case and extra blanks."""
    return " ".join(name.split()).casefold()


def _answer_key(answer: Mapping[str, Any]) -> tuple[Any, ...]:
    # Date answers are already in Qomon's millisecond form on both sides (to_write_shape
    # and the assembly normalise them), so `data` compares as text.
    data = answer.get("data")
    extras = tuple(sorted((k, _scalar(v)) for k, v in answer.items() if k not in _ANSWER_CORE))
    return (
        answer["form_ref_id"],
        _scalar(data),
        _instant(answer.get("date")),
        answer.get("survey_id"),
        extras,
    )


_ANSWER_CORE = frozenset({"form_id", "form_ref_id", "data", "date", "survey_id"})


def _instant(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        instant = parse_instant(value)
    except NotADate:
        return value
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _scalar(value: Any) -> Any:
    if value is None or value in ("", [], {}):
        return None
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


def _put(meaning: dict[str, Any], path: str, value: Any) -> None:
    if value is not None:
        meaning[path] = value


def _digest(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]
