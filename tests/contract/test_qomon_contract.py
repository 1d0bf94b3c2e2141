"""The client's contract with Qomon, checked over real HTTP.

Against a real space these tests create their own contacts and delete them afterwards;
they never touch existing people.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qomon_sync.adapters.qomon import (
    Deadline,
    QomonAuthError,
    QomonBudgetExhausted,
    QomonClient,
    QomonNotFound,
    QomonValidationError,
    RetryPolicy,
)
from qomon_sync.adapters.qomon.client import USER_AGENT, EndpointStats
from qomon_sync.domain.assembly import Replace, assemble_contact, same_meaning
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_meaning import fingerprint
from qomon_sync.domain.contact_shape import ShapePolicy, to_write_shape
from qomon_sync.domain.forms import Form, FormCatalog
from tests.contract.conftest import Target

pytestmark = pytest.mark.contract


@pytest.fixture
def client(target: Target) -> Iterator[QomonClient]:
    with target.client() as qomon:
        yield qomon


@pytest.fixture
def scratch(client: QomonClient, deadline: Deadline) -> Iterator[list[int]]:
    """Ids of contacts a test created; deleted afterwards."""
    created: list[int] = []
    yield created
    for contact_id in created:
        with contextlib.suppress(QomonNotFound):
            client.delete_contact(contact_id, deadline=Deadline.after(10))


def unique_mail(tag: str) -> str:
    return f"contract.{tag}.{uuid.uuid4().hex[:8]}@example.org"


def first_form(client: QomonClient, family: str, kind: str, deadline: Deadline) -> Form:
    forms = [
        f for f in client.list_forms(family, deadline=deadline) if f.type == kind and f.refvalues
    ]
    if not forms:
        pytest.skip(f"the space has no {kind} form in {family}")
    return forms[0]


def create(
    client: QomonClient, scratch: list[int], deadline: Deadline, **fields: Any
) -> dict[str, Any]:
    contact = client.create_contact(fields, deadline=deadline)
    scratch.append(int(contact["id"]))
    return contact


def answer(form: Form, index: int = 0) -> dict[str, Any]:
    ref = form.refvalues[index]
    return {"form_id": form.id, "form_ref_id": ref.id, "data": ref.value}


def test_read_returns_the_contact(
    client: QomonClient, scratch: list[int], deadline: Deadline
) -> None:
    mail = unique_mail("read")
    created = create(client, scratch, deadline, firstname="Réa", surname="Contract", mail=mail)
    read = client.get_contact(created["id"], deadline=deadline)
    assert read["id"] == created["id"]
    assert (read["firstname"], read["surname"], read["mail"]) == ("Réa", "Contract", mail)


def test_a_missing_contact_is_not_found(client: QomonClient, deadline: Deadline) -> None:
    with pytest.raises(QomonNotFound) as caught:
        client.get_contact(987654321, deadline=deadline)
    assert caught.value.status == 404
    assert not caught.value.retryable


def test_replace_clears_everything_the_body_leaves_out(
    client: QomonClient, scratch: list[int], deadline: Deadline
) -> None:
    created = create(
        client,
        scratch,
        deadline,
        firstname="Full",
        surname="Replace",
        phone="+33600000999",
        tags=[{"name": "contract"}],
    )
    client.replace_contact(created["id"], {"firstname": "Full"}, deadline=deadline)
    read = client.get_contact(created["id"], deadline=deadline)
    assert read["firstname"] == "Full"
    assert not read.get("surname")
    assert not read.get("phone")
    assert not read.get("tags")


def test_every_replace_gives_answers_new_ids_but_the_same_meaning(
    client: QomonClient, scratch: list[int], deadline: Deadline
) -> None:
    consent = first_form(client, "consent", "checkbox", deadline)
    created = create(client, scratch, deadline, firstname="Ids", formdatas=[answer(consent)])
    before = client.get_contact(created["id"], deadline=deadline)
    forms = FormCatalog([consent])
    body = to_write_shape(before, forms)
    after = client.replace_contact(created["id"], body, deadline=deadline)
    old_ids = {a["id"] for a in before["formdatas"]}
    new_ids = {a["id"] for a in after["formdatas"]}
    assert old_ids.isdisjoint(new_ids)
    assert fingerprint(to_write_shape(after, forms)) == fingerprint(body)


def test_answers_left_out_are_soft_deleted(
    client: QomonClient, scratch: list[int], target: Target, deadline: Deadline
) -> None:
    control = target.require_control()
    consent = first_form(client, "consent", "checkbox", deadline)
    created = create(
        client,
        scratch,
        deadline,
        firstname="Soft",
        formdatas=[answer(consent, 0), answer(consent, 1)],
    )
    client.replace_contact(
        created["id"], {"firstname": "Soft", "formdatas": [answer(consent, 1)]}, deadline=deadline
    )
    read = client.get_contact(created["id"], deadline=deadline)
    assert [a["form_ref_id"] for a in read["formdatas"]] == [consent.refvalues[1].id]
    stored = control.stored(created["id"])
    gone = [e for e in stored["formdatas"] if e["deleted_at"] is not None]
    assert {e["form_ref_id"] for e in gone} == {consent.refvalues[0].id, consent.refvalues[1].id}
    control.configure(include_deleted=True)  # as integrators observed live
    leaked = client.get_contact(created["id"], deadline=deadline)
    assert any(a["deleted_at"] for a in leaked["formdatas"])
    assert fingerprint(to_write_shape(leaked, FormCatalog([consent]))) == fingerprint(
        to_write_shape(read, FormCatalog([consent]))
    )


def test_exact_email_search_skips_the_near_miss(
    client: QomonClient, scratch: list[int], deadline: Deadline
) -> None:
    mail = unique_mail("search")
    first = create(client, scratch, deadline, firstname="One", mail=mail)
    second = create(client, scratch, deadline, firstname="Two", mail=mail.upper())
    create(client, scratch, deadline, firstname="Decoy", mail=mail + ".uk")
    create(client, scratch, deadline, firstname="Decoy2", mail="x" + mail)
    found = client.find_contacts_by_email(f"  {mail} ", deadline=deadline, per_page=1)
    assert sorted(c["id"] for c in found) == sorted([first["id"], second["id"]])


def raw_search(target: Target, ope: str, value: str) -> list[int]:
    """The ids one `POST /search` on `mail` answers (its first page), asked over plain HTTP."""
    condition = {"attr": "mail", "ope": ope, "value": value}
    query = {"$all": [{"$all": [{"$condition": condition}]}]}
    body = {"data": {"advanced_search": {"query": query, "per_page": 100, "page": 0}}}
    headers = {"Authorization": f"Bearer {target.token}", "User-Agent": USER_AGENT}
    with httpx.Client(base_url=target.url, headers=headers, timeout=10) as http:
        response = http.post("/search", json=body)
    response.raise_for_status()
    return sorted(int(c["id"]) for c in response.json()["data"]["contacts"])


def test_strict_search_is_case_sensitive_and_eql_loose_so_the_client_compares_again(
    client: QomonClient, scratch: list[int], target: Target, deadline: Deadline
) -> None:
    # Documented: `eql:strictdata` is "equals (case-sensitive, exact match)". Observed:
    # `eql` ignores case and also finds longer addresses that begin with the one asked.
    mail = unique_mail("case")
    stored_as = mail.title()  # Contract.Case.<hex>@Example.Org
    person = create(client, scratch, deadline, firstname="Case", mail=stored_as)
    decoy = create(client, scratch, deadline, firstname="Decoy", mail=mail + ".uk")
    assert raw_search(target, "eql:strictdata", stored_as) == [person["id"]]
    assert raw_search(target, "eql:strictdata", mail) == []
    assert {person["id"], decoy["id"]} <= set(raw_search(target, "eql", mail))
    searches_before = client.stats.endpoints.get("POST /search", EndpointStats()).calls
    found = client.find_contacts_by_email(mail, deadline=deadline)
    assert [c["id"] for c in found] == [person["id"]]
    assert client.stats.endpoints["POST /search"].calls == searches_before + 1


def raw_form(target: Target, form_id: int) -> Form:
    """One form as `GET /forms/{id}` answers it, asked over plain HTTP: the sync reads the
    forms by family only, so the client has no call for one."""
    headers = {"Authorization": f"Bearer {target.token}", "User-Agent": USER_AGENT}
    with httpx.Client(base_url=target.url, headers=headers, timeout=10) as http:
        response = http.get(f"/forms/{int(form_id)}")
    response.raise_for_status()
    return Form.model_validate(response.json()["data"]["form"])


def test_forms_by_type(client: QomonClient, target: Target, deadline: Deadline) -> None:
    forms = client.list_forms("consent", deadline=deadline)
    assert forms
    assert all(f.refvalues for f in forms)
    one = raw_form(target, forms[0].id)
    assert one.id == forms[0].id


def test_forms_fall_back_on_an_older_space(target: Target, deadline: Deadline) -> None:
    control = target.require_control()
    control.configure(forms_v1=False)
    with target.client() as client:
        assert client.list_forms("level_of_support", deadline=deadline)
        assert client.list_forms("survey", deadline=deadline)
        endpoints = client.stats.endpoints
    assert endpoints["GET /v1/forms/type/{type}"].calls == 1  # learnt once, then the old path
    assert endpoints["GET /forms/{type}"].calls == 2


def test_a_wrong_key_is_an_auth_error(target: Target, deadline: Deadline) -> None:
    with target.client(token="wrong-key") as client, pytest.raises(QomonAuthError) as caught:
        client.get_contact(1, deadline=deadline)
    assert caught.value.status == 401
    assert not caught.value.retryable


def test_an_invalid_answer_is_a_validation_error_naming_the_entry(
    client: QomonClient, scratch: list[int], deadline: Deadline
) -> None:
    consent = first_form(client, "consent", "checkbox", deadline)
    created = create(client, scratch, deadline, firstname="Invalid")
    bogus = {"form_id": consent.id, "form_ref_id": 999999999, "data": "nope"}
    with pytest.raises(QomonValidationError) as caught:
        client.replace_contact(
            created["id"], {"firstname": "Invalid", "formdatas": [bogus]}, deadline=deadline
        )
    assert caught.value.status in (400, 422)
    assert any("formdatas" in e.location for e in caught.value.errors)
    assert not caught.value.retryable


@pytest.mark.parametrize("retry_after", ["seconds", "date", "none"])
def test_a_429_is_waited_out(target: Target, retry_after: str, deadline: Deadline) -> None:
    control = target.require_control()
    control.schedule(status=429, count=1, retry_after=retry_after)
    with target.client() as client:
        contact = client.get_contact(700103, deadline=deadline)
        assert contact["id"] == 700103
        assert client.stats.rate_limited == 1
    assert control.stats()["rate_limited"] == 1


def test_server_errors_are_retried_within_the_budget(target: Target, deadline: Deadline) -> None:
    control = target.require_control()
    control.schedule(status=503, count=2)
    with target.client() as client:
        assert client.get_contact(700103, deadline=deadline)["id"] == 700103
        assert client.stats.retries == 2


def test_dropped_connections_are_retried(target: Target, deadline: Deadline) -> None:
    control = target.require_control()
    control.schedule(kind="drop", count=1)
    with target.client() as client:
        assert client.get_contact(700103, deadline=deadline)["id"] == 700103
        assert client.stats.retries == 1


def test_an_exhausted_budget_is_a_retryable_error(target: Target) -> None:
    control = target.require_control()
    control.schedule(status=503, count=100)
    patient = RetryPolicy(max_attempts=100, base_backoff_s=0.05)
    with target.client(retry=patient) as client, pytest.raises(QomonBudgetExhausted) as caught:
        client.get_contact(700103, deadline=Deadline.after(1.5))
    assert caught.value.retryable
    assert caught.value.status == 503


def test_both_naming_generations_read_to_the_same_write_shape(
    target: Target, deadline: Deadline
) -> None:
    control = target.require_control()
    with target.client() as client:
        forms = FormCatalog(
            f
            for family in (
                "consent",
                "level_of_support",
                "survey",
                "custom_fields",
                "tasks",
                "presence_status",
            )
            for f in client.list_forms(family, deadline=deadline)
        )
        current = client.get_contact(700103, deadline=deadline)
        control.configure(naming="legacy")
        legacy = client.get_contact(700103, deadline=deadline)
    assert "customfields" in legacy
    assert "custom_fields" not in legacy
    # The seed gives this contact a field no schema lists: it must be declared to pass.
    keep = ShapePolicy(passthrough=frozenset({"external_id", "membership_number"}))
    assert to_write_shape(legacy, forms, keep) == to_write_shape(current, forms, keep)


def test_a_contact_with_documented_notes_and_integers_survives_one_change(
    client: QomonClient, scratch: list[int], deadline: Deadline
) -> None:
    """The documented contact as Qomon holds it: a note with its id, stamps and author,
    integer fields. One change through the assembly keeps all of it, and the echo of the
    write passes the echo check with the write's own policy."""
    created = create(
        client,
        scratch,
        deadline,
        firstname="Doc",
        mail=f"doc-{uuid.uuid4().hex[:8]}@example.org",
        age_category=2,
        user_contact_id=77,
        notes=[{"data": "Rencontrée au marché", "pinned": True}],
        tags=[{"name": "contract"}],
    )
    before = client.get_contact(created["id"], deadline=deadline)
    change = ChangeEvent.model_validate(
        {
            "event_id": f"contract-{uuid.uuid4().hex}",
            "source": "contract",
            "occurred_at": "2026-12-01T09:00:00Z",
            "contact": {"id": created["id"]},
            "set": {"mobile": "+33600000777"},
        }
    )
    forms = FormCatalog([])
    outcome = assemble_contact(before, forms, [change])
    assert isinstance(outcome, Replace), outcome
    assert outcome.changed == ("mobile",)
    echoed = client.replace_contact(created["id"], outcome.contact, deadline=deadline)
    assert same_meaning(outcome.contact, echoed, forms, ShapePolicy()) == []
    after = client.get_contact(created["id"], deadline=deadline)
    [note_before], [note_after] = before["notes"], after["notes"]
    assert note_after["id"] == note_before["id"]
    assert note_after.get("user") == note_before.get("user")
    assert (after["age_category"], after["user_contact_id"]) == (2, 77)
    assert after["mobile"] == "+33600000777"


# -- issue 21: what only a real space can answer (`make contract` prints each finding) -----
#
# Each test below prints `FINDING <question>: <answer>` (run with `-s`, as `make contract`
# does) and asserts only what qomon-sync relies on whatever the answer. docs/qomon-api.md,
# "Unknown until a sandbox run", lists the questions and where each answer is printed.


def finding(target: Target, question: str, answer: object) -> None:
    print(f"\nFINDING [{target.name}] {question}: {answer}")


def raw_post(target: Target, path: str, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {target.token}", "User-Agent": USER_AGENT}
    with httpx.Client(base_url=target.url, headers=headers, timeout=30) as http:
        return http.post(path, json=body)


def any_mail_search(mails: list[str], ope: str = "eql") -> dict[str, Any]:
    conditions = [{"$condition": {"attr": "mail", "ope": ope, "value": m}} for m in mails]
    query = {"$all": [{"$at_least_one": conditions}]}
    return {"data": {"advanced_search": {"query": query, "per_page": 1000, "page": 0}}}


CONDITION_COUNTS = (1, 10, 50, 100, 200, 500, 1000)


def test_how_many_mail_conditions_one_search_takes(
    target: Target, scratch: list[int], client: QomonClient, deadline: Deadline
) -> None:
    control = target.control
    if control is not None:
        control.configure(search_max_conditions=120)
    accepted, refused = 0, None
    for count in CONDITION_COUNTS:
        mails = [unique_mail(f"limit{n}") for n in range(count)]
        response = raw_post(target, "/search", any_mail_search(mails))
        if response.status_code != 200:
            refused = (count, response.status_code)
            break
        accepted = count
    finding(
        target,
        "mail conditions one `$at_least_one` search takes",
        f"{accepted} accepted; "
        + (
            f"{refused[0]} refused with {refused[1]}"
            if refused
            else f"none of {CONDITION_COUNTS} refused"
        ),
    )
    # Whatever the limit: a group too large for the space is halved until it is taken.
    people = [
        create(client, scratch, deadline, firstname=f"P{n}", mail=unique_mail("bulk"))
        for n in range(2)
    ]
    asked = [unique_mail("nobody") for _ in range(150)] + [p["mail"].upper() for p in people]
    client.search_group_size = 1000 if refused is None else refused[0]
    found = client.find_contacts_by_emails(asked, deadline=deadline)
    assert [[c["id"] for c in found[p["mail"].casefold()]] for p in people] == [
        [p["id"]] for p in people
    ]
    assert sum(1 for v in found.values() if v) == 2
    if refused is not None:
        assert client.search_group_size < refused[0]


def test_whether_strictdata_misses_another_case(
    target: Target, scratch: list[int], client: QomonClient, deadline: Deadline
) -> None:
    mail = unique_mail("strict")
    person = create(client, scratch, deadline, firstname="Strict", mail=mail.title())
    strict = raw_post(target, "/search", any_mail_search([mail], "eql:strictdata"))
    loose = raw_post(target, "/search", any_mail_search([mail.upper()], "eql"))
    strict_ids = [c["id"] for c in strict.json()["data"]["contacts"]]
    loose_ids = [c["id"] for c in loose.json()["data"]["contacts"]]
    finding(
        target,
        "`eql:strictdata` for an address stored in another case",
        "misses it" if person["id"] not in strict_ids else "finds it (case-insensitive)",
    )
    finding(
        target,
        "`eql` for an address stored in another case",
        "finds it" if person["id"] in loose_ids else "misses it",
    )
    # What the sync relies on: the client finds the person whatever the case.
    found = client.find_contacts_by_emails([mail.upper()], deadline=deadline)
    assert [c["id"] for c in found[mail.casefold()]] == [person["id"]]


def test_whether_a_429_consumes_tokens(target: Target) -> None:
    control = target.control
    if control is not None:
        control.configure(burst=5, refill=1.0)
    headers = {"Authorization": f"Bearer {target.token}", "User-Agent": USER_AGENT}
    seen: list[tuple[int, str | None, str | None]] = []
    with httpx.Client(base_url=target.url, headers=headers, timeout=30) as http:
        for _ in range(300):  # the documented bucket is 100 tokens
            answer = http.get("/v1/forms/type/consent")
            seen.append(
                (
                    answer.status_code,
                    answer.headers.get("x-ratelimit-remaining"),
                    answer.headers.get("x-ratelimit-cost"),
                )
            )
            if answer.status_code == 429 and sum(1 for s in seen if s[0] == 429) >= 5:
                break
    refused = [s for s in seen if s[0] == 429]
    if not refused:
        pytest.skip(f"{target.name}: 300 calls met no 429")
    first = seen.index(refused[0])
    finding(
        target,
        "a 429's X-Ratelimit-Cost, and -Remaining just before and over five 429s in a row",
        f"cost {[s[2] for s in refused]}; remaining before {seen[first - 1][1]}, "
        f"then {[s[1] for s in refused]}",
    )
    assert refused[0][1] is not None


def test_what_upsert_does_to_tags_answers_and_notes(
    target: Target, scratch: list[int], client: QomonClient, deadline: Deadline
) -> None:
    if target.control is not None:
        pytest.skip("the stand-in does not play `POST /contacts/upsert`: only a space answers")
    consent = first_form(client, "consent", "checkbox", deadline)
    if len(consent.refvalues) < 2:
        pytest.skip("the space's checkbox form has fewer than two values")
    text = next(
        (f for f in client.list_forms("custom_fields", deadline=deadline) if f.type == "text"),
        None,
    )
    if text is None:
        pytest.skip("the space has no text custom field")
    person = create(
        client,
        scratch,
        deadline,
        firstname="Upsert",
        mail=unique_mail("upsert"),
        tags=[{"name": "contract-before"}],
        formdatas=[answer(consent, 0)],
        custom_fields=[{"form_id": text.id, "form_ref_id": text.refvalues[0].id, "data": "avant"}]
        if text.refvalues
        else [],
        notes=[{"data": "note avant"}],
    )
    before = client.get_contact(person["id"], deadline=deadline)
    body = {
        "kind": "contact",
        "data": {
            "id": person["id"],
            "tags": [{"name": "contract-after"}],
            "consents": [{"id": consent.id, "value": consent.refvalues[1].value}],
            "custom_fields": [{"id": text.id, "value": "après"}],
            "notes": [{"content": "note après"}],
        },
    }
    response = raw_post(target, "/contacts/upsert", body)
    finding(target, "POST /contacts/upsert answers", response.status_code)
    after = before
    for _ in range(30):  # asynchronous: applied some seconds later
        time.sleep(2)
        after = client.get_contact(person["id"], deadline=Deadline.after(10))
        if after.get("UpdatedAt") != before.get("UpdatedAt"):
            break

    def kept(old: bool, new: bool) -> str:
        return {(True, True): "added", (False, True): "replaced", (True, False): "ignored"}.get(
            (old, new), "neither kept"
        )

    tags = {t.get("name") for t in after.get("tags") or []}
    answers = [a for a in after.get("formdatas") or [] if a.get("form_id") == consent.id]
    values = {a.get("data") for a in answers if not a.get("deleted_at")}
    texts = {
        a.get("data")
        for a in after.get("custom_fields") or []
        if a.get("form_id") == text.id and not a.get("deleted_at")
    }
    notes = {n.get("data") for n in after.get("notes") or []}
    finding(target, "upsert, tags", kept("contract-before" in tags, "contract-after" in tags))
    finding(
        target,
        "upsert, checkbox answers",
        kept(consent.refvalues[0].value in values, consent.refvalues[1].value in values),
    )
    finding(target, "upsert, text answers", kept("avant" in texts, "après" in texts))
    finding(target, "upsert, notes", kept("note avant" in notes, "note après" in notes))
    assert after["id"] == person["id"]
