"""The mapping file: which webhook sources a deployment has, each with its preset.

One YAML (or JSON) file, `functions/sources.yaml` in the bundle, names each source (its
name is the URL path segment, `POST /webhooks/<name>`) and its preset. Which presets exist
is `sources/registry.py` `PRESETS`, a dict from a preset's name to its configuration model
and the factory that builds the source; this module only knows the file's shape.

The file is validated entirely at load: an unknown key anywhere, a transform that does not
exist, a basic field Qomon does not have, a template naming an unknown placeholder, a
JMESPath expression that does not compile: every problem is listed with its path in the
file (`sources.typeform.fields[2].values: ...`). `qomon-sync check-config` also checks the
Qomon labels and values against a space.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from qomon_sync.sources.values import Config, MappedValue, plain

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
GENERIC = "generic"


class MappingConfigError(Exception):
    """The mapping file cannot be used; `problems` lists each one with its path."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"the mapping file {origin} has {count}:\n{lines}")


@dataclass(frozen=True)
class QomonReference:
    """A Qomon field named in the file, and the values the file sends it (for checks)."""

    path: str
    field: str | int
    op: str
    values: tuple[tuple[str, MappedValue], ...]
    """(path in the file, value) of each fixed or mapped value sent to the field."""


class SourceConfig(Config):
    """What every preset's configuration model is: a `preset`, and the Qomon fields it
    names (for `check-config`)."""

    preset: str

    def qomon_references(self, base: str) -> list[QomonReference]:
        """Every Qomon field this source's configuration names; `base` is its path."""
        return []


def _source_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise ValueError(
            f"`{name}` cannot name a source: lower-case letters, digits, `-`, `_` and `.`, "
            "starting with a letter or digit, at most 64 (it is the URL's last segment)"
        )
    return name


SourceName = Annotated[str, AfterValidator(_source_name)]


class MappingConfig(Config):
    """The whole mapping file; `mapping_model` gives it the presets' union of models."""

    version: Literal[1] = 1
    sources: dict[SourceName, SourceConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _preset_from_name(cls, data: Any) -> Any:
        """`brevo:` (even empty) means the brevo preset with its defaults."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            return data
        sources = {}
        for name, source in data["sources"].items():
            entry = {} if source is None else source
            if isinstance(entry, dict) and "preset" not in entry and name in cls.preset_names():
                entry = {"preset": name, **entry}
            sources[name] = entry
        return {**data, "sources": sources}

    @field_validator("sources")
    @classmethod
    def _generic_is_reserved(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        source = sources.get(GENERIC)
        if source is not None and source.preset != GENERIC:
            raise ValueError("`generic` is the change-event source's name; use another one")
        return sources

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        return ()

    def qomon_references(self) -> list[QomonReference]:
        """Every Qomon field the file names, with the values it would send there."""
        references: list[QomonReference] = []
        for name, source in self.sources.items():
            references.extend(source.qomon_references(f"sources.{name}"))
        return references


def mapping_model(presets: Mapping[str, type[SourceConfig]]) -> type[MappingConfig]:
    """The mapping file's model for these presets (name -> configuration model): a source's
    `preset` picks its model, as a discriminated union would, with one model for several
    presets (`typeform` and `tally` share the form model)."""
    models = list(dict.fromkeys(presets.values()))
    names = tuple(presets)

    def tag(entry: Any) -> str | None:
        preset = entry.get("preset") if isinstance(entry, dict) else getattr(entry, "preset", None)
        if preset is None:
            return None
        model = presets.get(preset) if isinstance(preset, str) else None
        return model.__name__ if model is not None else str(preset)

    members = tuple(Annotated[model, Tag(model.__name__)] for model in models)
    union: Any = Annotated[Union[members], Discriminator(tag)]  # noqa: UP007 - built at run time

    class _Mapping(MappingConfig):
        @classmethod
        def preset_names(cls) -> tuple[str, ...]:
            return names

    model: type[MappingConfig] = create_model(
        "MappingConfig",
        __base__=_Mapping,
        sources=(dict[SourceName, union], Field(default_factory=dict)),
    )
    return model


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


def load_mapping(path: str | Path, model: type[MappingConfig]) -> MappingConfig:
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
        data = read_yaml(text, origin)
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingConfigError(
                origin, [f"is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"]
            ) from None
    else:
        raise MappingConfigError(origin, ["must be .yaml, .yml or .json"])
    return parse_mapping(data, model, origin)


def read_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise MappingConfigError(origin, [f"{where}{exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise MappingConfigError(origin, [f"is not YAML ({exc})"]) from None


def parse_mapping(
    data: Any, model: type[MappingConfig], origin: str = "<mapping>"
) -> MappingConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingConfigError(origin, ["must be a mapping with `version` and `sources`"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        presets = model.preset_names()
        errors = exc.errors(include_input=False, include_url=False)
        problems = [problem for error in errors for problem in _describe(error, presets)]
        raise MappingConfigError(origin, problems) from None


PATH_MARK = "@"
"""A validator's message that starts with `@<path>: ` names a place deeper in the model
than the validator's own (several such, one per line): a JMESPath expression somewhere in
a rule, found by the model's after-validator."""


def _describe(error: Any, presets: tuple[str, ...]) -> list[str]:
    loc = list(error["loc"])
    # The union puts the preset's model between the source's name and its keys.
    if len(loc) > 2 and loc[0] == "sources" and isinstance(loc[2], str) and loc[2][:1].isupper():
        del loc[2]
    if loc and loc[-1] == "[key]":
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
        message = f"unknown preset `{error['ctx']['tag']}` (known: {', '.join(presets)})"
    elif kind == "union_tag_not_found":
        message = f"needs a `preset` ({', '.join(presets)})"
    else:
        message = plain(error["msg"])
    if message.startswith(PATH_MARK):
        return [_deeper(path, line) for line in message.split("\n")]
    return [f"{path or '(top)'}: {message}"]


def _deeper(path: str, line: str) -> str:
    where, _, why = line.removeprefix(PATH_MARK).partition(": ")
    joined = f"{path}{where}" if where.startswith("[") else f"{path}.{where}" if path else where
    return f"{joined}: {why}"
