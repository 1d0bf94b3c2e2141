"""Issue 18, point 5: a person is found by e-mail whatever the case Qomon holds the address
in, through the whole sync (the handler, local AWS, the stand-in over HTTP).

Qomon documents `eql:strictdata` as "equals (case-sensitive, exact match)", and the
stand-in plays it so: a form sending lea.martin@example.org must still find the person
Qomon holds as Lea.Martin@Example.org, in one search, without creating her twice, and
must still refuse to guess between two people who share the address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from tests.integration.sync_harness import (
    Heard,
    calls,
    clients,
    dead_letters,
    invoke,
    mail_message,
    queued,
    spend_the_burst,
    staged,
    standin,
)
from tests.integration.sync_harness import message as harness_message

pytestmark = pytest.mark.integration

LEA, LEA_TWIN, DECOY = 760001, 760002, 760003
"""Ids past the seed's, put in place by each test."""
TEN = range(760100, 760110)
SEEDED, OTHER = 700118, 700121
"""Contacts of the seed."""


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions()) as running:
        assert running.poller is not None
        running.poller.pause()  # the tests hand the handler its batches themselves
        yield running


@pytest.fixture
def person(local: LocalMode) -> str:
    """A fresh stand-in, and a local part no earlier test looked up (the sync remembers
    which contact an e-mail found)."""
    standin(local, "reset", {})
    return f"lea.martin.{uuid.uuid4().hex[:8]}"


def put(local: LocalMode, contact_id: int, mail: str, firstname: str) -> None:
    assert local.endpoints is not None
    record = {"firstname": firstname, "surname": "Martin", "mail": mail}
    url = f"{local.endpoints.qomon_url}/_standin/contacts/{contact_id}"
    httpx.put(url, json=record).raise_for_status()


def by_mail(mail: str, **changes: Any) -> dict[str, Any]:
    """A change event naming the person by e-mail only, in the message group of that person."""
    record = harness_message(0, contact={"mail": mail}, **changes)
    record["Attributes"]["MessageGroupId"] = f"test-{mail.casefold()}"
    return record


def stored(local: LocalMode, contact_id: int) -> dict[str, Any]:
    return dict(standin(local, f"contacts/{contact_id}")["contact"])


def everyone(local: LocalMode) -> list[dict[str, Any]]:
    return list(standin(local, "contacts")["contacts"])


def test_an_address_stored_in_another_case_is_found_and_updated_in_one_search(
    local: LocalMode, person: str
) -> None:
    put(local, LEA, f"{person.title()}@Example.org", "Lea")
    response = invoke([by_mail(f"{person}@example.org", set={"firstname": "Léa"})])
    assert response == {"batchItemFailures": []}
    assert dead_letters(local) == []
    assert stored(local, LEA)["firstname"] == "Léa"
    assert stored(local, LEA)["mail"] == f"{person.title()}@Example.org"  # left as Qomon had it
    assert calls(local, "POST /search") == 1
    assert calls(local, "PATCH /contacts/{id}") == 1


def test_if_missing_create_does_not_create_a_second_person_for_another_case(
    local: LocalMode, person: str
) -> None:
    put(local, LEA, f"{person.title()}@Example.org", "Lea")
    before = len(everyone(local))
    event = by_mail(f"{person.upper()}@EXAMPLE.ORG", set={"firstname": "Léa"}, if_missing="create")
    assert invoke([event]) == {"batchItemFailures": []}
    assert dead_letters(local) == []
    assert calls(local, "POST /contacts") == 0
    assert len(everyone(local)) == before
    assert stored(local, LEA)["firstname"] == "Léa"


def test_two_people_sharing_the_address_in_different_cases_are_refused_as_ambiguous(
    local: LocalMode, person: str
) -> None:
    put(local, LEA, f"{person.title()}@Example.org", "Lea")
    put(local, LEA_TWIN, f"{person}@EXAMPLE.ORG", "Léa")
    event = by_mail(f"{person}@example.org", set={"firstname": "Nobody"}, if_missing="create")
    assert invoke([event]) == {"batchItemFailures": []}
    [letter] = dead_letters(local)
    assert letter["error_code"] == "ambiguous_contact"
    assert all(person not in value.casefold() for key, value in letter.items() if key != "body")
    assert [stored(local, i)["firstname"] for i in (LEA, LEA_TWIN)] == ["Lea", "Léa"]
    assert calls(local, "POST /contacts") == 0
    assert calls(local, "POST /search") == 1


def test_a_longer_address_that_begins_with_the_one_asked_is_not_the_person(
    local: LocalMode, person: str
) -> None:
    # The loose `eql` finds lea.martin…@example.org.uk for lea.martin…@example.org.
    put(local, DECOY, f"{person}@example.org.uk", "Decoy")
    response = invoke([by_mail(f"{person}@Example.org", set={"firstname": "Léa"})])
    assert response == {"batchItemFailures": []}
    [letter] = dead_letters(local)
    assert letter["error_code"] == "contact_not_found"
    assert stored(local, DECOY)["firstname"] == "Decoy"

    put(local, LEA, f"{person.title()}@example.org", "Lea")
    assert invoke([by_mail(f"{person}@Example.org", set={"firstname": "Léa"})]) == {
        "batchItemFailures": []
    }
    assert dead_letters(local) == []
    assert stored(local, LEA)["firstname"] == "Léa"
    assert stored(local, DECOY)["firstname"] == "Decoy"
    assert calls(local, "POST /search") == 2  # one per lookup


# -- issue 21: the e-mails a batch needs, looked up together ------------------------------


def test_a_batch_of_ten_people_named_by_email_costs_one_search(
    local: LocalMode, person: str
) -> None:
    mails = [f"{person}.{n}@example.org" for n in range(len(TEN))]
    for n, (contact_id, mail) in enumerate(zip(TEN, mails, strict=True)):
        put(local, contact_id, mail.title() if n % 2 else mail, f"P{n}")
    batch = [by_mail(mail, set={"firstname": f"Q{n}"}) for n, mail in enumerate(mails)]
    assert invoke(batch) == {"batchItemFailures": []}
    # A full batch: the last contact waits for its flush marker, already looked up.
    [flush_marker] = queued(local)
    assert invoke([flush_marker]) == {"batchItemFailures": []}
    assert dead_letters(local) == []
    assert [stored(local, i)["firstname"] for i in TEN] == [f"Q{n}" for n in range(len(TEN))]
    assert calls(local, "POST /search") == 1  # one per contact before: 10
    # A search result is not the contact: each is read just before its write.
    assert calls(local, "GET /contacts/{id}") == len(TEN)
    assert calls(local, "PATCH /contacts/{id}") == len(TEN)


def test_a_paused_space_is_asked_nothing_not_even_the_batchs_search(
    local: LocalMode, person: str
) -> None:
    from qomon_sync.adapters.space_pause import SpacePauses, place_of
    from qomon_sync.domain.pause import OUTAGE, Systemic

    assert local.endpoints is not None
    _, dynamodb = clients(local)
    pauses = SpacePauses(
        dynamodb, local.endpoints.staging_table, place_of(local.endpoints.qomon_url)
    )
    pause = pauses.trip(Systemic(OUTAGE, "Qomon answers 503"), None, first_probe_s=60)
    try:
        mails = [f"{person}.{n}@example.org" for n in range(3)]
        for contact_id, mail in zip(TEN, mails, strict=False):
            put(local, contact_id, mail, "P")
        batch = [by_mail(mail, set={"firstname": "Paused"}) for mail in mails]
        assert invoke(batch) == {"batchItemFailures": []}
        assert calls(local, "POST /search") == 0
        assert calls(local, "GET /contacts/{id}") == 0
        assert dead_letters(local) == []
        assert len(staged(local)) == len(mails)  # they wait, staged, for the resume
    finally:
        pauses.clear(pause)
        # Resumed: the markers they wait behind flush them, and nothing is left behind.
        for _ in range(5):
            if not (markers := queued(local)):
                break
            assert invoke(markers) == {"batchItemFailures": []}
    assert staged(local) == []
    assert [stored(local, i)["firstname"] for i in TEN[: len(mails)]] == ["Paused"] * 3


def test_one_search_keeps_the_refusals_and_the_creations_of_a_lookup_of_one(
    local: LocalMode, person: str
) -> None:
    put(local, LEA, f"{person.title()}@Example.org", "Lea")
    put(local, LEA_TWIN, f"{person}@EXAMPLE.ORG", "Léa")  # two people, one address
    put(local, DECOY, f"{person}.new@example.org.uk", "Decoy")  # `eql` finds it loosely
    put(local, TEN[0], f"{person}.found@example.org", "Found")
    before = len(everyone(local))
    batch = [
        by_mail(f"{person}@example.org", set={"firstname": "Nobody"}, if_missing="create"),
        by_mail(f"{person}.new@example.org", set={"firstname": "New"}, if_missing="create"),
        by_mail(f"{person}.gone@example.org", set={"firstname": "Gone"}),
        by_mail(f"{person}.FOUND@example.org", set={"firstname": "Trouvé"}),
    ]
    assert invoke(batch) == {"batchItemFailures": []}
    letters = sorted(letter["error_code"] for letter in dead_letters(local))
    assert letters == ["ambiguous_contact", "contact_not_found"]
    assert calls(local, "POST /search") == 1  # one per contact before: 4
    assert calls(local, "POST /contacts") == 1
    assert len(everyone(local)) == before + 1
    [created] = [c for c in everyone(local) if c["firstname"] == "New"]
    assert created["mail"] == f"{person}.new@example.org"
    assert stored(local, TEN[0])["firstname"] == "Trouvé"
    assert [stored(local, i)["firstname"] for i in (LEA, LEA_TWIN, DECOY)] == [
        "Lea",
        "Léa",
        "Decoy",
    ]


def backlog_batch(local: LocalMode, mails: list[str]) -> list[dict[str, Any]]:
    """A full batch of a backlog: one change for each of `mails`, seven for a contact by
    id (flushed now) and one for another (the last: it waits for its marker)."""
    by_id = [harness_message(SEEDED, set={"surname": f"Lot {n}"}) for n in range(7)]
    by_id.append(harness_message(OTHER, set={"surname": "Dernier"}))
    return [mail_message(local, mail, set={"firstname": "Après"}) for mail in mails] + by_id


def people(local: LocalMode, person: str, count: int) -> list[str]:
    """`count` people of the stand-in, each with an e-mail of their own."""
    mails = [f"{person}.{n}@example.org" for n in range(count)]
    for contact_id, mail in zip(TEN[:count], mails, strict=True):
        put(local, contact_id, mail, "Avant")
    return mails


def test_on_a_backlog_a_few_unknown_emails_wait_for_their_markers_and_one_search(
    local: LocalMode, person: str
) -> None:
    # A full batch is a backlog: two people named by e-mail among eight events by id would
    # cost a search of two now; they wait, staged, behind their flush markers instead,
    # while the contact by id is flushed.
    mails = people(local, person, 2)
    spend_the_burst(local)
    assert invoke(backlog_batch(local, mails)) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 0
    assert calls(local, "PATCH /contacts/{id}") == 1  # the contact by id, not the e-mails
    assert len(staged(local)) == 3  # nothing lost: staged until the markers come
    markers = queued(local)
    assert len(markers) == 3  # the two e-mails' and the last contact's (more may follow)
    assert invoke(markers) == {"batchItemFailures": []}  # not a backlog: searched at once
    assert dead_letters(local) == []
    assert calls(local, "POST /search") == 1
    assert [stored(local, i)["firstname"] for i in TEN[:2]] == ["Après", "Après"]
    assert stored(local, SEEDED)["surname"] == "Lot 6"
    assert stored(local, OTHER)["surname"] == "Dernier"
    assert staged(local) == []


def test_the_search_a_marker_brings_sweeps_every_email_noted_as_waiting(
    local: LocalMode, person: str
) -> None:
    # Two backlog batches leave four people waiting; the first marker back searches for
    # all four (their groups were noted), so the other markers find them known.
    mails = people(local, person, 4)
    for pair in (mails[:2], mails[2:]):
        spend_the_burst(local)
        assert invoke(backlog_batch(local, pair)) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 0
    markers = queued(local)
    first = next(m for m in markers if m["Attributes"]["MessageGroupId"].startswith("mail:"))
    assert invoke([first]) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 1
    rest = [m for m in markers if m is not first]
    assert invoke(rest) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 1  # one per contact before: 4
    assert dead_letters(local) == []
    assert [stored(local, i)["firstname"] for i in TEN[:4]] == ["Après"] * 4
    assert staged(local) == []


def test_a_full_batch_does_not_wait_while_the_spaces_tokens_pile_up(
    local: LocalMode, person: str
) -> None:
    # The bucket full: waiting would leave tokens unspent, so the batch searches at once.
    spend_the_burst(local, booked_s=-60.0)
    mails = people(local, person, 2)
    by_id = [harness_message(SEEDED, set={"surname": f"Lot {n}"}) for n in range(8)]
    batch = [mail_message(local, mail, set={"firstname": "Après"}) for mail in mails] + by_id
    assert invoke(batch) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 1
    assert [stored(local, i)["firstname"] for i in TEN[:2]] == ["Après", "Après"]


def test_a_marker_back_before_its_wait_is_held_not_sent_again_and_the_search_lets_it_go(
    local: LocalMode, person: str
) -> None:
    # SQS may serve a group's marker again in the very next batch. Sent again each time, a
    # waiting contact's marker came round batch after batch in the backlog's places (a
    # 3,000-event run: 2,000 marker receives); now it is held for the rest of the wait.
    mails = people(local, person, 2)
    spend_the_burst(local)
    assert invoke(backlog_batch(local, mails)) == {"batchItemFailures": []}
    markers = queued(local, keep=True)
    first, second = (m for m in markers if m["Attributes"]["MessageGroupId"].startswith("mail:"))
    rest = [m for m in markers if m is not first and m is not second]
    by_id = [harness_message(SEEDED, set={"surname": f"Encore {n}"}) for n in range(9)]
    assert invoke([first, *by_id]) == {
        "batchItemFailures": [{"itemIdentifier": first["MessageId"]}]
    }
    assert calls(local, "POST /search") == 0
    group = first["Attributes"]["MessageGroupId"]
    assert [m for m in queued(local, keep=True) if m["Attributes"]["MessageGroupId"] == group] == []
    # The second marker alone is no backlog: one search for both, and the first marker,
    # held for some 15 s more, comes round at once.
    assert invoke([second]) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 1
    [back] = [m for m in queued(local, keep=True) if m["Attributes"]["MessageGroupId"] == group]
    assert back["Attributes"]["ApproximateReceiveCount"] == "2"
    assert invoke([back, *rest]) == {"batchItemFailures": []}
    assert calls(local, "POST /search") == 1
    assert dead_letters(local) == []
    assert [stored(local, i)["firstname"] for i in TEN[:2]] == ["Après", "Après"]
    assert stored(local, SEEDED)["surname"] == "Encore 8"
    assert staged(local) == []


def test_a_person_the_search_found_nobody_for_is_settled_without_booking_tokens(
    local: LocalMode, person: str
) -> None:
    """A flush booked its contact's GET and PATCH before anything else: a person the
    batch's search found nobody for waited in the space's queue for tokens it would never
    spend, and was put off (a marker, the events staged) when the refill was spoken for."""
    from qomon_sync.handlers.sync import current_runtime, reset_runtime

    # The forms loaded, as on any backlog but its first flush.
    spend_the_burst(local, booked_s=-60.0)
    queued(local)  # what earlier tests left on the queue and among the dead letters
    dead_letters(local)
    assert invoke([harness_message(OTHER, set={"surname": "Forms"})]) == {"batchItemFailures": []}
    assert queued(local) == []
    reset_runtime()
    # Once the search's tokens are booked, other instances book ten minutes of the refill.
    spoken_for = Heard({"POST search": lambda: spend_the_burst(local, booked_s=600.0)})
    current_runtime().transport = spoken_for
    try:
        assert invoke([by_mail(f"{person}.gone@example.org", set={"firstname": "Gone"})]) == {
            "batchItemFailures": []
        }
    finally:
        reset_runtime()
        spend_the_burst(local, booked_s=-60.0)  # the bucket full again
    assert [letter["error_code"] for letter in dead_letters(local)] == ["contact_not_found"]
    assert calls(local, "POST /search") == 1
    assert staged(local) == []
    assert queued(local) == []  # no marker: nothing was put off
