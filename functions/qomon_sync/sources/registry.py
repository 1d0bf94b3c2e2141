"""The presets, by name: what each one's configuration is, and how its source is built.

`PRESETS` is the one place a preset is named: the mapping file's model, `check-config`,
local mode's secrets, the demo, the signer and the tests all read it. A preset that fits
the JMESPath `json` preset is a few lines of YAML in `presets.yaml`, all of which come in
here; one whose sender needs code has its keys there too, and its source class (a
`JsonSource` subclass: HubSpot's) on its own line below. A preset that reads its
deliveries without selectors (the form tools, Brevo, the generic change events) is its
configuration model and its source class, on one line below too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qomon_sync.sources.answers import FormSourceConfig
from qomon_sync.sources.base import Source
from qomon_sync.sources.brevo import BrevoSource, BrevoSourceConfig
from qomon_sync.sources.config import (
    GENERIC,
    MappingConfig,
    SourceConfig,
    mapping_model,
)
from qomon_sync.sources.config import load_mapping as _load_mapping
from qomon_sync.sources.config import parse_mapping as _parse_mapping
from qomon_sync.sources.generic import GenericSource, GenericSourceConfig
from qomon_sync.sources.hubspot import HubSpotSource
from qomon_sync.sources.json_source import JsonSource, JsonSourceConfig, preset_defaults
from qomon_sync.sources.tally import TallySource
from qomon_sync.sources.typeform import TypeformSource


@dataclass(frozen=True)
class Preset:
    config: type[SourceConfig]
    build: Callable[[str, Any], Source]
    """(source name, its validated configuration) -> the source."""


PRESETS: dict[str, Preset] = {
    "typeform": Preset(FormSourceConfig, TypeformSource),
    "tally": Preset(FormSourceConfig, TallySource),
    "brevo": Preset(BrevoSourceConfig, BrevoSource),
    GENERIC: Preset(GenericSourceConfig, lambda name, _: GenericSource(name)),
    "json": Preset(JsonSourceConfig, JsonSource),
    # Every preset of presets.yaml is the json preset with its sender's keys...
    **{name: Preset(JsonSourceConfig, JsonSource) for name in preset_defaults()},
    # ...but where its sender needs code, read by its own class.
    "hubspot": Preset(JsonSourceConfig, HubSpotSource),
}

MappingFile = mapping_model({name: preset.config for name, preset in PRESETS.items()})
"""The mapping file's model, for these presets."""


def load_mapping(path: str | Path) -> MappingConfig:
    return _load_mapping(path, MappingFile)


def parse_mapping(data: Any, origin: str = "<mapping>") -> MappingConfig:
    return _parse_mapping(data, MappingFile, origin)


def build_sources(config: MappingConfig) -> dict[str, Source]:
    """`generic` always, then one source per name in the mapping file (several may share a
    preset: `typeform` and `typeform-petition`, each mapping its own form)."""
    sources: dict[str, Source] = {GENERIC: GenericSource(GENERIC)}
    for name, source in config.sources.items():
        sources[name] = PRESETS[source.preset].build(name, source)
    return sources
