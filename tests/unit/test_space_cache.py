"""Issue 12: the forms loaded once for every instance, and an e-mail's contact remembered
(keyed by its pseudonym, checked against the GET, never beyond its TTL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from qomon_sync.adapters.space_cache import (
    LookedUp,
    MailCache,
    RememberedContacts,
    SharedForms,
    WaitingLookups,
)
from qomon_sync.domain.contact_shape import WriteContact
from qomon_sync.domain.forms import Form, FormCatalog
from tests.conftest import PSEUDONYMS
from tests.unit.fakes import FakeClock, staging_table_in_moto

TABLE = "staging"
MAIL = "Ana.Martin@Example.org"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with staging_table_in_moto(TABLE) as client:
        yield client


def catalog() -> FormCatalog:
    return FormCatalog(
        [
            Form.model_validate(
                {
                    "id": 3102,
                    "type": "radio",
                    "label": "Niveau de soutien",
                    "refvalues": [{"id": 1, "value": "favorable", "label": "Favorable"}],
                    "group_id": 12,  # an extra key Qomon sends
                }
            )
        ]
    )


def test_the_forms_are_loaded_once_for_every_instance_until_they_expire(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    loads: list[int] = []

    def load() -> FormCatalog:
        loads.append(1)
        return catalog()

    first = SharedForms(dynamodb, TABLE, "space", ttl_s=900, clock=clock, sleep=clock.sleep)
    second = SharedForms(dynamodb, TABLE, "space", ttl_s=900, clock=clock, sleep=clock.sleep)
    assert first.get(load).by_id[3102].label == "Niveau de soutien"
    read = second.get(load)
    assert len(loads) == 1
    assert read.by_id[3102] == catalog().by_id[3102]  # extra keys kept too
    clock.now += 901
    second.get(load)
    assert len(loads) == 2


def test_an_instance_waits_for_the_one_loading_the_forms_rather_than_load_them_too(
    dynamodb: Any,
) -> None:
    clock = FakeClock(1_000_000.0)
    loader = SharedForms(dynamodb, TABLE, "space", ttl_s=900, clock=clock, sleep=clock.sleep)

    class Patient(SharedForms):
        def _read(self, now: float) -> tuple[FormCatalog | None, float]:
            if clock.slept:  # by its first poll, the other instance has written them
                loader._write(catalog(), clock.now + 900)
            return super()._read(now)

    assert loader._lease(clock.now)  # another instance is loading
    waiting = Patient(dynamodb, TABLE, "space", ttl_s=900, clock=clock, sleep=clock.sleep)
    assert 3102 in waiting.get(lambda: pytest.fail("loaded the forms again")).by_id


def test_a_failed_load_lets_the_next_instance_load_at_once(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    forms = SharedForms(dynamodb, TABLE, "space", ttl_s=900, clock=clock, sleep=clock.sleep)

    def fail() -> FormCatalog:
        raise RuntimeError("Qomon is down")

    with pytest.raises(RuntimeError):
        forms.get(fail)
    other = SharedForms(dynamodb, TABLE, "space", ttl_s=900, clock=clock, sleep=clock.sleep)
    assert 3102 in other.get(catalog).by_id
    assert clock.slept == []


class FakeQomon:
    def __init__(self, contacts: list[dict[str, Any]]) -> None:
        self.contacts = {c["id"]: c for c in contacts}
        self.calls: list[str] = []

    def find_by_email(self, mail: str) -> list[dict[str, Any]]:
        self.calls.append("search")
        return [c for c in self.contacts.values() if c["mail"].casefold() == mail.casefold()]

    def get(self, contact_id: int) -> dict[str, Any] | None:
        self.calls.append(f"get {contact_id}")
        return self.contacts.get(contact_id)

    def replace(self, contact_id: int, contact: WriteContact) -> dict[str, Any]:
        return {**contact, "id": contact_id}

    def create(self, contact: WriteContact) -> dict[str, Any]:
        created = {**contact, "id": 900001}
        self.contacts[900001] = created
        return created


def remembered(dynamodb: Any, qomon: FakeQomon, clock: FakeClock) -> RememberedContacts:
    return RememberedContacts(
        qomon, MailCache(dynamodb, TABLE, ttl_s=600, pseudonyms=PSEUDONYMS, clock=clock)
    )


def find_and_get(port: RememberedContacts, mail: str) -> dict[str, Any] | None:
    """What the sync does: find the contact, then GET it."""
    [found] = port.find_by_email(mail)
    return port.get(int(found["id"]))


def test_a_remembered_email_costs_one_get_instead_of_a_search_and_a_get(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    qomon = FakeQomon([{"id": 700103, "mail": "ana.martin@example.org"}])
    assert find_and_get(remembered(dynamodb, qomon, clock), MAIL) is not None
    assert qomon.calls == ["search", "get 700103"]
    qomon.calls.clear()
    # Another instance, later: the id is remembered, read once, checked.
    assert find_and_get(remembered(dynamodb, qomon, clock), MAIL) is not None
    assert qomon.calls == ["get 700103"]


def test_the_cache_key_is_the_pseudonym_never_the_address(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    qomon = FakeQomon([{"id": 700103, "mail": "ana.martin@example.org"}])
    find_and_get(remembered(dynamodb, qomon, clock), MAIL)
    stored = json.dumps(dynamodb.scan(TableName=TABLE)["Items"])
    assert "ana.martin" not in stored.casefold()
    assert '"mail#h:' in stored


def test_a_remembered_contact_whose_email_changed_is_searched_again(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    qomon = FakeQomon([{"id": 700103, "mail": "ana.martin@example.org"}])
    find_and_get(remembered(dynamodb, qomon, clock), MAIL)
    qomon.contacts[700103]["mail"] = "ana.nouvelle@example.org"
    qomon.contacts[700150] = {"id": 700150, "mail": "ana.martin@example.org"}
    qomon.calls.clear()
    assert find_and_get(remembered(dynamodb, qomon, clock), MAIL) == qomon.contacts[700150]
    assert qomon.calls == ["get 700103", "search", "get 700150"]


def test_a_shared_email_is_never_remembered_and_is_found_ambiguous_after_the_ttl(
    dynamodb: Any,
) -> None:
    clock = FakeClock(1_000_000.0)
    qomon = FakeQomon([{"id": 700103, "mail": "ana.martin@example.org"}])
    find_and_get(remembered(dynamodb, qomon, clock), MAIL)
    # Someone gives a second contact the same e-mail in Qomon's UI.
    qomon.contacts[700150] = {"id": 700150, "mail": "ana.martin@example.org"}
    port = remembered(dynamodb, qomon, clock)
    assert [c["id"] for c in port.find_by_email(MAIL)] == [700103]  # within the TTL
    clock.now += 601
    assert len(remembered(dynamodb, qomon, clock).find_by_email(MAIL)) == 2  # ambiguous again
    assert len(remembered(dynamodb, qomon, clock).find_by_email(MAIL)) == 2  # not remembered


def test_a_created_contact_is_remembered_for_its_next_events(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    qomon = FakeQomon([])
    port = remembered(dynamodb, qomon, clock)
    port.create({"mail": "nouvelle@example.org", "firstname": "Nour"})
    qomon.calls.clear()
    assert find_and_get(remembered(dynamodb, qomon, clock), "nouvelle@example.org") is not None
    assert qomon.calls == ["get 900001"]


def test_a_ttl_of_zero_remembers_nothing(dynamodb: Any) -> None:
    clock = FakeClock(1_000_000.0)
    qomon = FakeQomon([{"id": 700103, "mail": "ana.martin@example.org"}])
    port = RememberedContacts(
        qomon, MailCache(dynamodb, TABLE, ttl_s=0, pseudonyms=PSEUDONYMS, clock=clock)
    )
    find_and_get(port, MAIL)
    find_and_get(port, MAIL)
    assert qomon.calls.count("search") == 2
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_what_this_invocation_looked_up_is_not_searched_again(dynamodb: Any) -> None:
    # Issue 21: the batch's one search said nobody, or two people, for these e-mails.
    clock = FakeClock(1_000_000.0)
    twins = [{"id": 700103, "mail": MAIL}, {"id": 700150, "mail": MAIL.upper()}]
    qomon = FakeQomon(twins)
    looked_up = LookedUp()
    looked_up.record("Nouvelle@Example.org", [])
    looked_up.record(MAIL, twins)
    mails = MailCache(dynamodb, TABLE, ttl_s=600, pseudonyms=PSEUDONYMS, clock=clock)
    port = RememberedContacts(qomon, mails, looked_up)
    assert port.find_by_email(" nouvelle@example.org") == []
    assert [c["id"] for c in port.find_by_email(MAIL.title())] == [700103, 700150]
    assert qomon.calls == []
    port.create({"mail": "nouvelle@example.org", "firstname": "Nour"})
    assert [c["id"] for c in port.find_by_email("nouvelle@example.org")] == [900001]
    assert "other@example.org" not in looked_up
    assert dynamodb.scan(TableName=TABLE)["Items"][0]["contact_id"] == {"N": "900001"}


def test_waiting_lookups_note_groups_never_addresses_and_keep_what_others_add(
    dynamodb: Any,
) -> None:
    clock = FakeClock(1_000_000.0)
    one = WaitingLookups(dynamodb, TABLE, "a1b2", ttl_s=300, clock=clock)
    other = WaitingLookups(dynamodb, TABLE, "a1b2", ttl_s=300, clock=clock)
    one.add({"mail:h:aa", "mail:h:bb"})
    other.add({"mail:h:cc"})
    assert one.peek() == {"mail:h:aa", "mail:h:bb", "mail:h:cc"}
    taken = one.peek()
    other.add({"mail:h:dd"})  # meanwhile
    one.remove(taken)
    assert other.peek() == {"mail:h:dd"}
    assert "@" not in json.dumps(dynamodb.scan(TableName=TABLE)["Items"])
    clock.now += 301
    assert one.peek() == set()  # nothing waits longer than a contact may


def test_held_markers_are_given_back_with_their_groups_and_none_outlives_its_group(
    dynamodb: Any,
) -> None:
    one = WaitingLookups(dynamodb, TABLE, "a1b2", ttl_s=300)
    one.add({"mail:h:aa", "mail:h:bb", "mail:h:cc"})
    one.hold("mail:h:aa", "receipt-aa")
    one.hold("mail:h:bb", "receipt-bb")
    assert one.remove({"mail:h:aa"}) == {"mail:h:aa": "receipt-aa"}
    # Noted after another search took its group: given back with the next one's.
    one.hold("mail:h:gone", "receipt-gone")
    assert one.remove({"mail:h:cc"}) == {"mail:h:gone": "receipt-gone"}
    assert one.remove({"mail:h:bb"}) == {"mail:h:bb": "receipt-bb"}
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    assert "held" not in item
    assert one.peek() == set()
