"""Shared fixtures. Network is blocked beyond loopback by pytest-socket (see pyproject)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def events_dir() -> Path:
    return EVENTS


TEST_PSEUDONYM_KEY = "a test deployment's pseudonym key, 64 characters long, not a secret"


@pytest.fixture(autouse=True)
def pseudonym_key() -> None:
    """A deployment's pseudonym key, as the handlers and local mode configure one; a test
    that starts local mode or a handler gets theirs instead."""
    from qomon_sync.domain.privacy import use_pseudonym_key

    use_pseudonym_key(lambda: TEST_PSEUDONYM_KEY)
