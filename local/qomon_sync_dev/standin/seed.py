"""The stand-in's seed: the forms of a typical campaign space and 340 contacts, read from
`events/standin-seed.json`.

The file is written by a generator that lives with the tests (`python -m tests.make_seed >
events/standin-seed.json`; `tests/unit/test_standin_store.py` checks the two agree): it is
a fixture, and local mode, the demo, the bench, the soak and the probe only read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SEED_FILE = Path(__file__).resolve().parents[3] / "events" / "standin-seed.json"
HAND_SHAPED = 40
"""The first 40 contacts are the hand-shaped ones tests name by id; the 300 after them
give the benchmark's `--contacts 300` that many distinct people."""


def build_seed() -> dict[str, Any]:
    """A fresh copy of the seed (callers may change it)."""
    seed: dict[str, Any] = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    return seed
