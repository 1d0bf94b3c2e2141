"""The space's forms (advanced-field definitions), as the seed gives them and the forms
endpoints answer them. Qomon creates forms only in its web UI, so they never change."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qomon_sync_dev.standin.common import JsonObject, SeedError, as_number, is_int

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
    if not is_int(form_id):
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
        if not isinstance(raw, Mapping) or not is_int(raw.get("id")):
            raise SeedError(f"{spot}: must be an object with an integer id")
        if raw.get("form_id", form_id) != form_id:
            raise SeedError(f"{spot}.form_id: must be the form's id {form_id}")
        if raw["id"] in refvalues:
            raise SeedError(f"{spot}: refvalue id {raw['id']} is used twice")
        refvalues[raw["id"]] = RefValue(
            id=raw["id"],
            label=raw.get("label"),
            value=raw.get("value"),
            minimum=as_number(raw.get("min")),
            maximum=as_number(raw.get("max")),
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
