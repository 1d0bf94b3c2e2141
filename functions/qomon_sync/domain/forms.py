"""Qomon's advanced-field definitions ("forms"), as the assembly needs them.

Forms are created only in the Qomon web UI, never by API, so we only ever read them.
Extra keys are allowed: Qomon adds fields over time and a form is read-only to us.
Qomon quirks handled here: see docs/qomon-api.md#forms.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from qomon_sync.domain.contact_values import name_key
from qomon_sync.domain.refusal import Code, Refused

FORM_FAMILIES = (
    "consent",
    "level_of_support",
    "presence_status",
    "custom_fields",
    "survey",
    "tasks",
)
"""The families `GET /v1/forms/type/{type}` knows; custom fields are answered in
`custom_fields`, every other family in `formdatas`."""


class RefValue(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: int
    form_id: int | None = None
    label: str | None = None
    value: str | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None


class Form(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: int
    type: str
    label: str
    section: str | None = None
    activate: bool | None = None
    refvalues: tuple[RefValue, ...] = ()


class FormLookupError(Refused, LookupError):
    """A field or value name that does not identify exactly one form or refvalue."""


class FormCatalog:
    """A space's forms, looked up by id or by label (labels are what people type)."""

    def __init__(self, forms: Iterable[Form]) -> None:
        self.by_id: dict[int, Form] = {}
        self._by_label: dict[str, list[Form]] = {}
        for form in forms:
            self.by_id[form.id] = form
            self._by_label.setdefault(name_key(form.label), []).append(form)

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, form_id: object) -> Form | None:
        return self.by_id.get(form_id) if isinstance(form_id, int) else None

    def find(self, name: str | int) -> Form:
        if isinstance(name, int):
            form = self.by_id.get(name)
            if form is None:
                raise FormLookupError(Code.UNKNOWN_FIELD, f"no form has id {name}")
            return form
        matches = self._by_label.get(name_key(name), [])
        if not matches and name.strip().isdigit():
            return self.find(int(name))
        if not matches:
            raise FormLookupError(Code.UNKNOWN_FIELD, "no form has this label")
        if len(matches) > 1:
            ids = ", ".join(str(f.id) for f in matches)
            raise FormLookupError(
                Code.AMBIGUOUS_FIELD,
                f"{len(matches)} forms share this label (ids {ids}): name it by id",
            )
        return matches[0]

    @staticmethod
    def choice(form: Form, name: str | int | float) -> RefValue:
        """The refvalue named by its value (`consent_email`), its label, or its id."""
        text = str(name).strip()
        for attribute in ("value", "label"):
            exact = [r for r in form.refvalues if getattr(r, attribute) == text]
            if len(exact) == 1:
                return exact[0]
        loose = [
            r
            for r in form.refvalues
            if name_key(text) in {name_key(r.value or ""), name_key(r.label or "")}
        ]
        if len(loose) == 1:
            return loose[0]
        if not loose and isinstance(name, int):
            by_id = [r for r in form.refvalues if r.id == name]
            if by_id:
                return by_id[0]
        if len(loose) > 1:
            raise FormLookupError(Code.AMBIGUOUS_VALUE, "several of the form's values match")
        raise FormLookupError(Code.UNKNOWN_VALUE, "is not one of the form's values")
