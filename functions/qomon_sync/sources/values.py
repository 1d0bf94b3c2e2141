"""Values on their way from a webhook to a change event: answers, value maps, transforms,
and the Qomon basic fields they may land in.

Shared by every preset that maps answers (the form tools, the JMESPath `json` preset and
the presets built on it). Blank answers never change anything: a question left blank (or
skipped by the form's logic) must not clear what Qomon knows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from qomon_sync.domain.change_event import AddressPatch, BasicFieldsPatch
from qomon_sync.domain.validation import error_paths
from qomon_sync.sources.payload import is_blank

AnswerValue: TypeAlias = str | int | float | bool | list[str] | None
"""One flattened answer: text, a number, yes/no, the labels of a multiple choice."""
Answers: TypeAlias = Mapping[str, AnswerValue]

MappedValue: TypeAlias = str | int | float | bool
Resolved: TypeAlias = MappedValue | list[MappedValue] | None
"""A value on its way through transforms: None means blank, hence no change."""

BASIC_FIELDS = frozenset(BasicFieldsPatch.model_fields) - {"address"}
ADDRESS_PARTS = frozenset(AddressPatch.model_fields)


Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
FieldRef = (
    Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    | Annotated[int, Field(ge=1)]
)
"""A Qomon advanced or custom field: its label as shown in Qomon, or its id."""
TagName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
StaticValue = bool | int | float | str | list[str | int | float]


class AnswerNotUsable(ValueError):
    """An answer a transform cannot take (a date in another format, several names...)."""


class Config(BaseModel):
    """A part of the mapping file: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def match_key(value: object) -> str:
    """How answers meet value-map keys: case, extra blanks and the YAML/JSON spelling of
    numbers and yes/no do not matter (`Oui` = `oui`, `4` = 4, `true` = true)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return " ".join(str(value).split()).casefold()


def number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def value_map(raw: object) -> dict[Any, Any]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError("a value map is a mapping of answers to Qomon values, not empty")
    seen: dict[str, object] = {}
    for key, value in raw.items():
        if key is None or not isinstance(key, str | int | float | bool):
            raise ValueError("a value map's keys are answers: text, numbers or true/false")
        if match_key(key) in seen:
            raise ValueError(f"`{seen[match_key(key)]}` and `{key}` are the same answer")
        seen[match_key(key)] = key
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise ValueError(f"`{key}` maps to an empty list (use null to ignore the answer)")
        for item in values:
            if item is not None and not isinstance(item, str | int | float | bool):
                raise ValueError(f"`{key}` must map to a value, a list of values, or null")
            if isinstance(item, str) and not item.strip():
                raise ValueError(f"`{key}` maps to a blank value (use null to ignore it)")
    return dict(raw)


ValueMap = Annotated[dict[Any, Any], BeforeValidator(value_map)]

TRANSFORM_NAMES = ("trim", "lower", "upper", "first_name", "last_name", "date", "map", "default")
_SPLIT_POINTS = ("first_blank", "last_blank")


class Transform(Config):
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
        return value_map(arg)
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
    lookup = {match_key(key): mapped for key, mapped in value_map.items()}
    items = value if isinstance(value, list) else [value]
    out: list[MappedValue] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, bool) and match_key(item) not in lookup:
            continue  # no Qomon field takes a yes/no as it is: an unmapped one changes nothing
        mapped = lookup.get(match_key(item), item)
        for one in mapped if isinstance(mapped, list) else [mapped]:
            if one is not None:
                out.append(one)
    if isinstance(value, list) or len(out) > 1:
        return out
    return out[0] if out else None


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


def check_basic_values(flat: Mapping[str, object]) -> None:
    try:
        BasicFieldsPatch.model_validate(nest_basic_fields(flat))
    except ValidationError as exc:
        problems = [f"`{path}`: {plain(why)}" for path, why in error_paths(exc)]
        raise ValueError("; ".join(problems)) from None


def plain(message: str) -> str:
    """A pydantic message without its "Value error, " prefix."""
    return message.removeprefix("Value error, ")
