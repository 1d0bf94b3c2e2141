"""Answers to Qomon fields: which answer becomes which basic field, field answer, tag or
note, and the engine that turns one submission's answers into one change event.

A form tool (Typeform, Tally) flattens a submission into answers (answer key -> text,
number, yes/no or list of labels); the `json` preset selects its answers with JMESPath.
Both then map them here, as the mapping file says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.validation import error_paths
from qomon_sync.sources.base import BadPayload, NoContact
from qomon_sync.sources.config import QomonReference, SourceConfig
from qomon_sync.sources.payload import is_blank
from qomon_sync.sources.values import (
    AnswerNotUsable,
    Answers,
    AnswerValue,
    BasicPath,
    Config,
    FieldRef,
    Key,
    MappedValue,
    Resolved,
    StaticValue,
    TagName,
    Transform,
    ValueMap,
    check_basic_values,
    nest_basic_fields,
    number_text,
)

NOTE_PLACEHOLDERS = ("form_title", "form_id", "source")
"""Placeholders of a note template besides `{answer.<key>}`."""


class ValueSpec(Config):
    """An answer (`answer: <key>`) or a fixed value (`value: ...`), then transforms."""

    answer: Key | None = None
    value: StaticValue | None = None
    transform: tuple[Transform, ...] = ()

    @model_validator(mode="after")
    def _one_origin(self) -> ValueSpec:
        if (self.answer is None) == (self.value is None):
            raise ValueError("needs either `answer` (an answer key) or `value` (a fixed value)")
        return self

    def steps(self) -> tuple[Transform, ...]:
        return self.transform

    def resolve(self, answers: Answers) -> Resolved:
        """The value once transformed, or None when blank (no change)."""
        raw = answers.get(self.answer) if self.answer is not None else self.value
        value: Resolved = list(raw) if isinstance(raw, list) else raw
        for step in self.steps():
            value = step.apply(value)
        if isinstance(value, list):
            value = [item for item in value if not is_blank(item)]
        return None if is_blank(value) else value


def _answer_shorthand(data: Any) -> Any:
    return {"answer": data} if isinstance(data, str) else data


AnswerSpec = Annotated[ValueSpec, BeforeValidator(_answer_shorthand)]
"""A ValueSpec, or just an answer key (`firstname: first_name`)."""


class FieldMapping(ValueSpec):
    """An answer (or fixed value) to one Qomon advanced or custom field."""

    field: FieldRef
    op: Literal["set", "add", "remove"] = "set"
    """`set` replaces the field's answer (a list replaces a checkbox selection); `add` and
    `remove` take or drop each value of a checkbox one by one."""
    values: ValueMap | None = None
    """Shorthand for a last `map` transform: answers to Qomon values (null: ignore)."""

    def steps(self) -> tuple[Transform, ...]:
        if self.values is None:
            return self.transform
        return (*self.transform, Transform(name="map", arg=self.values))


class TagMapping(ValueSpec):
    """Tags named by an answer (one per item of a list)."""

    op: Literal["add", "remove"] = "add"
    values: ValueMap | None = None

    @model_validator(mode="after")
    def _from_an_answer(self) -> TagMapping:
        if self.answer is None:
            raise ValueError("tags from answers need `answer`; fixed tags go in `tags.add`")
        return self

    def steps(self) -> tuple[Transform, ...]:
        if self.values is None:
            return self.transform
        return (*self.transform, Transform(name="map", arg=self.values))


class TagsConfig(Config):
    add: tuple[TagName, ...] = ()
    remove: tuple[TagName, ...] = ()
    from_answers: tuple[TagMapping, ...] = ()

    @model_validator(mode="after")
    def _not_both(self) -> TagsConfig:
        clash = {t.casefold() for t in self.add} & {t.casefold() for t in self.remove}
        if clash:
            raise ValueError(f"tags both added and removed: {', '.join(sorted(clash))}")
        return self


class ContactConfig(Config):
    """Where the answers say who the person is: their e-mail, and/or their Qomon id (only
    from a source you trust: a hidden field in a public link can be edited by anyone)."""

    mail: AnswerSpec | None = None
    id: AnswerSpec | None = None

    @model_validator(mode="after")
    def _some_way(self) -> ContactConfig:
        if self.mail is None and self.id is None:
            raise ValueError("needs `mail` and/or `id`: the answers that identify the contact")
        return self


@dataclass(frozen=True)
class TemplatePart:
    text: str = ""
    answer: str | None = None
    meta: str | None = None


_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def parse_template(template: str, placeholders: tuple[str, ...]) -> tuple[TemplatePart, ...]:
    """`Formulaire {form_title} : {answer.comments}` as text and placeholders (`{{` and
    `}}` are literal braces)."""
    parts: list[TemplatePart] = []
    position = 0
    for match in _TEMPLATE_TOKEN.finditer(template):
        parts.append(TemplatePart(text=template[position : match.start()]))
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(TemplatePart(text=token[0]))
        elif match.group(1) is None:
            raise ValueError("a lone `{` or `}` (write `{{` or `}}` for a brace)")
        else:
            name = match.group(1).strip()
            key = name.removeprefix("answer.").strip()
            if name.startswith("answer.") and key:
                parts.append(TemplatePart(answer=key))
            elif name in placeholders:
                parts.append(TemplatePart(meta=name))
            else:
                known = ", ".join(f"{{{p}}}" for p in placeholders)
                raise ValueError(
                    f"unknown placeholder `{{{name}}}` (known: {{answer.<key>}}, {known})"
                )
    parts.append(TemplatePart(text=template[position:]))
    return tuple(part for part in parts if part.text or part.answer or part.meta)


class NoteConfig(Config):
    """A note from a template: `{answer.<key>}` is an answer, `{form_title}`, `{form_id}`
    and `{source}` describe the submission. A note whose answers are all blank is not
    added; a longer note than Qomon takes (2000 characters) is shortened."""

    template: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    pinned: bool = False
    only_super_admin: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"template": data} if isinstance(data, str) else data

    @field_validator("template")
    @classmethod
    def _placeholders(cls, template: str) -> str:
        parse_template(template, NOTE_PLACEHOLDERS)
        return template

    def parts(self) -> tuple[TemplatePart, ...]:
        return parse_template(self.template, NOTE_PLACEHOLDERS)


class AnswerMapping(Config):
    """Which answers become which Qomon basic fields, field answers, tags and notes."""

    set: dict[BasicPath, AnswerSpec] = Field(default_factory=dict)
    """Basic fields and `address.<part>` from answers."""
    fields: tuple[FieldMapping, ...] = ()
    tags: TagsConfig = TagsConfig()
    notes: tuple[NoteConfig, ...] = ()
    if_missing: Literal["dead_letter", "create", "skip"] = "dead_letter"

    @field_validator("set")
    @classmethod
    def _static_values(cls, specs: dict[str, ValueSpec]) -> dict[str, ValueSpec]:
        static = {key: spec.resolve({}) for key, spec in specs.items() if spec.answer is None}
        check_basic_values({key: value for key, value in static.items() if value is not None})
        return specs


class FormSourceConfig(SourceConfig, AnswerMapping):
    """A form tool's submissions (Typeform, Tally) mapped to change events."""

    preset: Literal["typeform", "tally"]
    form_ids: tuple[Key, ...] = ()
    """If given, submissions of other forms are refused (a webhook pointed at the wrong
    source would otherwise map the wrong answers)."""
    contact: ContactConfig

    def qomon_references(self, base: str) -> list[QomonReference]:
        return field_references(self.fields, base)


def field_references(fields: tuple[FieldMapping, ...], base: str) -> list[QomonReference]:
    """The Qomon fields that `fields` (at `base` in the file) name, with their fixed values."""
    references = []
    for index, mapping in enumerate(fields):
        where = f"{base}.fields[{index}]"
        references.append(
            QomonReference(
                f"{where}.field", mapping.field, mapping.op, _fixed_values(mapping, where)
            )
        )
    return references


def _fixed_values(mapping: FieldMapping, where: str) -> tuple[tuple[str, MappedValue], ...]:
    """The values the file itself decides: a fixed value, defaults, value maps."""
    found: list[tuple[str, MappedValue]] = []

    def add(path: str, value: object) -> None:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                found.append((path, item))

    if mapping.value is not None:
        add(f"{where}.value", mapping.resolve({}))
    for index, step in enumerate(mapping.transform):
        if step.name == "default":
            add(f"{where}.transform[{index}].default", step.arg)
        elif step.name == "map":
            for key, value in step.arg.items():
                add(f"{where}.transform[{index}].map[{json.dumps(key, ensure_ascii=False)}]", value)
    for key, value in (mapping.values or {}).items():
        add(f"{where}.values[{json.dumps(key, ensure_ascii=False)}]", value)
    return tuple(found)


# -- the engine: one submission, one change event -----------------------------------------


@dataclass(frozen=True)
class FormSubmission:
    """A form tool's submission as a preset flattens it."""

    event_id: str
    occurred_at: datetime
    answers: Answers
    """Answer key -> value; also `form_id`, `form_title` and the preset's extras."""
    form_id: str | None = None


def map_submission(
    source: str, config: FormSourceConfig, submission: FormSubmission
) -> ChangeEvent:
    """The change event a submission makes under `config`; blank answers change nothing.

    Raises NoContact when no answer identifies the person, BadPayload when an answer cannot
    be used as configured (naming the answer, or the mapping and the change-event path).
    """
    if config.form_ids and submission.form_id not in config.form_ids:
        raise BadPayload(
            f"this source maps the forms {', '.join(config.form_ids)} only", field="form_id"
        )
    return map_answers(source, config, config.contact, submission)


def map_answers(
    source: str,
    mapping: AnswerMapping,
    contact: ContactConfig,
    submission: FormSubmission,
    where: str = "",
) -> ChangeEvent:
    """The change event `mapping` (at `where` in the source's configuration) makes of a
    submission's answers, the person found by `contact`."""
    answers = submission.answers
    origins: dict[str, str] = {"contact": f"{where}contact"}
    event: dict[str, Any] = {
        "event_id": submission.event_id,
        "source": source,
        "occurred_at": submission.occurred_at,
        "contact": _contact(contact, answers),
        "if_missing": mapping.if_missing,
    }
    basic: dict[str, MappedValue] = {}
    for key, spec in mapping.set.items():
        value = _single(_resolve(spec, answers), f"set.{key}", spec)
        if value is not None:
            basic[key] = value
            origins[f"set.{key}"] = f"{where}set.{key}"
    if basic:
        event["set"] = nest_basic_fields(basic)
    fields: list[dict[str, Any]] = []
    for index, field_mapping in enumerate(mapping.fields):
        for change in _field_changes(field_mapping, _resolve(field_mapping, answers)):
            origins[f"fields[{len(fields)}]"] = f"{where}fields[{index}]"
            fields.append(change)
    if fields:
        event["fields"] = fields
    tags = _tags(mapping.tags, answers)
    if tags:
        event["tags"] = tags
    notes: list[dict[str, Any]] = []
    for index, note in enumerate(mapping.notes):
        data = _render_note(note, answers, source)
        if data is not None:
            origins[f"notes[{len(notes)}]"] = f"{where}notes[{index}]"
            notes.append(
                {"data": data, "pinned": note.pinned, "only_super_admin": note.only_super_admin}
            )
    if notes:
        event["notes"] = notes
    return _validated(event, source, origins)


def _resolve(spec: ValueSpec, answers: Answers) -> Resolved:
    try:
        return spec.resolve(answers)
    except AnswerNotUsable as exc:
        raise BadPayload(f"the answer `{spec.answer}` {exc}", field=spec.answer) from None


def _single(value: Resolved, where: str, spec: ValueSpec) -> MappedValue | None:
    if isinstance(value, list):
        if len(value) == 1:
            return value[0]
        raise BadPayload(
            f"`{where}` takes one value, and the answer `{spec.answer}` gives several",
            field=spec.answer,
        )
    return value


def _contact(config: ContactConfig, answers: Answers) -> dict[str, Any]:
    contact: dict[str, Any] = {}
    if config.mail is not None:
        mail = _single(_resolve(config.mail, answers), "contact.mail", config.mail)
        if mail is not None:
            contact["mail"] = mail if isinstance(mail, str) else str(mail)
    if config.id is not None:
        ident = _single(_resolve(config.id, answers), "contact.id", config.id)
        if ident is not None:
            contact["id"] = _qomon_id(ident, config.id)
    if not contact:
        keys = [spec.answer for spec in (config.mail, config.id) if spec and spec.answer]
        raise NoContact(
            "the submission has no e-mail and no Qomon id to find the contact by "
            f"(answers {', '.join(f'`{key}`' for key in keys) or 'none'} are blank)",
            field=keys[0] if keys else "contact",
        )
    return contact


def _qomon_id(value: MappedValue, spec: ValueSpec) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise BadPayload(f"the answer `{spec.answer}` is not a Qomon contact id", field=spec.answer)
    return int(text)


def _field_changes(mapping: FieldMapping, value: Resolved) -> Iterator[dict[str, Any]]:
    if value is None:
        return
    if isinstance(value, list) and mapping.op != "set":
        for item in value:  # `add` and `remove` take one checkbox value at a time
            yield {"field": mapping.field, "op": mapping.op, "value": item}
    else:
        yield {"field": mapping.field, "op": mapping.op, "value": value}


def _tags(config: TagsConfig, answers: Answers) -> dict[str, list[str]]:
    add, remove = list(config.add), list(config.remove)
    for mapping in config.from_answers:
        value = _resolve(mapping, answers)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, bool):
                raise BadPayload(
                    f"the answer `{mapping.answer}` is yes/no: give its tag with `values`",
                    field=mapping.answer,
                )
            name = number_text(item) if isinstance(item, int | float) else item.strip()
            (add if mapping.op == "add" else remove).append(name)
    tags = {"add": _unique(add), "remove": _unique(remove)}
    return {op: names for op, names in tags.items() if names}


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for name in names:
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            kept.append(name)
    return kept


NOTE_MAX = 2000


def _render_note(note: NoteConfig, answers: Answers, source: str) -> str | None:
    pieces: list[str] = []
    answered = asked = 0
    for part in note.parts():
        if part.answer is not None:
            asked += 1
            value = answers.get(part.answer)
            answered += not is_blank(value)
            pieces.append(_as_text(value))
        elif part.meta == "source":
            pieces.append(source)
        elif part.meta is not None:
            pieces.append(_as_text(answers.get(part.meta)))
        else:
            pieces.append(part.text)
    if asked and not answered:
        return None
    text = "".join(pieces).strip()
    if len(text) > NOTE_MAX:
        text = text[: NOTE_MAX - 1].rstrip() + "…"
    return text or None


def _as_text(value: AnswerValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, list):
        return ", ".join(item.strip() for item in value if item.strip())
    return value.strip()


def _validated(event: dict[str, Any], source: str, origins: dict[str, str]) -> ChangeEvent:
    try:
        return ChangeEvent.model_validate(event)
    except ValidationError as exc:
        path, message = error_paths(exc)[0]
        origin = next(
            (
                f"sources.{source}.{value}"
                for key, value in origins.items()
                if path == key or path.startswith((f"{key}.", f"{key}["))
            ),
            f"sources.{source}",
        )
        raise BadPayload(
            f"the mapping `{origin}` gives an invalid change event: {path}: {message}",
            field=path,
        ) from None
