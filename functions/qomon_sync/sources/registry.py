"""The deployment's webhook sources, by name (the `{source}` of `POST /webhooks/{source}`)."""

from __future__ import annotations

from qomon_sync.sources.base import Source
from qomon_sync.sources.brevo import BrevoSource
from qomon_sync.sources.generic import GenericSource
from qomon_sync.sources.mapping import (
    BrevoSourceConfig,
    FormSourceConfig,
    GenericSourceConfig,
    MappingConfig,
)
from qomon_sync.sources.tally import TallySource
from qomon_sync.sources.typeform import TypeformSource


def build_sources(config: MappingConfig) -> dict[str, Source]:
    """`generic` always, then one source per name in the mapping file (several may share a
    preset: `typeform` and `typeform-petition`, each mapping its own form)."""
    sources: dict[str, Source] = {"generic": GenericSource("generic")}
    for name, source in config.sources.items():
        if isinstance(source, FormSourceConfig):
            preset = TypeformSource if source.preset == "typeform" else TallySource
            sources[name] = preset(name, source)
        elif isinstance(source, BrevoSourceConfig):
            sources[name] = BrevoSource(name, source)
        elif isinstance(source, GenericSourceConfig):
            sources[name] = GenericSource(name)
    return sources
