"""The change event, version 1: the one format every webhook source is mapped into.

A change event says what a source learned about one person: basic fields to set (JSON
Merge Patch, RFC 7396), tags to add or remove, advanced-field and custom-field answers,
notes to add, and what to do when Qomon does not know the person yet. Its JSON Schema is
generated from these models into events/change-event.v1.schema.json.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from qomon_sync.domain.contact_values import name_key

SCHEMA_VERSION: Literal[1] = 1

NOT_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""A character no text of a change event holds: outside XML 1.0's characters, which is
also what SQS carries (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF).
Control characters, lone surrogates, U+FFFE and U+FFFF mean nothing to a person or to
Qomon, and the queue would refuse them for good."""


def character_name(char: str) -> str:
    code = f"U+{ord(char):04X}"
    return f"a lone surrogate ({code})" if 0xD800 <= ord(char) <= 0xDFFF else code


def not_text_problem(text: str) -> str | None:
    """Why `text` cannot be part of a change event (never quoting it), or None."""
    found = NOT_TEXT.search(text)
    if found is None:
        return None
    return f"holds {character_name(found.group())}, which is not a text character"


def _text(value: str) -> str:
    problem = not_text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_text),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_text),
]
Id = Annotated[int, Field(ge=1)]


def _not_a_boolean(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("is true or false, not a whole number")  # JSON true is not 1
    return value


Count = Annotated[int, Field(ge=0), BeforeValidator(_not_a_boolean)]
"""A documented integer field of the contact (`age_category`, `user_contact_id`)."""
# Deliberately loose: Qomon is the judge of e-mail validity; we only refuse what cannot be
# an address at all, so that a typo fails here with a clear reason, not as a Qomon 422.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("is not an e-mail address")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )


class ContactRef(_Strict):
    """How to find the person: Qomon's `id` when the source knows it, else the e-mail."""

    id: Id | None = None
    mail: ShortText | None = None

    @field_validator("mail")
    @classmethod
    def _mail(cls, value: str | None) -> str | None:
        return None if value is None else _check_email(value)

    @model_validator(mode="after")
    def _one_way_to_find(self) -> ContactRef:
        if self.id is None and self.mail is None:
            raise ValueError("needs an `id` or a `mail` to find the contact")
        return self

    @property
    def person(self) -> tuple[int | None, str | None]:
        """Who this names, as the sync tells people apart: the id, else the e-mail with
        case and surrounding blanks ignored (Qomon's addresses are matched so)."""
        if self.id is not None:
            return (self.id, None)
        return (None, (self.mail or "").strip().casefold())

    def group(self, pseudonyms: Callable[[str], str]) -> str:
        """The FIFO message group: one contact's changes are applied one after another.

        An e-mail is pseudonymised (case and blanks ignored) with the deployment's key, so
        that no address shows in SQS metadata, the console or logs.
        """
        return f"id:{self.id}" if self.id is not None else f"mail:{pseudonyms(self.mail or '')}"


class AddressPatch(_Strict):
    """Address parts; `null` clears a part. Qomon stores them as strings."""

    housenumber: ShortText | None = None
    street: ShortText | None = None
    postalcode: ShortText | None = None
    city: ShortText | None = None
    county: ShortText | None = None
    state: ShortText | None = None
    country: ShortText | None = None
    addition: ShortText | None = None
    infos: Text | None = None
    building: ShortText | None = None
    floor: ShortText | None = None
    door: ShortText | None = None
    pollingstation: ShortText | None = None


class BasicFieldsPatch(_Strict):
    """New values for Qomon's basic fields, with JSON Merge Patch meaning: a field left out
    is untouched, `null` clears it, `address` merges part by part."""

    firstname: ShortText | None = None
    surname: ShortText | None = None
    married_name: ShortText | None = None
    gender: Literal["M", "F", "O"] | None = None
    birthdate: datetime | None = None
    age_category: Count | None = None
    """An integer, as Qomon documents it (a category of the space, not an age)."""
    birth_city: ShortText | None = None
    birth_country: ShortText | None = None
    birth_dept: ShortText | None = None
    nationality: ShortText | None = None
    mail: ShortText | None = None
    phone: ShortText | None = None
    phone_invalid: bool | None = None
    mobile: ShortText | None = None
    mobile_invalid: bool | None = None
    black_list: bool | None = None
    user_contact_id: Count | None = None
    """An integer, as Qomon documents it."""
    address: AddressPatch | None = None

    @field_validator("mail")
    @classmethod
    def _mail(cls, value: str | None) -> str | None:
        return None if value is None else _check_email(value)


class TagChanges(_Strict):
    add: tuple[ShortText, ...] = ()
    remove: tuple[ShortText, ...] = ()

    @model_validator(mode="after")
    def _not_both(self) -> TagChanges:
        clash = {name_key(t) for t in self.add} & {name_key(t) for t in self.remove}
        if clash:
            raise ValueError("a tag cannot be both added and removed by one event")
        return self


Scalar = Text | int | float


class FieldChange(_Strict):
    """One answer to an advanced field or a custom field.

    `field` names the form by its id or its label. `value` names a choice by its value
    (`consent_email`) or its label ("E-mail"), or is the answer of a free-input form (text,
    number, date). Operations: `set` replaces the form's answer (for a checkbox, the whole
    selection: `value` may then be a list), `add` / `remove` one checkbox value (or remove
    a given answer), `clear` removes every answer of that form.
    """

    field: ShortText | Id
    op: Literal["set", "add", "remove", "clear"] = "set"
    value: Scalar | tuple[Scalar, ...] | None = None
    date: datetime | None = Field(default=None, description="when the answer was given")
    survey_id: Id | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        # JSON `true` would otherwise become the answer 1: no Qomon form takes a boolean.
        items = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(item, bool) for item in items):
            raise ValueError("a boolean is not an answer: send the value or label of a choice")
        return value

    @model_validator(mode="after")
    def _value_matches_op(self) -> FieldChange:
        if self.op == "clear" and self.value is not None:
            raise ValueError("`clear` takes no value")
        if self.op != "clear" and self.value is None:
            raise ValueError(f"`{self.op}` needs a value (use op `clear` to remove every answer)")
        if isinstance(self.value, tuple) and (self.op != "set" or not self.value):
            raise ValueError("a list of values is only for `set` on a checkbox, and not empty")
        return self

    @property
    def values(self) -> tuple[str | int | float, ...]:
        if self.value is None:
            return ()
        return self.value if isinstance(self.value, tuple) else (self.value,)


class NoteToAdd(_Strict):
    data: Text
    pinned: bool = False
    only_super_admin: bool = False


class ChangeEvent(_Strict):
    """What one delivery from a source says about one person."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[
        str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    ]
    """Unique per delivery (the idempotency key): a retried delivery keeps its id."""
    source: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    ]
    occurred_at: datetime
    contact: ContactRef
    set: BasicFieldsPatch | None = None
    tags: TagChanges | None = None
    fields: tuple[FieldChange, ...] = ()
    notes: tuple[NoteToAdd, ...] = ()
    if_missing: Literal["dead_letter", "create", "skip"] = "dead_letter"
    """When no contact matches: dead-letter the event (default), create the contact, or
    skip it (nothing to change: e.g. an unsubscribe from someone Qomon never knew)."""

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. `Z` or `+02:00`)")
        return value

    def set_fields(self) -> dict[str, object]:
        """The merge patch as sent: only the keys the event named, `None` meaning clear."""
        if self.set is None:
            return {}
        return self.set.model_dump(mode="python", exclude_unset=True)
