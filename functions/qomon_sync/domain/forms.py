"""Qomon's advanced-field definitions ("forms"), as the assembly needs them.

Forms are created only in the Qomon web UI, never by API, so we only ever read them.
Extra keys are allowed: Qomon adds fields over time and a form is read-only to us.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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

FREE_INPUT_TYPES = frozenset({"text", "numeric", "integer", "date", "range"})
"""Free-input forms have one refvalue (its id is the form_ref_id) and the answer in `data`."""


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

    @property
    def is_free_input(self) -> bool:
        return self.type.lower() in FREE_INPUT_TYPES
