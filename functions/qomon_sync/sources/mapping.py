"""The mapping file: which webhook sources a deployment has, and how form answers become
change events.

One YAML (or JSON) file, `functions/sources.yaml` in the bundle, names each source (its
name is the URL path segment, `POST /webhooks/<name>`) and its preset:

- `typeform`, `tally`: a form tool. The preset flattens a submission into answers (answer
  key -> text, number, yes/no or list of labels); this file says which answer becomes
  which Qomon field, tag or note, and how each value is transformed on the way;
- `brevo`: Brevo's marketing events, each turned into a fixed change (see BrevoEvents);
- `generic`: change events v1 sent as they are (always present under the name `generic`).

The file is validated entirely at load: an unknown key anywhere, a transform that does not
exist, a basic field Qomon does not have, a template naming an unknown placeholder: every
problem is listed with its path in the file (`sources.typeform.fields[2].values: ...`).
`qomon-sync check-config` also checks the Qomon labels and values against a space.

Blank answers never change anything: a question left blank (or skipped by the form's
logic) must not clear what Qomon knows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from qomon_sync.domain.change_event import (
    AddressPatch,
    BasicFieldsPatch,
    ChangeEvent,
)
from qomon_sync.domain.validation import error_paths, validation_problems
from qomon_sync.sources.base import BadPayload, NoContact
from qomon_sync.sources.payload import is_blank

AnswerValue: TypeAlias = str | int | float | bool | list[str] | None
"""One flattened answer: text, a number, yes/no, the labels of a multiple choice."""
Answers: TypeAlias = Mapping[str, AnswerValue]

MappedValue: TypeAlias = str | int | float | bool
Resolved: TypeAlias = MappedValue | list[MappedValue] | None
"""A value on its way through transforms: None means blank, hence no change."""

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
PRESETS = ("typeform", "tally", "brevo", "generic")
BASIC_FIELDS = frozenset(BasicFieldsPatch.model_fields) - {"address"}
ADDRESS_PARTS = frozenset(AddressPatch.model_fields)
NOTE_PLACEHOLDERS = ("form_title", "form_id", "source")
"""Placeholders of a note template besides `{answer.<key>}`."""
LIST_ID = "list_id"
"""The one placeholder of Brevo tags: `brevo-liste-{list_id}` gives one tag per list."""

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
FieldRef = (
    Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    | Annotated[int, Field(ge=1)]
)
"""A Qomon advanced or custom field: its label as shown in Qomon, or its id."""
TagName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
StaticValue = bool | int | float | str | list[str | int | float]


class MappingConfigError(Exception):
    """The mapping file cannot be used; `problems` lists each one with its path."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"the mapping file {origin} has {count}:\n{lines}")


class AnswerNotUsable(ValueError):
    """An answer a transform cannot take (a date in another format, several names...)."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- values and their transforms ------------------------------------------------------


def _match_key(value: object) -> str:
    """How answers meet value-map keys: case, extra blanks and the YAML/JSON spelling of
    numbers and yes/no do not matter (`Oui` = `oui`, `4` = 4, `true` = true)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    return " ".join(str(value).split()).casefold()


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_map(raw: object) -> dict[Any, Any]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError("a value map is a mapping of answers to Qomon values, not empty")
    seen: dict[str, object] = {}
    for key, value in raw.items():
        if key is None or not isinstance(key, str | int | float | bool):
            raise ValueError("a value map's keys are answers: text, numbers or true/false")
        if _match_key(key) in seen:
            raise ValueError(f"`{seen[_match_key(key)]}` and `{key}` are the same answer")
        seen[_match_key(key)] = key
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise ValueError(f"`{key}` maps to an empty list (use null to ignore the answer)")
        for item in values:
            if item is not None and not isinstance(item, str | int | float | bool):
                raise ValueError(f"`{key}` must map to a value, a list of values, or null")
            if isinstance(item, str) and not item.strip():
                raise ValueError(f"`{key}` maps to a blank value (use null to ignore it)")
    return dict(raw)


ValueMap = Annotated[dict[Any, Any], BeforeValidator(_value_map)]

TRANSFORM_NAMES = ("trim", "lower", "upper", "first_name", "last_name", "date", "map", "default")
_SPLIT_POINTS = ("first_blank", "last_blank")


class Transform(_Config):
    """One step applied to a value: `trim`, `lower`, `upper`, `first_name`, `last_name`
    (optionally `{first_name: last_blank}`), `{date: "%d/%m/%Y"}`, `{map: {...}}`,
    `{default: value}`. Steps apply in order; lists are transformed item by item."""

    name: Literal["trim", "lower", "upper", "first_name", "last_name", "date", "map", "default"]
    arg: Any = None

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: Any) -> Any:
        if isinstance(data, str):
            name, arg = data, None
        elif isinstance(data, dict) and "name" in data and set(data) <= {"name", "arg"}:
            name, arg = data["name"], data.get("arg")
        elif isinstance(data, dict) and len(data) == 1:
            ((name, arg),) = data.items()
        else:
            raise ValueError(
                'a transform is a name (`trim`) or a one-key mapping (`date: "%d/%m/%Y"`)'
            )
        if name not in TRANSFORM_NAMES:
            raise ValueError(f"unknown transform `{name}` (known: {', '.join(TRANSFORM_NAMES)})")
        return {"name": name, "arg": _transform_arg(str(name), arg)}

    def apply(self, value: Resolved) -> Resolved:
        if self.name == "default":
            return self.arg if is_blank(value) else value
        if self.name == "map":
            return _apply_map(self.arg, value)
        if isinstance(value, list):
            items = [self._apply_one(item) for item in value]
            return [item for item in items if item is not None]
        return None if value is None else self._apply_one(value)

    def _apply_one(self, value: MappedValue) -> MappedValue | None:
        if not isinstance(value, str):
            if self.name == "date":
                raise AnswerNotUsable("is not text, so it cannot be read as a date")
            return value  # numbers and yes/no have no case nor blanks
        simple = _TEXT_TRANSFORMS.get(self.name)
        if simple is not None:
            return simple(value)
        if self.name in ("first_name", "last_name"):
            return _name_part(value, first=self.name == "first_name", at_last=self.arg)
        text = value.strip()
        if not text:
            return None
        try:
            return datetime.strptime(text, self.arg).date().isoformat()
        except ValueError:
            raise AnswerNotUsable(f"does not match the date format `{self.arg}`") from None


_TEXT_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "trim": str.strip,
    "lower": str.lower,
    "upper": str.upper,
}


def _transform_arg(name: str, arg: object) -> object:
    if name in ("trim", "lower", "upper"):
        if arg is not None:
            raise ValueError(f"`{name}` takes no argument")
        return None
    if name in ("first_name", "last_name"):
        if arg not in (None, *_SPLIT_POINTS):
            raise ValueError(f"`{name}` splits at `first_blank` (default) or `last_blank`")
        return arg == "last_blank"
    if name == "date":
        return _date_format(arg)
    if name == "map":
        return _value_map(arg)
    if arg is None or not isinstance(arg, bool | int | float | str | list):
        raise ValueError("`default` needs a value")
    return arg


def _date_format(arg: object) -> str:
    if not isinstance(arg, str) or "%" not in arg:
        raise ValueError('`date` needs a strptime format, such as "%d/%m/%Y"')
    sample = datetime(2001, 12, 31)
    try:
        parsed = datetime.strptime(sample.strftime(arg), arg)
    except ValueError:
        raise ValueError(f"`{arg}` is not a usable strptime format") from None
    if parsed.date() != sample.date():
        raise ValueError(f"`{arg}` does not give a whole date (day, month and year)")
    return arg


def _name_part(full: str, *, first: bool, at_last: object) -> str | None:
    """A full name split at its first blank ("Jean Pierre Dupont": "Jean" / "Pierre Dupont")
    or, with `last_blank`, at its last ("Jean Pierre" / "Dupont"). One word is a first name."""
    words = full.split()
    if not words:
        return None
    if len(words) == 1:
        return words[0] if first else None
    cut = len(words) - 1 if at_last else 1
    return " ".join(words[:cut] if first else words[cut:])


def _apply_map(value_map: dict[Any, Any], value: Resolved) -> Resolved:
    """Answers found in the map become its values (null: ignore this answer); the others
    pass unchanged, to be matched by Qomon's own values and labels (or refused, loudly),
    except yes/no answers, which no Qomon field takes as they are: unmapped, they are
    ignored (`{true: consent_email}` means "on yes, add consent_email")."""
    lookup = {_match_key(key): mapped for key, mapped in value_map.items()}
    items = value if isinstance(value, list) else [value]
    out: list[MappedValue] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, bool) and _match_key(item) not in lookup:
            continue  # no Qomon field takes a yes/no as it is: an unmapped one changes nothing
        mapped = lookup.get(_match_key(item), item)
        for one in mapped if isinstance(mapped, list) else [mapped]:
            if one is not None:
                out.append(one)
    if isinstance(value, list) or len(out) > 1:
        return out
    return out[0] if out else None


# -- where a value comes from -----------------------------------------------------------


class ValueSpec(_Config):
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


def _basic_path(key: str) -> str:
    if key in BASIC_FIELDS:
        return key
    part = key.removeprefix("address.")
    if key.startswith("address.") and part in ADDRESS_PARTS:
        return key
    if key == "address" or key.startswith("address."):
        raise ValueError(f"address parts are `address.<part>`: {', '.join(sorted(ADDRESS_PARTS))}")
    raise ValueError(
        f"`{key}` is not a Qomon basic field ({', '.join(sorted(BASIC_FIELDS))}, or address.<part>)"
    )


BasicPath = Annotated[str, AfterValidator(_basic_path)]


def nest_basic_fields(flat: Mapping[str, object]) -> dict[str, Any]:
    """`{"address.floor": "3"}` as the change event's `set` wants it."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if key.startswith("address."):
            nested.setdefault("address", {})[key.removeprefix("address.")] = value
        else:
            nested[key] = value
    return nested


def _check_basic_values(flat: Mapping[str, object]) -> None:
    try:
        BasicFieldsPatch.model_validate(nest_basic_fields(flat))
    except ValidationError as exc:
        problems = [f"`{path}`: {_plain(why)}" for path, why in error_paths(exc)]
        raise ValueError("; ".join(problems)) from None


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


class TagsConfig(_Config):
    add: tuple[TagName, ...] = ()
    remove: tuple[TagName, ...] = ()
    from_answers: tuple[TagMapping, ...] = ()

    @model_validator(mode="after")
    def _not_both(self) -> TagsConfig:
        clash = {t.casefold() for t in self.add} & {t.casefold() for t in self.remove}
        if clash:
            raise ValueError(f"tags both added and removed: {', '.join(sorted(clash))}")
        return self


class ContactConfig(_Config):
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


class NoteConfig(_Config):
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


class FormSourceConfig(_Config):
    """A form tool's submissions (Typeform, Tally) mapped to change events."""

    preset: Literal["typeform", "tally"]
    form_ids: tuple[Key, ...] = ()
    """If given, submissions of other forms are refused (a webhook pointed at the wrong
    source would otherwise map the wrong answers)."""
    contact: ContactConfig
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
        _check_basic_values({key: value for key, value in static.items() if value is not None})
        return specs


# -- Brevo ------------------------------------------------------------------------------


def _list_id_placeholders(text: str) -> str:
    for name in re.findall(r"\{([^{}]*)\}", text):
        if name != LIST_ID:
            raise ValueError(f"unknown placeholder `{{{name}}}` (Brevo tags know `{{{LIST_ID}}}`)")
    return text


class StaticFieldChange(_Config):
    field: FieldRef
    op: Literal["set", "add", "remove"] = "set"
    value: str | int | float | list[str | int | float]


class StaticTags(_Config):
    add: tuple[Annotated[TagName, AfterValidator(_list_id_placeholders)], ...] = ()
    remove: tuple[Annotated[TagName, AfterValidator(_list_id_placeholders)], ...] = ()


class BrevoAction(_Config):
    """What one Brevo event changes: fixed basic fields, field answers and tags."""

    set: dict[BasicPath, bool | int | float | str | None] = Field(default_factory=dict)
    fields: tuple[StaticFieldChange, ...] = ()
    tags: StaticTags = StaticTags()

    @field_validator("set")
    @classmethod
    def _valid_values(cls, values: dict[str, object]) -> dict[str, object]:
        _check_basic_values(values)
        return values

    def uses_list_ids(self) -> bool:
        return any(f"{{{LIST_ID}}}" in tag for tag in (*self.tags.add, *self.tags.remove))


DEFAULT_CONSENT_FIELD = "Consentements"
DEFAULT_CONSENT_VALUE = "consent_email"


class BrevoEvents(_Config):
    """The Brevo marketing events that change a contact; each one given here replaces its
    default entirely. Every other event is acknowledged and changes nothing."""

    unsubscribed: BrevoAction = BrevoAction(
        fields=(
            StaticFieldChange(
                field=DEFAULT_CONSENT_FIELD, op="remove", value=DEFAULT_CONSENT_VALUE
            ),
        ),
        tags=StaticTags(add=("brevo-desinscrit",)),
    )
    spam: BrevoAction = BrevoAction(set={"black_list": True})
    hard_bounce: BrevoAction = BrevoAction(tags=StaticTags(add=("mail-invalide",)))
    list_addition: BrevoAction = BrevoAction(tags=StaticTags(add=(f"brevo-liste-{{{LIST_ID}}}",)))

    def action(self, event: str) -> BrevoAction | None:
        name = BREVO_EVENT_ALIASES.get(event, event)
        return getattr(self, name) if name in type(self).model_fields else None


BREVO_EVENT_ALIASES = {"hard_bounced": "hard_bounce"}
"""Brevo's marketing documentation has spelled the hard bounce both ways."""


class BrevoSourceConfig(_Config):
    preset: Literal["brevo"]
    events: BrevoEvents = BrevoEvents()
    # An unsubscribe or a bounce from someone Qomon never knew has nothing to change:
    # dead-lettering it would only wake the dead-letter alarm.
    if_missing: Literal["dead_letter", "create", "skip"] = "skip"


class GenericSourceConfig(_Config):
    """Another name for change events v1 sent as they are (Standard Webhooks)."""

    preset: Literal["generic"]


SourceConfig = Annotated[
    FormSourceConfig | BrevoSourceConfig | GenericSourceConfig, Discriminator("preset")
]


def _source_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise ValueError(
            f"`{name}` cannot name a source: lower-case letters, digits, `-`, `_` and `.`, "
            "starting with a letter or digit, at most 64 (it is the URL's last segment)"
        )
    return name


@dataclass(frozen=True)
class QomonReference:
    """A Qomon field named in the file, and the values the file sends it (for checks)."""

    path: str
    field: str | int
    op: str
    values: tuple[tuple[str, MappedValue], ...]
    """(path in the file, value) of each fixed or mapped value sent to the field."""


class MappingConfig(_Config):
    """The whole mapping file."""

    version: Literal[1] = 1
    sources: dict[Annotated[str, AfterValidator(_source_name)], SourceConfig] = Field(
        default_factory=dict
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_from_name(cls, data: Any) -> Any:
        """`brevo:` (even empty) means the brevo preset with its defaults."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            return data
        sources = {}
        for name, source in data["sources"].items():
            entry = {} if source is None else source
            if isinstance(entry, dict) and "preset" not in entry and name in PRESETS:
                entry = {"preset": name, **entry}
            sources[name] = entry
        return {**data, "sources": sources}

    @field_validator("sources")
    @classmethod
    def _generic_is_reserved(cls, sources: dict[str, Any]) -> dict[str, Any]:
        source = sources.get("generic")
        if source is not None and not isinstance(source, GenericSourceConfig):
            raise ValueError("`generic` is the change-event source's name; use another one")
        return sources

    def qomon_references(self) -> list[QomonReference]:
        """Every Qomon field the file names, with the values it would send there."""
        references: list[QomonReference] = []
        for name, source in self.sources.items():
            base = f"sources.{name}"
            if isinstance(source, FormSourceConfig):
                for index, mapping in enumerate(source.fields):
                    where = f"{base}.fields[{index}]"
                    references.append(
                        QomonReference(
                            f"{where}.field",
                            mapping.field,
                            mapping.op,
                            _fixed_values(mapping, where),
                        )
                    )
            elif isinstance(source, BrevoSourceConfig):
                for event in type(source.events).model_fields:
                    action: BrevoAction = getattr(source.events, event)
                    for index, change in enumerate(action.fields):
                        where = f"{base}.events.{event}.fields[{index}]"
                        values = change.value if isinstance(change.value, list) else [change.value]
                        references.append(
                            QomonReference(
                                f"{where}.field",
                                change.field,
                                change.op,
                                tuple((f"{where}.value", value) for value in values),
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


# -- loading the file -------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """YAML with two traps closed: a key given twice is an error (not a silent overwrite),
    and only `true`/`false` are booleans (YAML 1.1 reads `yes`, `no`, `on`, `off` as
    booleans, which would turn an answer "No" in a value map into false)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: construct_mapping itself reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_mapping(path: str | Path) -> MappingConfig:
    """The mapping file (`.yaml`, `.yml` or `.json`), validated; MappingConfigError lists
    every problem with its path in the file."""
    path = Path(path)
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingConfigError(origin, [f"cannot be read ({exc.strerror or exc})"]) from None
    except UnicodeDecodeError:
        raise MappingConfigError(origin, ["is not UTF-8 text"]) from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = _read_yaml(text, origin)
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingConfigError(
                origin, [f"is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"]
            ) from None
    else:
        raise MappingConfigError(origin, ["must be .yaml, .yml or .json"])
    return parse_mapping(data, origin)


def _read_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise MappingConfigError(origin, [f"{where}{exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise MappingConfigError(origin, [f"is not YAML ({exc})"]) from None


def parse_mapping(data: Any, origin: str = "<mapping>") -> MappingConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingConfigError(origin, ["must be a mapping with `version` and `sources`"])
    try:
        return MappingConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        raise MappingConfigError(origin, [_describe(error) for error in errors]) from None


def _describe(error: Any) -> str:
    loc = list(error["loc"])
    # A discriminated union puts the preset between the source's name and its keys.
    if len(loc) > 2 and loc[0] == "sources" and loc[2] in PRESETS:
        del loc[2]
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc.pop()
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}" if path else part
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "is required"
    elif kind == "union_tag_invalid":
        message = f"unknown preset `{error['ctx']['tag']}` (known: {', '.join(PRESETS)})"
    elif kind == "union_tag_not_found":
        message = f"needs a `preset` ({', '.join(PRESETS)})"
    else:
        message = _plain(error["msg"])
    return f"{path or '(top)'}: {message}"


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")


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
    answers = submission.answers
    if config.form_ids and submission.form_id not in config.form_ids:
        raise BadPayload(
            f"this source maps the forms {', '.join(config.form_ids)} only", field="form_id"
        )
    origins: dict[str, str] = {"contact": "contact"}
    event: dict[str, Any] = {
        "event_id": submission.event_id,
        "source": source,
        "occurred_at": submission.occurred_at,
        "contact": _contact(config.contact, answers),
        "if_missing": config.if_missing,
    }
    basic: dict[str, MappedValue] = {}
    for key, spec in config.set.items():
        value = _single(_resolve(spec, answers), f"set.{key}", spec)
        if value is not None:
            basic[key] = value
            origins[f"set.{key}"] = f"set.{key}"
    if basic:
        event["set"] = nest_basic_fields(basic)
    fields: list[dict[str, Any]] = []
    for index, mapping in enumerate(config.fields):
        for change in _field_changes(mapping, _resolve(mapping, answers)):
            origins[f"fields[{len(fields)}]"] = f"fields[{index}]"
            fields.append(change)
    if fields:
        event["fields"] = fields
    tags = _tags(config.tags, answers)
    if tags:
        event["tags"] = tags
    notes: list[dict[str, Any]] = []
    for index, note in enumerate(config.notes):
        data = _render_note(note, answers, source)
        if data is not None:
            origins[f"notes[{len(notes)}]"] = f"notes[{index}]"
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
            name = _number_text(item) if isinstance(item, int | float) else item.strip()
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
        return _number_text(value)
    if isinstance(value, list):
        return ", ".join(item.strip() for item in value if item.strip())
    return value.strip()


def _validated(event: dict[str, Any], source: str, origins: dict[str, str]) -> ChangeEvent:
    try:
        return ChangeEvent.model_validate(event)
    except ValidationError as exc:
        where, message = validation_problems(exc)[0]
        loc = [str(part) if not isinstance(part, int) else f"[{part}]" for part in where]
        path = ".".join(loc).replace(".[", "[")
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
