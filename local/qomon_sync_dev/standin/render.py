"""The read shapes: what GET answers in either naming generation, and the raw record the
inspection surface shows."""

from __future__ import annotations

import copy
import zlib
from collections import Counter

from qomon_sync_dev.standin.common import JsonObject, format_micros, format_millis
from qomon_sync_dev.standin.config import Naming
from qomon_sync_dev.standin.fields import (
    ADDRESS_KEYS,
    BASIC_FIELDS,
    LEGACY_NAMES,
    LEGACY_NUMERIC_ADDRESS_KEYS,
    EntryKind,
)
from qomon_sync_dev.standin.forms import FormCatalog
from qomon_sync_dev.standin.records import Entry, Note, StoredContact

_TAG_COLORS = ("#4f46e5", "#0891b2", "#16a34a", "#ca8a04", "#dc2626", "#9333ea", "#475569")


def render_contact(
    contact: StoredContact,
    forms: FormCatalog,
    tag_counts: Counter[str],
    *,
    naming: Naming = "current",
    include_deleted: bool = False,
) -> JsonObject:
    """The read shape GET answers, in one of the two naming generations. `tag_counts` is
    how many contacts of the space carry each tag (Qomon's `appearance_count`)."""
    legacy = naming == "legacy"

    def name(current: str) -> str:
        return LEGACY_NAMES.get(current, current) if legacy else current

    def entries(kind: EntryKind) -> list[JsonObject]:
        chosen = [
            e
            for e in contact.entries
            if e.kind == kind and (include_deleted or e.deleted_at is None)
        ]
        return [_render_entry(contact, e, forms) for e in chosen]

    shape: JsonObject = {
        "id": contact.id,
        "group_id": contact.group_id,
        "user_id": contact.user_id,
    }
    for field_name in BASIC_FIELDS:
        shape[name(field_name)] = copy.deepcopy(contact.fields.get(field_name))
    shape["address"] = _render_address(contact, legacy=legacy)
    shape["tags"] = [
        {"name": tag, "appearance_count": tag_counts[tag], "color": _tag_color(tag)}
        for tag in contact.tags
    ]
    shape[name("action_ids")] = list(contact.action_ids)
    shape["formdatas"] = entries("formdatas")
    shape[name("custom_fields")] = entries("custom_fields")
    text_key = "content" if legacy else "data"
    shape["notes"] = [_render_note(contact, note, text_key) for note in contact.notes]
    shape["CreatedAt"] = format_micros(contact.created_at)
    shape["UpdatedAt"] = format_micros(contact.updated_at)
    shape["lastchange"] = format_millis(contact.lastchange)
    shape["lastchangeuserid"] = contact.lastchangeuserid
    for key, value in contact.unknown_fields.items():
        shape.setdefault(key, copy.deepcopy(value))
    return shape


def raw_record(contact: StoredContact) -> JsonObject:
    """Everything stored, soft-deleted entries included, for the inspection surface."""

    def entries(kind: EntryKind) -> list[JsonObject]:
        return [
            {
                "id": e.id,
                "form_id": e.form_id,
                "form_ref_id": e.form_ref_id,
                "data": copy.deepcopy(e.data),
                "date": e.date,
                "survey_id": e.survey_id,
                "created_at": format_millis(e.created_at),
                "updated_at": format_millis(e.updated_at),
                "deleted_at": format_millis(e.deleted_at) if e.deleted_at else None,
            }
            for e in contact.entries
            if e.kind == kind
        ]

    return {
        "id": contact.id,
        "group_id": contact.group_id,
        "user_id": contact.user_id,
        "CreatedAt": format_micros(contact.created_at),
        "UpdatedAt": format_micros(contact.updated_at),
        "lastchange": format_millis(contact.lastchange),
        "lastchangeuserid": contact.lastchangeuserid,
        **copy.deepcopy(contact.fields),
        "address": dict(contact.address),
        "tags": [{"name": tag} for tag in contact.tags],
        "action_ids": list(contact.action_ids),
        "notes": [_render_note(contact, note, "data") for note in contact.notes],
        "formdatas": entries("formdatas"),
        "custom_fields": entries("custom_fields"),
        "unknown_fields": copy.deepcopy(contact.unknown_fields),
    }


def _render_entry(contact: StoredContact, entry: Entry, forms: FormCatalog) -> JsonObject:
    form = forms.get(entry.form_id)
    refvalue = form.refvalues.get(entry.form_ref_id) if form is not None else None
    return {
        "id": entry.id,
        "form_id": entry.form_id,
        "form_ref_id": entry.form_ref_id,
        "data": copy.deepcopy(entry.data),
        # The docs do not say what an entry written without a date shows: its creation.
        "date": entry.date or format_millis(entry.created_at),
        "survey_id": entry.survey_id,
        "donedate": None,
        "label": refvalue.label if refvalue is not None else None,
        "type_of_form": form.section if form is not None else None,
        "group_id": contact.group_id,
        "contact_id": contact.id,
        "created_at": format_millis(entry.created_at),
        "updated_at": format_millis(entry.updated_at),
        "deleted_at": format_millis(entry.deleted_at) if entry.deleted_at else None,
    }


def _render_note(contact: StoredContact, note: Note, text_key: str) -> JsonObject:
    """A note in the documented response's shape; dates in the write form, so that a
    note read can be sent back as it is."""
    return {
        "id": note.id,
        "contact_id": contact.id,
        "created_at": format_millis(note.created_at),
        text_key: note.data,
        "group_id": contact.group_id,
        "only_super_admin": note.only_super_admin,
        "pinned": note.pinned,
        "updated_at": format_millis(note.updated_at),
        "user": copy.deepcopy(note.author),
    }


def _render_address(contact: StoredContact, *, legacy: bool) -> JsonObject:
    address: JsonObject = {key: contact.address.get(key) for key in ADDRESS_KEYS}
    if legacy:
        for key in LEGACY_NUMERIC_ADDRESS_KEYS:
            value = address[key]
            if isinstance(value, str) and value.isascii() and value.isdigit():
                address[key] = int(value)
    city = contact.address.get("city")
    latitude = longitude = None
    if city:
        # A made-up but stable geocode inside mainland France: enough for a read shape.
        key = "|".join(contact.address.get(k, "") for k in ("housenumber", "street", "postalcode"))
        spread = zlib.crc32(f"{key}|{city}".encode())
        latitude = round(43.0 + (spread % 70_000) / 10_000, 6)
        longitude = round(-1.5 + (spread // 70_000 % 85_000) / 10_000, 6)
    address.update(
        id=contact.id,
        score=(0.95 if contact.address.get("street") else 0.5) if city else None,
        latitude=latitude,
        longitude=longitude,
        location=None
        if latitude is None
        else {"type": "Point", "coordinates": [longitude, latitude]},
        invalid=bool(contact.address) and not city,
    )
    return address


def _tag_color(name: str) -> str:
    return _TAG_COLORS[zlib.crc32(name.encode()) % len(_TAG_COLORS)]
