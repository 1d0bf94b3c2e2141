"""The per-contact read-modify-write against an in-memory Qomon behind the port."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_sync import EventOutcome, sync_contact
from tests.conftest import PSEUDONYMS
from tests.unit.campaign import CATALOG


class FakeQomon:
    """Stores what it is sent, gives answers new ids, and counts calls like Qomon bills them."""

    def __init__(self, contacts: list[dict[str, Any]]) -> None:
        self.contacts = {c["id"]: copy.deepcopy(c) for c in contacts}
        self.calls: list[str] = []
        self._ids = itertools.count(9000)
        self.drop_on_write: int | None = None  # a form id Qomon "forgets" on write

    def find_by_email(self, mail: str) -> list[dict[str, Any]]:
        self.calls.append("search")
        return [
            copy.deepcopy(c)
            for c in self.contacts.values()
            if (c.get("mail") or "").casefold() == mail.casefold()
        ]

    def get(self, contact_id: int) -> dict[str, Any] | None:
        self.calls.append("get")
        found = self.contacts.get(contact_id)
        return copy.deepcopy(found) if found else None

    def _store(self, contact_id: int, body: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(body) | {
            "id": contact_id,
            "UpdatedAt": "2026-11-24T10:00:00.123456Z",
        }
        stored["formdatas"] = [
            dict(a, id=next(self._ids), deleted_at=None)
            for a in stored.get("formdatas", [])
            if a["form_id"] != self.drop_on_write
        ]
        self.contacts[contact_id] = stored
        return copy.deepcopy(stored)

    def replace(self, contact_id: int, contact: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("patch")
        return self._store(contact_id, contact)

    def create(self, contact: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        return self._store(next(self._ids), contact)


ANA = {
    "id": 42,
    "firstname": "Ana",
    "mail": "ana@example.org",
    "tags": [{"name": "Volunteer"}],
    "formdatas": [
        {"id": 1, "form_id": 2, "form_ref_id": 21, "data": "leaning", "deleted_at": None}
    ],
}


def fields_of(outcome: EventOutcome) -> tuple[str, ...]:
    assert outcome.refusal is not None, outcome
    return outcome.refusal.fields


def event(event_id: str, contact: dict[str, Any] | None = None, **changes: Any) -> ChangeEvent:
    body = {
        "event_id": event_id,
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": contact or {"id": 42},
    }
    return ChangeEvent.model_validate(body | changes)


def actions(result: Any) -> list[tuple[str, str, str | None]]:
    return [(o.event_id, o.action, o.refusal and o.refusal.code) for o in result.outcomes]


def test_several_events_cost_one_get_and_one_patch() -> None:
    qomon = FakeQomon([ANA])
    events = [
        event("e1", set={"firstname": "Anna"}),
        event("e2", tags={"add": ["Donor"]}),
        event("e3", fields=[{"field": "Level of support", "value": "strong"}]),
    ]
    result = sync_contact(events, qomon, CATALOG)
    assert qomon.calls == ["get", "patch"]
    assert actions(result) == [
        ("e1", "replaced", None),
        ("e2", "replaced", None),
        ("e3", "replaced", None),
    ]
    stored = qomon.contacts[42]
    assert stored["firstname"] == "Anna"
    assert [t["name"] for t in stored["tags"]] == ["Volunteer", "Donor"]
    assert [(a["form_ref_id"], a["data"]) for a in stored["formdatas"]] == [(20, "strong")]


def test_an_event_qomon_already_holds_is_told_unchanged_in_a_written_fold() -> None:
    """A write that landed before a crash, then the contact's backlog again with one more
    event: one PATCH carries both, but only the new one replaced anything."""
    qomon = FakeQomon([ANA | {"notes": [{"data": "called on Monday"}]}])
    events = [
        event("held", notes=[{"data": "called on Monday"}]),
        event("new", notes=[{"data": "called again on Friday"}]),
        event("tag", tags={"add": ["Volunteer"]}),
    ]
    result = sync_contact(events, qomon, CATALOG)
    assert qomon.calls == ["get", "patch"]
    assert actions(result) == [
        ("held", "unchanged", None),
        ("new", "replaced", None),
        ("tag", "unchanged", None),
    ]
    assert [n["data"] for n in qomon.contacts[42]["notes"]] == [
        "called on Monday",
        "called again on Friday",
    ]


def test_nothing_to_change_costs_no_patch() -> None:
    qomon = FakeQomon([ANA])
    result = sync_contact([event("e1", set={"firstname": "Ana"})], qomon, CATALOG)
    assert qomon.calls == ["get"]
    assert actions(result) == [("e1", "unchanged", None)]


def test_found_by_exact_email() -> None:
    qomon = FakeQomon([ANA])
    result = sync_contact(
        [event("e1", {"mail": "ANA@example.org"}, set={"surname": "Martin"})], qomon, CATALOG
    )
    assert qomon.calls == ["search", "get", "patch"]
    assert result.outcomes[0].contact_id == 42


def test_unknown_id_is_dead_lettered() -> None:
    qomon = FakeQomon([ANA])
    result = sync_contact([event("e1", {"id": 7}, set={"firstname": "X"})], qomon, CATALOG)
    assert actions(result) == [("e1", "dead_letter", "contact_not_found")]
    assert fields_of(result.outcomes[0]) == ("contact.id",)
    assert qomon.calls == ["get"]


def test_unknown_email_is_created_when_the_event_asks() -> None:
    qomon = FakeQomon([ANA])
    who = {"mail": "zoe@example.org"}
    events = [
        event("e1", who, set={"firstname": "Zoé"}),  # dead-letters by default
        event("e2", who, set={"firstname": "Zoé", "mail": "zoe@example.org"}, if_missing="create"),
        event("e3", who, tags={"add": ["Form"]}),
    ]
    result = sync_contact(events, qomon, CATALOG)
    assert actions(result) == [
        ("e1", "dead_letter", "contact_not_found"),
        ("e2", "created", None),
        ("e3", "created", None),
    ]
    created_id = result.outcomes[1].contact_id
    assert created_id is not None
    created = qomon.contacts[created_id]
    assert created["firstname"] == "Zoé"
    assert created["tags"] == [{"name": "Form"}]
    assert qomon.calls == ["search", "create"]


def test_shared_email_is_never_guessed() -> None:
    twin = ANA | {"id": 43, "mail": "Ana@Example.org"}
    qomon = FakeQomon([ANA, twin])
    result = sync_contact(
        [event("e1", {"mail": "ana@example.org"}, if_missing="create")], qomon, CATALOG
    )
    assert actions(result) == [("e1", "dead_letter", "ambiguous_contact")]
    assert qomon.calls == ["search"]


def test_a_poison_event_is_dead_lettered_alone_and_order_is_kept() -> None:
    qomon = FakeQomon([ANA])
    events = [
        event("e1", set={"firstname": "Anna"}),
        event("e2", fields=[{"field": "No such question", "value": "x"}]),
        event("e3", set={"firstname": "Annabel"}, tags={"add": ["Donor"]}),
    ]
    result = sync_contact(events, qomon, CATALOG)
    assert actions(result) == [
        ("e1", "replaced", None),
        ("e2", "dead_letter", "unknown_field"),
        ("e3", "replaced", None),
    ]
    assert fields_of(result.outcomes[1]) == ("No such question",)
    assert qomon.contacts[42]["firstname"] == "Annabel"
    assert qomon.calls == ["get", "patch", "patch"]  # the PATCH answer is the next baseline


def test_a_contact_with_a_field_we_do_not_understand_is_left_alone() -> None:
    qomon = FakeQomon([ANA | {"external_id": "crm-1"}])
    result = sync_contact(
        [event("e1", set={"firstname": "A"}), event("e2", tags={"add": ["B"]})], qomon, CATALOG
    )
    assert actions(result) == [
        ("e1", "dead_letter", "unknown_field"),
        ("e2", "dead_letter", "unknown_field"),
    ]
    assert fields_of(result.outcomes[0]) == ("external_id",)
    assert "patch" not in qomon.calls


def test_an_echo_that_differs_from_what_was_sent_is_dead_lettered() -> None:
    qomon = FakeQomon([ANA])
    qomon.drop_on_write = 1
    result = sync_contact(
        [event("e1", fields=[{"field": "Consents", "op": "add", "value": "consent_email"}])],
        qomon,
        CATALOG,
    )
    assert actions(result) == [("e1", "dead_letter", "echo_mismatch")]
    assert fields_of(result.outcomes[0]) == ("formdatas[form_id=1]",)


def test_port_errors_are_left_to_the_caller() -> None:
    class Down(FakeQomon):
        def get(self, contact_id: int) -> dict[str, Any] | None:
            raise TimeoutError("Qomon is down")

    with pytest.raises(TimeoutError):
        sync_contact([event("e1", set={"firstname": "A"})], Down([ANA]), CATALOG)


def test_events_of_several_contacts_are_refused() -> None:
    with pytest.raises(ValueError, match="one contact"):
        sync_contact([event("e1"), event("e2", {"id": 43})], FakeQomon([ANA]), CATALOG)


def test_an_unknown_person_is_skipped_when_the_event_asks() -> None:
    qomon = FakeQomon([ANA])
    who = {"mail": "never.known@example.org"}
    result = sync_contact(
        [event("e1", who, tags={"add": ["unsubscribed"]}, if_missing="skip")], qomon, CATALOG
    )
    assert actions(result) == [("e1", "unchanged", None)]
    assert result.outcomes[0].warnings == ("contact not found: skipped, as the event asked",)
    assert qomon.calls == ["search"]


def test_a_contact_created_from_an_email_lookup_keeps_that_email() -> None:
    """Found by the probe: a form submission creating its person did not write the e-mail
    it looked them up by, so the next submission found no one and created them again."""
    qomon = FakeQomon([])
    first = event(
        "c1", {"mail": "new.person@example.org"}, set={"firstname": "Nour"}, if_missing="create"
    )
    again = event(
        "c2", {"mail": "new.person@example.org"}, set={"surname": "Haddad"}, if_missing="create"
    )
    sync_contact([first], qomon, CATALOG)
    sync_contact([again], qomon, CATALOG)
    [created] = qomon.contacts.values()
    assert created["mail"] == "new.person@example.org"
    assert (created["firstname"], created["surname"]) == ("Nour", "Haddad")
    assert qomon.calls.count("create") == 1


def test_one_address_in_several_cases_is_one_person_for_the_fold_and_for_a_create() -> None:
    """Issue 18: a person is found whatever the case of the address. Events naming one
    address in different cases are one contact's (one key, one search, one write), and a
    person created from one spelling is found, not created again, from another."""
    qomon = FakeQomon([])
    first = event(
        "c1", {"mail": "Nour.Haddad@Example.org"}, set={"firstname": "Nour"}, if_missing="create"
    )
    same = event("c2", {"mail": "nour.haddad@example.org "}, tags={"add": ["Form"]})
    assert first.contact.person == same.contact.person
    assert first.contact.group(PSEUDONYMS) == same.contact.group(PSEUDONYMS)
    result = sync_contact([first, same], qomon, CATALOG)
    assert actions(result) == [("c1", "created", None), ("c2", "created", None)]
    again = event(
        "c3", {"mail": "NOUR.HADDAD@EXAMPLE.ORG"}, set={"surname": "Haddad"}, if_missing="create"
    )
    qomon.calls.clear()
    result = sync_contact([again], qomon, CATALOG)
    assert actions(result) == [("c3", "replaced", None)]
    assert qomon.calls == ["search", "get", "patch"]
    [person] = qomon.contacts.values()
    assert (person["mail"], person["surname"]) == ("Nour.Haddad@Example.org", "Haddad")
