"""A change event as an operator may see it: its shape, never a person's data.

Kept as they are: what identifies the event (id, source, dates, `if_missing`), the
contact's Qomon id, which forms an answer goes to and how (`field`, `op`, `survey_id`),
and note flags. The e-mail becomes its pseudonym (the one in logs and message groups);
every other value (names, phones, addresses, answers, consents, tags, notes) is masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

MASK = "<masked>"
SHOWN = frozenset(
    {
        "schema_version",
        "event_id",
        "source",
        "occurred_at",
        "if_missing",
        "contact.id",
        "fields[].field",
        "fields[].op",
        "fields[].survey_id",
        "fields[].date",
        "notes[].pinned",
        "notes[].only_super_admin",
    }
)
PSEUDONYMISED = frozenset({"contact.mail"})
_INDEX = re.compile(r"\[\d+\]")


def masked_body(body: str, pseudonyms: Callable[[str], str]) -> Any:
    """The letter's body as JSON with personal values masked, the e-mail replaced by its
    pseudonym under the deployment's key; a body that is not JSON is described, never
    shown."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"<not JSON: {len(body)} characters, not shown>"
    return masked(data, pseudonyms)


def masked(value: Any, pseudonyms: Callable[[str], str], path: str = "") -> Any:
    if isinstance(value, dict):
        return {
            key: masked(item, pseudonyms, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item, pseudonyms, f"{path}[]") for item in value]
    where = _INDEX.sub("[]", path)
    if where in SHOWN:
        return value
    if where in PSEUDONYMISED and isinstance(value, str):
        return pseudonyms(value)
    if value is None:
        return None  # `null` clears a field: which one is not personal, the clearing neither
    return MASK
