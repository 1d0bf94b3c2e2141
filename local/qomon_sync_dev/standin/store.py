"""Qomon's contact semantics, in memory and without HTTP, so they can be tested directly.

What it plays (see docs/qomon-api.md): `PATCH /contacts/{id}` replaces the whole
contact; every write soft-deletes all advanced-field entries and recreates the ones sent
with new ids; a note sent back with its id keeps that id, its creation time and its
author, a note without one is new; GET speaks one of two naming generations and carries
server-owned fields that a write ignores; search takes a query of exactly two levels.

The store holds the contacts; `standin.writes` checks what a write asks for (the
documented types are listed in `standin.fields`), `standin.search` matches queries and
`standin.render` gives the read shapes.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from qomon_sync_dev.standin.common import (
    InvalidRequest,
    JsonObject,
    Problem,
    SeedError,
    UnknownContact,
    is_int,
)
from qomon_sync_dev.standin.config import Naming
from qomon_sync_dev.standin.fields import BASIC_FIELDS
from qomon_sync_dev.standin.forms import FormCatalog
from qomon_sync_dev.standin.records import Entry, Note, StoredContact
from qomon_sync_dev.standin.render import raw_record, render_contact
from qomon_sync_dev.standin.search import SearchRequest, matches
from qomon_sync_dev.standin.writes import (
    SEED_HISTORY_KEYS,
    SEED_RULES,
    WRITE_RULES,
    ContactWrite,
    EntryWrite,
    NoteWrite,
    WriteRules,
    author_shape,
    parse_contact_write,
    parse_seed_api_user,
    parse_seed_history,
    parse_seed_time,
)

Clock = Callable[[], datetime]

DEFAULT_GROUP_ID = 4242
DEFAULT_API_USER_ID = 9001
"""Stand-in values for the space's group and the user behind the API key."""
FIRST_CONTACT_ID = 700_001
FIRST_ENTRY_ID = 5_000_001
FIRST_NOTE_ID = 80_001

DEFAULT_API_USER: Mapping[str, Any] = {
    "id": DEFAULT_API_USER_ID,
    "firstname": "Clé",
    "surname": "API",
    "group_id": [DEFAULT_GROUP_ID],
}
"""The author of the notes an API write creates, unless the seed names its `api_user`."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class ContactStore:
    """The contacts of one Qomon space, with Qomon's write, read and search semantics."""

    def __init__(
        self,
        forms: FormCatalog,
        *,
        clock: Clock = utc_now,
        group_id: int = DEFAULT_GROUP_ID,
        api_user: Mapping[str, Any] = DEFAULT_API_USER,
    ) -> None:
        """`api_user` is the user behind the API key (it needs an integer `id`): the
        owner of the contacts it creates and the author of the notes it writes."""
        self.forms = forms
        self.group_id = group_id
        self.api_user = author_shape(api_user)
        self.api_user_id: int = api_user["id"]
        self._clock = clock
        self._contacts: dict[int, StoredContact] = {}
        self._highest_entry_id = FIRST_ENTRY_ID - 1
        self._highest_note_id = FIRST_NOTE_ID - 1
        self._highest_contact_id = FIRST_CONTACT_ID - 1
        self._tag_counts: Counter[str] | None = None

    @classmethod
    def from_seed(cls, seed: Mapping[str, Any], *, clock: Clock = utc_now) -> ContactStore:
        """A store holding `{"forms": [...], "contacts": [...], "api_user"?: {...}}`;
        raises `SeedError`. `api_user` is the documented user shape of a note's author."""
        if not isinstance(seed, Mapping):
            raise SeedError('the seed must be an object {"forms": [...], "contacts": [...]}')
        forms, contacts = seed.get("forms", []), seed.get("contacts", [])
        if not isinstance(forms, list) or not isinstance(contacts, list):
            raise SeedError("the seed's forms and contacts must be lists")
        store = cls(
            FormCatalog(forms), clock=clock, api_user=parse_seed_api_user(seed) or DEFAULT_API_USER
        )
        for index, record in enumerate(contacts):
            record_id = record.get("id") if isinstance(record, Mapping) else None
            if is_int(record_id) and record_id in store._contacts:
                raise SeedError(f"contacts[{index}]: contact id {record_id} is used twice")
            try:
                store.put_seed_contact(record)
            except InvalidRequest as error:
                raise SeedError(f"contacts[{index}] (id {record_id}): {error}") from None
        return store

    # -- reading ------------------------------------------------------------------------

    def get(self, contact_id: int) -> StoredContact:
        try:
            return self._contacts[contact_id]
        except KeyError:
            raise UnknownContact(contact_id) from None

    def contacts(self) -> list[StoredContact]:
        return [self._contacts[key] for key in sorted(self._contacts)]

    def search(self, request: SearchRequest) -> list[StoredContact]:
        """One page of matches in id order. No total: a short or empty page is the end."""
        found = [contact for contact in self.contacts() if matches(contact, request)]
        start = request.page * request.per_page
        return found[start : start + request.per_page]

    # -- writing ------------------------------------------------------------------------

    def replace(
        self,
        contact_id: int,
        contact: Mapping[str, Any],
        *,
        naming: Naming = "current",
        rules: WriteRules = WRITE_RULES,
        location: str = "contact",
    ) -> StoredContact:
        """`PATCH /contacts/{id}`: the contact becomes exactly `contact`."""
        stored = self.get(contact_id)
        write = parse_contact_write(
            contact, self.forms, naming=naming, rules=rules, location=location
        )
        now = self._clock()
        self._apply(stored, write, now)
        # Observed: API writes move UpdatedAt but not lastchange.
        stored.updated_at = now
        return stored

    def create(
        self,
        contact: Mapping[str, Any],
        *,
        naming: Naming = "current",
        rules: WriteRules = WRITE_RULES,
        location: str = "contact",
    ) -> StoredContact:
        """`POST /contacts`: a new contact with a new id, synchronously."""
        write = parse_contact_write(
            contact, self.forms, naming=naming, rules=rules, location=location
        )
        now = self._clock()
        stored = self._new_contact(self._next_contact_id(), now, now, now, self.api_user_id)
        self._apply(stored, write, now)
        self._contacts[stored.id] = stored
        return stored

    def delete(self, contact_id: int) -> None:
        self.get(contact_id)
        del self._contacts[contact_id]
        self._tag_counts = None

    def put_seed_contact(
        self, record: Mapping[str, Any], *, contact_id: int | None = None
    ) -> tuple[StoredContact, bool]:
        """Insert or replace one contact from the seed format; True when it was inserted.

        The seed format is the documented write shape plus `id`, optional server
        timestamps (`CreatedAt`, `UpdatedAt`, `lastchange`), `user_id`, `lastchangeuserid`,
        and `deleted_formdatas` / `deleted_custom_fields`: history stored soft-deleted.
        Values have their documented types; timestamps may have any ISO 8601 precision.
        A note's `id`, `created_at`, `updated_at` and author `user` are stored as given
        (by default: a new id, the contact's creation, the API key's user).
        """
        if not isinstance(record, Mapping):
            raise InvalidRequest([Problem("contact", "must be an object", record)])
        new_id = record.get("id") if contact_id is None else contact_id
        if not is_int(new_id) or new_id <= 0:
            raise InvalidRequest([Problem("contact.id", "must be a positive integer", new_id)])
        problems: list[Problem] = []
        times = {
            key: parse_seed_time(record.get(key), f"contact.{key}", problems)
            for key in ("CreatedAt", "UpdatedAt", "lastchange")
        }
        history = parse_seed_history(record, self.forms, problems)
        body = {k: v for k, v in record.items() if k not in SEED_HISTORY_KEYS}
        try:
            write = parse_contact_write(body, self.forms, rules=SEED_RULES)
        except InvalidRequest as error:
            problems.extend(error.problems)
        else:
            problems.extend(self._note_id_problems(write, new_id))
        if problems:
            raise InvalidRequest(problems)
        now = self._clock()
        created_at = times["CreatedAt"] or now
        updated_at = times["UpdatedAt"] or created_at
        user_id, changer = record.get("user_id"), record.get("lastchangeuserid")
        stored = self._new_contact(
            new_id,
            created_at,
            updated_at,
            times["lastchange"] or updated_at,
            user_id if is_int(user_id) else self.api_user_id,
        )
        if is_int(changer):
            stored.lastchangeuserid = changer
        for entry, deleted_at in history:
            stored.entries.append(self._new_entry(entry, created_at, deleted_at or updated_at))
        self._apply(stored, write, created_at, seeding=True)
        stored.updated_at = updated_at
        inserted = new_id not in self._contacts
        self._contacts[new_id] = stored
        self._highest_contact_id = max(self._highest_contact_id, new_id)
        return stored, inserted

    def _note_id_problems(self, write: ContactWrite, contact_id: int) -> list[Problem]:
        """A seeded note's id must be the space's only note with that id."""
        taken = {
            note.id
            for contact in self._contacts.values()
            if contact.id != contact_id
            for note in contact.notes
        }
        problems: list[Problem] = []
        for index, note in enumerate(write.notes):
            if note.id is None:
                continue
            if note.id in taken:
                message = f"note id {note.id} is used twice"
                problems.append(Problem(f"contact.notes[{index}].id", message, note.id))
            taken.add(note.id)
        return problems

    def _apply(
        self, stored: StoredContact, write: ContactWrite, now: datetime, *, seeding: bool = False
    ) -> None:
        stored.fields = copy.deepcopy(write.fields)
        stored.address = dict(write.address)
        stored.tags = list(write.tags)
        stored.action_ids = list(write.action_ids)
        stored.unknown_fields = copy.deepcopy(write.unknown_fields)
        # DOC: every write soft-deletes all entries and recreates those sent, with new ids,
        # even when nothing changed.
        for entry in stored.entries:
            if entry.deleted_at is None:
                entry.deleted_at = now
                entry.updated_at = now
        stored.entries.extend(self._new_entry(entry, now) for entry in write.entries)
        if seeding:
            stored.notes = [self._seeded_note(sent, now) for sent in write.notes]
        else:
            stored.notes = self._written_notes(stored.notes, write.notes, now)
        self._tag_counts = None

    def _written_notes(
        self, before: list[Note], sent: list[NoteWrite], now: datetime
    ) -> list[Note]:
        """The notes after a write. A note sent with the id of one of the contact's notes is
        that note: it keeps its id, creation and author, and `updated_at` moves only when
        its text or flags change. Any other note is new: a new id, created now, by the API
        key's user. The times and author a write carries are the server's: ignored."""
        kept = {note.id: note for note in before}
        notes: list[Note] = []
        for write in sent:
            note = kept.pop(write.id, None) if write.id is not None else None
            if note is None:
                note = Note(
                    id=self._next_note_id(),
                    data=write.data,
                    pinned=write.pinned,
                    only_super_admin=write.only_super_admin,
                    created_at=now,
                    updated_at=now,
                    author=copy.deepcopy(self.api_user),
                )
            elif (note.data, note.pinned, note.only_super_admin) != (
                write.data,
                write.pinned,
                write.only_super_admin,
            ):
                note.data = write.data
                note.pinned = write.pinned
                note.only_super_admin = write.only_super_admin
                note.updated_at = now
            notes.append(note)
        return notes

    def _seeded_note(self, write: NoteWrite, created: datetime) -> Note:
        if write.id is None:
            note_id = self._next_note_id()
        else:
            note_id = write.id
            self._highest_note_id = max(self._highest_note_id, note_id)
        created_at = write.created_at or created
        return Note(
            id=note_id,
            data=write.data,
            pinned=write.pinned,
            only_super_admin=write.only_super_admin,
            created_at=created_at,
            updated_at=write.updated_at or created_at,
            author=copy.deepcopy(write.author or self.api_user),
        )

    def _new_contact(
        self,
        contact_id: int,
        created_at: datetime,
        updated_at: datetime,
        lastchange: datetime,
        user_id: int,
    ) -> StoredContact:
        return StoredContact(
            id=contact_id,
            group_id=self.group_id,
            user_id=user_id,
            lastchangeuserid=user_id,
            created_at=created_at,
            updated_at=updated_at,
            lastchange=lastchange,
            fields=dict.fromkeys(BASIC_FIELDS),
            address={},
            tags=[],
            action_ids=[],
            notes=[],
            entries=[],
            unknown_fields={},
        )

    def _new_entry(
        self, write: EntryWrite, now: datetime, deleted_at: datetime | None = None
    ) -> Entry:
        self._highest_entry_id += 1
        return Entry(
            id=self._highest_entry_id,
            kind=write.kind,
            form_id=write.form_id,
            form_ref_id=write.form_ref_id,
            data=copy.deepcopy(write.data),
            date=write.date,
            survey_id=write.survey_id,
            created_at=now,
            updated_at=deleted_at or now,
            deleted_at=deleted_at,
        )

    def _next_contact_id(self) -> int:
        # Ids only grow: a deleted contact's id is never given again.
        self._highest_contact_id += 1
        return self._highest_contact_id

    def _next_note_id(self) -> int:
        # Above every note id seeded or given, so a new note never takes a seeded one's.
        self._highest_note_id += 1
        return self._highest_note_id

    # -- rendering ----------------------------------------------------------------------

    def render(
        self, contact: StoredContact, *, naming: Naming = "current", include_deleted: bool = False
    ) -> JsonObject:
        """The read shape GET answers, in one of the two naming generations."""
        if self._tag_counts is None:
            self._tag_counts = Counter(
                name for c in self._contacts.values() for name in set(c.tags)
            )
        return render_contact(
            contact,
            self.forms,
            self._tag_counts,
            naming=naming,
            include_deleted=include_deleted,
        )

    def raw(self, contact: StoredContact) -> JsonObject:
        """Everything stored, soft-deleted entries included, for the inspection surface."""
        return raw_record(contact)
