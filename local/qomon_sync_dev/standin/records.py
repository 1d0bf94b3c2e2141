"""What the stand-in stores of a contact: its fields, answers (live and soft-deleted)
and notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qomon_sync_dev.standin.common import JsonObject
from qomon_sync_dev.standin.fields import EntryKind


@dataclass
class Entry:
    """One advanced-field answer (a formdata or a custom field)."""

    id: int
    kind: EntryKind
    form_id: int
    form_ref_id: int
    data: Any
    date: str | None
    survey_id: int | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass
class Note:
    id: int
    data: str
    pinned: bool
    only_super_admin: bool
    created_at: datetime
    updated_at: datetime
    author: JsonObject
    """The user who wrote it, in the documented response's shape (`notes[].user`)."""


@dataclass
class StoredContact:
    id: int
    group_id: int
    user_id: int
    lastchangeuserid: int
    created_at: datetime
    updated_at: datetime
    lastchange: datetime
    fields: dict[str, Any]
    """Every basic field under its current write name; a cleared field is None."""
    address: dict[str, str]
    tags: list[str]
    action_ids: list[int]
    notes: list[Note]
    entries: list[Entry]
    """Live and soft-deleted entries, oldest first."""
    unknown_fields: dict[str, Any]
    """Top-level keys no schema lists (`external_id`, ...), kept as sent."""

    def live_entries(self, kind: EntryKind) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and e.deleted_at is None]
