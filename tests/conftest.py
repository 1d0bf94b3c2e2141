"""Shared fixtures. Network is blocked beyond loopback by pytest-socket (see pyproject)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qomon_sync.domain.privacy import Pseudonyms

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def events_dir() -> Path:
    return EVENTS


TEST_PSEUDONYM_KEY = "a test deployment's pseudonym key, 64 characters long, not a secret"


PSEUDONYMS = Pseudonyms(TEST_PSEUDONYM_KEY)
"""A test deployment's pseudonyms, passed explicitly as a process passes its own: nothing
sets a key for the whole test process."""
