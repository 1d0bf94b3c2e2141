"""The stand-in's store: Qomon's contact semantics, tested without HTTP."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qomon_sync_dev.standin import make_seed
from qomon_sync_dev.standin.store import (
    ContactStore,
    EntryKind,
    FormCatalog,
    InvalidRequest,
    SearchRequest,
    SeedError,
    StoredContact,
    UnknownContact,
    format_millis,
    is_millis_timestamp,
    parse_search,
)
from tests.conftest import EVENTS

MICROS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

ANA = 700103  # ana.martin@example.org
DECOY = 700106  # ana.martin@example.org.example.com
CAMILLE = (700109, 700112)  # one e-mail in two cases
REFUSED_ALL = 700124

CONSENT, SUPPORT, HOUSEHOLD, LAST_VOTE = 3101, 3102, 3202, 3203
PROFESSION, TIER = 3401, 3402


class SteppingClock:
    """A clock that moves 1.5 ms per reading, so every write has its own instant."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1500)
        return self.now


@pytest.fixture
def seed() -> dict[str, Any]:
    return make_seed.build_seed()


@pytest.fixture
def store(seed: dict[str, Any]) -> ContactStore:
    return ContactStore.from_seed(seed, clock=SteppingClock())


def consent(value: str) -> dict[str, Any]:
    ref = {"consent_email": 31011, "consent_sms": 31012, "consent_phone": 31013}[value]
    return {"form_id": CONSENT, "form_ref_id": ref, "data": value}


def support(value: str) -> dict[str, Any]:
    ref = {"very_favorable": 31021, "favorable": 31022, "undecided": 31023}[value]
    return {"form_id": SUPPORT, "form_ref_id": ref, "data": value}


def live(contact: StoredContact, kind: EntryKind = "formdatas") -> list[tuple[int, int, Any]]:
    return [(e.form_id, e.form_ref_id, e.data) for e in contact.live_entries(kind)]


def search(
    store: ContactStore, query: dict[str, Any], per_page: int = 100, page: int = 0
) -> list[int]:
    request = parse_search({"query": query, "per_page": per_page, "page": page})
    return [c.id for c in store.search(request)]


def mail_is(value: str, ope: str = "eql:strictdata") -> dict[str, Any]:
    return {"$all": [{"$all": [{"$condition": {"attr": "mail", "ope": ope, "value": value}}]}]}


# -- the seed ---------------------------------------------------------------------------


def test_the_committed_seed_file_is_what_make_seed_writes(seed: dict[str, Any]) -> None:
    committed = json.loads((EVENTS / "standin-seed.json").read_text(encoding="utf-8"))
    assert committed == seed, "run: python -m qomon_sync_dev.standin.make_seed > events/..."


def test_the_seed_is_a_campaign_space_with_its_traps(store: ContactStore) -> None:
    contacts = store.contacts()
    assert len(contacts) == 40
    mails = [c.fields["mail"] for c in contacts if c.fields["mail"]]
    assert all(m.lower().partition("@")[2].endswith(("example.org", "example.com")) for m in mails)
    assert sorted(m.lower() for m in mails).count("camille.roux@example.com") == 2
    assert store.get(DECOY).fields["mail"].startswith(store.get(ANA).fields["mail"])
    assert sum(c.fields["black_list"] is True for c in contacts) == 2
    assert store.get(ANA).unknown_fields == {"external_id": "nb-100231"}
    assert any(e.deleted_at is not None for e in store.get(ANA).entries)
    sections = {form["section"] for form in make_seed.build_forms()}
    assert sections == {
        "consent",
        "level_of_support",
        "presence_status",
        "survey",
        "tasks",
        "custom_fields",
    }


def test_a_seed_with_a_form_the_contacts_do_not_match_is_refused(seed: dict[str, Any]) -> None:
    seed["contacts"][0]["formdatas"] = [{"form_id": 999, "form_ref_id": 1, "data": "x"}]
    with pytest.raises(SeedError, match=r"contacts\[0\].*form_id"):
        ContactStore.from_seed(seed)


def test_a_seed_with_a_contact_id_twice_is_refused(seed: dict[str, Any]) -> None:
    seed["contacts"][1]["id"] = seed["contacts"][0]["id"]
    with pytest.raises(SeedError, match="used twice"):
        ContactStore.from_seed(seed)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f[3]["refvalues"].append({"id": 99_999, "label": "x"}), "exactly one"),
        (lambda f: f[1]["refvalues"].append({"id": 31011, "value": "x"}), "used twice"),
        (lambda f: f[0].update(section="petitions"), "section"),
        (lambda f: f.append(dict(f[0])), "used twice"),
    ],
)
def test_forms_are_checked_when_loaded(
    change: Callable[[list[dict[str, Any]]], None], message: str
) -> None:
    forms = make_seed.build_forms()
    change(forms)
    with pytest.raises(SeedError, match=message):
        FormCatalog(forms)


# -- full replacement -------------------------------------------------------------------


def test_a_replacement_clears_every_field_it_does_not_carry(store: ContactStore) -> None:
    stored = store.replace(ANA, {"firstname": "Ana"})
    assert stored.fields["firstname"] == "Ana"
    assert {k: v for k, v in stored.fields.items() if k != "firstname"} == dict.fromkeys(
        k for k in stored.fields if k != "firstname"
    )
    assert stored.address == {}
    assert stored.tags == []
    assert stored.action_ids == []
    assert stored.notes == []
    assert stored.live_entries("formdatas") == []
    assert stored.live_entries("custom_fields") == []
    # Fields no schema lists are replaced like the rest: omitted means gone.
    assert stored.unknown_fields == {}


def test_unknown_top_level_keys_are_stored_as_sent(store: ContactStore) -> None:
    stored = store.replace(ANA, {"mail": "a@example.org", "membership_number": {"n": [1, 2]}})
    assert stored.unknown_fields == {"membership_number": {"n": [1, 2]}}
    assert store.render(stored)["membership_number"] == {"n": [1, 2]}


def test_server_owned_fields_in_a_write_are_ignored(store: ContactStore) -> None:
    before = store.get(ANA)
    created, lastchange = before.created_at, before.lastchange
    body = {
        "id": 1,
        "group_id": 2,
        "user_id": 3,
        "CreatedAt": "2000-01-01T00:00:00.000000Z",
        "UpdatedAt": "2000-01-01T00:00:00.000000Z",
        "lastchange": "2000-01-01T00:00:00.000Z",
        "lastchangeuserid": 4,
        "address": {"city": "Lyon", "id": 5, "score": 1, "latitude": 1.0, "invalid": True},
        "formdatas": [{**support("favorable"), "id": 6, "label": "x", "deleted_at": "y"}],
    }
    stored = store.replace(ANA, body)
    assert (stored.id, stored.group_id, stored.created_at) == (ANA, 4242, created)
    assert stored.lastchange == lastchange  # observed: API writes do not move lastchange
    assert stored.updated_at > created
    assert stored.address == {"city": "Lyon"}
    assert stored.unknown_fields == {}
    [entry] = stored.live_entries("formdatas")
    assert entry.id != 6
    assert entry.deleted_at is None


def test_every_write_soft_deletes_and_recreates_entries_with_new_ids(
    store: ContactStore,
) -> None:
    body = {"formdatas": [consent("consent_email")], "custom_fields": [], "firstname": "Ana"}
    first = [e.id for e in store.replace(ANA, body).live_entries("formdatas")]
    stored = store.replace(ANA, body)
    second = [e.id for e in stored.live_entries("formdatas")]
    assert live(stored) == [(CONSENT, 31011, "consent_email")]
    assert len(first) == len(second) == 1
    assert second[0] > first[0]
    old = next(e for e in stored.entries if e.id == first[0])
    assert old.deleted_at is not None
    assert old.deleted_at == stored.updated_at


def test_a_radio_keeps_only_the_last_entry_sent_and_checkboxes_keep_all(
    store: ContactStore,
) -> None:
    body = {
        "formdatas": [
            support("undecided"),
            consent("consent_email"),
            support("very_favorable"),
            consent("consent_sms"),
        ]
    }
    stored = store.replace(ANA, body)
    assert live(stored) == [
        (CONSENT, 31011, "consent_email"),
        (SUPPORT, 31021, "very_favorable"),
        (CONSENT, 31012, "consent_sms"),
    ]


def test_free_input_entries_are_kept_alongside_others(store: ContactStore) -> None:
    body = {
        "custom_fields": [
            {"form_id": PROFESSION, "form_ref_id": 34011, "data": "Infirmière"},
            {"form_id": PROFESSION, "form_ref_id": 34011, "data": "Sage-femme"},
            {"form_id": TIER, "form_ref_id": 34021, "data": "member_basic"},
        ]
    }
    stored = store.replace(ANA, body)
    assert [e.data for e in stored.live_entries("custom_fields")] == [
        "Infirmière",
        "Sage-femme",
        "member_basic",
    ]


def test_notes_keep_their_id_when_sent_back_and_are_removed_when_not(
    store: ContactStore,
) -> None:
    stored = store.replace(ANA, {"notes": [{"data": "one"}, {"data": "two", "pinned": True}]})
    one, two = stored.notes
    stored = store.replace(ANA, {"notes": [{"id": two.id, "data": "two, edited"}, {"data": "3"}]})
    assert stored.notes[0].id == two.id
    assert stored.notes[0].data == "two, edited"
    assert stored.notes[0].pinned is False
    assert stored.notes[1].id not in (one.id, two.id)


def test_a_refused_write_changes_nothing(store: ContactStore) -> None:
    before = store.raw(store.get(ANA))
    with pytest.raises(InvalidRequest):
        store.replace(ANA, {"firstname": "X", "gender": "Z"})
    assert store.raw(store.get(ANA)) == before


def test_a_missing_contact_is_unknown(store: ContactStore) -> None:
    with pytest.raises(UnknownContact):
        store.replace(1, {})
    with pytest.raises(UnknownContact):
        store.delete(1)


# -- validation -------------------------------------------------------------------------

INVALID_WRITES: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown form",
        {"formdatas": [consent("consent_email"), {"form_id": 999, "form_ref_id": 1}]},
        "contact.formdatas[1].form_id",
    ),
    (
        "custom field sent as a formdata",
        {"formdatas": [{"form_id": PROFESSION, "form_ref_id": 34011, "data": "x"}]},
        "contact.formdatas[0].form_id",
    ),
    (
        "formdata sent as a custom field",
        {"custom_fields": [support("favorable")]},
        "contact.custom_fields[0].form_id",
    ),
    (
        "value of another form",
        {"formdatas": [consent("consent_email"), {**support("favorable"), "form_ref_id": 31011}]},
        "contact.formdatas[1].form_ref_id",
    ),
    (
        "choice data is not the value's slug",
        {"formdatas": [{**consent("consent_email"), "data": "J'accepte"}]},
        "contact.formdatas[0].data",
    ),
    (
        "numeric answer is not a number",
        {"formdatas": [{"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": "three"}]},
        "contact.formdatas[0].data",
    ),
    (
        "numeric answer out of the form's range",
        {"formdatas": [{"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": 21}]},
        "contact.formdatas[0].data",
    ),
    (
        "date answer without milliseconds",
        {"formdatas": [{"form_id": LAST_VOTE, "form_ref_id": 32031, "data": "2022-06-19"}]},
        "contact.formdatas[0].data",
    ),
    (
        "entry date with microseconds",
        {"formdatas": [{**support("favorable"), "date": "2024-05-01T10:00:00.123456Z"}]},
        "contact.formdatas[0].date",
    ),
    ("gender", {"gender": "X"}, "contact.gender"),
    ("tags as strings", {"tags": ["bénévole"]}, "contact.tags[0]"),
    ("note without data", {"notes": [{"pinned": True}]}, "contact.notes[0].data"),
    ("address number", {"address": {"postalcode": 75011}}, "contact.address.postalcode"),
    ("boolean as text", {"black_list": "yes"}, "contact.black_list"),
]


@pytest.mark.parametrize(
    ("body", "location"),
    [(body, location) for _, body, location in INVALID_WRITES],
    ids=[name for name, _, _ in INVALID_WRITES],
)
def test_an_invalid_write_names_where_it_is_wrong(
    store: ContactStore, body: dict[str, Any], location: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        store.replace(ANA, body)
    assert [p.location for p in refused.value.problems] == [location]


def test_every_problem_of_a_write_is_reported_at_once(store: ContactStore) -> None:
    body = {"gender": "X", "formdatas": [{"form_id": 999}, consent("consent_email"), "x"]}
    with pytest.raises(InvalidRequest) as refused:
        store.create(body)
    assert [(p.location, p.value) for p in refused.value.problems] == [
        ("contact.gender", "X"),
        ("contact.formdatas[0].form_id", 999),
        ("contact.formdatas[2]", "x"),
    ]


def test_answers_in_the_written_shapes_are_accepted(store: ContactStore) -> None:
    body = {
        "formdatas": [
            {"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": "4"},
            {"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": 2.5},
            {"form_id": LAST_VOTE, "form_ref_id": 32031, "data": "2022-06-19T00:00:00.000Z"},
            {**support("favorable"), "date": "2024-05-01T10:00:00.123Z", "survey_id": None},
        ]
    }
    assert len(store.replace(ANA, body).live_entries("formdatas")) == 4


# -- the two naming generations ---------------------------------------------------------


def test_the_current_read_shape(store: ContactStore) -> None:
    shape = store.render(store.get(ANA))
    assert MICROS.fullmatch(shape["CreatedAt"])
    assert MICROS.fullmatch(shape["UpdatedAt"])
    assert MILLIS.fullmatch(shape["lastchange"])
    assert {"birth_city", "birth_country", "birth_dept", "action_ids", "custom_fields"} <= set(
        shape
    )
    assert set(shape["address"]) >= {"id", "score", "latitude", "longitude", "location", "invalid"}
    assert shape["address"]["postalcode"] == "69003"
    assert set(shape["tags"][0]) == {"name", "appearance_count", "color"}
    entry = shape["formdatas"][0]
    assert entry["deleted_at"] is None
    assert entry["type_of_form"] == "consent"
    assert entry["label"].startswith("J'accepte")
    assert entry["contact_id"] == ANA
    assert MILLIS.fullmatch(entry["created_at"])
    assert MILLIS.fullmatch(entry["date"])
    assert all(e["deleted_at"] is None for e in shape["formdatas"])
    assert shape["external_id"] == "nb-100231"


def test_the_legacy_read_shape(store: ContactStore) -> None:
    stored = store.replace(
        ANA,
        {
            "birth_city": "Nice",
            "action_ids": [11],
            "custom_fields": [{"form_id": PROFESSION, "form_ref_id": 34011, "data": "x"}],
            "notes": [{"data": "hello"}],
            "address": {"housenumber": "12", "postalcode": "01000", "street": "rue 4"},
        },
    )
    shape = store.render(stored, naming="legacy")
    assert shape["birthcity"] == "Nice"
    assert shape["actions_ids"] == [11]
    assert shape["customfields"][0]["data"] == "x"
    assert shape["notes"][0]["content"] == "hello"
    assert "data" not in shape["notes"][0]
    assert not {"birth_city", "action_ids", "custom_fields"} & set(shape)
    # All-digit address parts come back as numbers: the leading zero is lost.
    assert shape["address"]["housenumber"] == 12
    assert shape["address"]["postalcode"] == 1000
    assert shape["address"]["street"] == "rue 4"


def test_legacy_names_are_write_names_only_when_playing_that_generation(
    store: ContactStore,
) -> None:
    body = {"birthcity": "Nice", "notes": [{"content": "hi"}]}
    stored = store.replace(ANA, body, naming="legacy")
    assert stored.fields["birth_city"] == "Nice"
    assert stored.notes[0].data == "hi"

    stored = store.replace(ANA, {"birthcity": "Nice", "birth_city": "Lyon"}, naming="legacy")
    assert stored.fields["birth_city"] == "Lyon"  # the current name wins

    stored = store.replace(ANA, {"birthcity": "Nice"})
    assert stored.fields["birth_city"] is None
    assert stored.unknown_fields == {"birthcity": "Nice"}


def test_soft_deleted_entries_are_shown_only_when_asked(store: ContactStore) -> None:
    contact = store.get(ANA)
    shown = store.render(contact)["formdatas"]
    with_deleted = store.render(contact, include_deleted=True)["formdatas"]
    assert len(with_deleted) == len(shown) + 1
    deleted = [e for e in with_deleted if e["deleted_at"] is not None]
    assert [(e["form_id"], e["data"]) for e in deleted] == [(SUPPORT, "undecided")]


def test_the_raw_record_holds_history_and_unknown_keys(store: ContactStore) -> None:
    raw = store.raw(store.get(ANA))
    assert raw["unknown_fields"] == {"external_id": "nb-100231"}
    assert "external_id" not in raw
    assert any(e["deleted_at"] for e in raw["formdatas"])
    assert raw["address"]["postalcode"] == "69003"
    assert raw["tags"] == [{"name": "sympathisant"}]


def test_timestamps_have_the_documented_precisions() -> None:
    moment = datetime(2024, 5, 1, 10, 0, 0, 123_456, tzinfo=UTC)
    assert format_millis(moment) == "2024-05-01T10:00:00.123Z"
    assert is_millis_timestamp("2024-05-01T10:00:00.123Z")
    for wrong in (
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00.123456Z",
        "2024-13-01T10:00:00.000Z",
    ):
        assert not is_millis_timestamp(wrong)


# -- create, delete, seed-format puts ---------------------------------------------------


def test_create_gives_a_new_id_and_stamps_the_api_user(store: ContactStore) -> None:
    stored = store.create({"firstname": "Nina", "mail": "nina@example.org"})
    assert stored.id == max(c.id for c in store.contacts()) > DECOY
    assert stored.user_id == store.api_user_id
    assert stored.created_at == stored.updated_at
    store.delete(stored.id)
    with pytest.raises(UnknownContact):
        store.get(stored.id)
    assert store.create({}).id == stored.id + 1  # a deleted contact's id is not reused


def test_a_seed_format_put_inserts_then_replaces(store: ContactStore) -> None:
    record = {"firstname": "Test", "deleted_formdatas": [support("favorable")]}
    stored, inserted = store.put_seed_contact(record, contact_id=42)
    assert inserted
    assert [e.deleted_at is not None for e in stored.entries] == [True]
    _, inserted = store.put_seed_contact({"firstname": "Again"}, contact_id=42)
    assert not inserted
    assert store.get(42).fields["firstname"] == "Again"


# -- search -----------------------------------------------------------------------------


def test_a_strict_search_matches_the_whole_value_ignoring_case(store: ContactStore) -> None:
    assert search(store, mail_is("ANA.MARTIN@example.org")) == [ANA]
    assert search(store, mail_is("camille.roux@example.com")) == list(CAMILLE)
    assert search(store, mail_is("ana.martin")) == []


def test_a_loose_search_also_matches_prefixes_and_tokens(store: ContactStore) -> None:
    assert search(store, mail_is("ana.martin@example.org", "eql")) == [ANA, DECOY]
    by_token = search(store, mail_is("MARTIN", "eql"))
    assert {ANA, DECOY} <= set(by_token)


def test_search_by_tag_and_groups(store: ContactStore) -> None:
    def cond(attr: str, value: str, ope: str = "eql:strictdata") -> dict[str, Any]:
        return {"$condition": {"attr": attr, "ope": ope, "value": value}}

    tagged = search(store, {"$all": [{"$all": [cond("tags", "sympathisant")]}]})
    assert ANA in tagged
    assert all("sympathisant" in store.get(i).tags for i in tagged)
    either = search(
        store,
        {
            "$at_least_one": [
                {"$all": [cond("firstname", "ana")]},
                {"$all": [cond("surname", "roux")]},
            ]
        },
    )
    assert either == [ANA, DECOY, *CAMILLE]
    both = search(
        store,
        {
            "$all": [
                {"$at_least_one": [cond("firstname", "ana"), cond("surname", "roux")]},
                {"$all": [cond("surname", "martin")]},
            ]
        },
    )
    assert both == [ANA]


def test_empty_queries_and_groups(store: ContactStore) -> None:
    everyone = [c.id for c in store.contacts()]
    assert search(store, {"$all": []}) == everyone
    assert search(store, {"$all": [{"$all": []}]}) == everyone
    assert search(store, {"$at_least_one": []}) == []
    assert search(store, {"$all": [{"$at_least_one": []}]}) == []


def test_search_pages_are_zero_based_in_id_order(store: ContactStore) -> None:
    everyone = [c.id for c in store.contacts()]
    pages = [search(store, {"$all": []}, per_page=15, page=n) for n in range(4)]
    assert [len(p) for p in pages] == [15, 15, 10, 0]
    assert [i for p in pages for i in p] == everyone


BAD_SEARCHES: list[tuple[str, dict[str, Any], str]] = [
    (
        "condition under the root",
        {"query": {"$all": [{"$condition": {"attr": "mail", "ope": "eql", "value": "a"}}]}},
        "q.query.$all[0]",
    ),
    (
        "condition as the root",
        {"query": {"$condition": {"attr": "mail", "ope": "eql", "value": "a"}}},
        "q.query",
    ),
    ("three levels", {"query": {"$all": [{"$all": [{"$all": []}]}]}}, "q.query.$all[0].$all[0]"),
    (
        "unknown operator",
        {
            "query": {
                "$all": [{"$all": [{"$condition": {"attr": "mail", "ope": "like", "value": "a"}}]}]
            }
        },
        "q.query.$all[0].$all[0].$condition.ope",
    ),
    (
        "unknown attribute",
        {
            "query": {
                "$all": [{"$all": [{"$condition": {"attr": "x", "ope": "eql", "value": "a"}}]}]
            }
        },
        "q.query.$all[0].$all[0].$condition.attr",
    ),
    ("per_page 0", {"query": {"$all": []}, "per_page": 0}, "q.per_page"),
    ("per_page 1001", {"query": {"$all": []}, "per_page": 1001}, "q.per_page"),
    ("negative page", {"query": {"$all": []}, "page": -1}, "q.page"),
    ("no query", {"per_page": 10}, "q.query"),
]


@pytest.mark.parametrize(
    ("request_body", "location"),
    [(body, location) for _, body, location in BAD_SEARCHES],
    ids=[name for name, _, _ in BAD_SEARCHES],
)
def test_a_malformed_search_names_where_it_is_wrong(
    request_body: dict[str, Any], location: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_search(request_body, location="q")
    assert [p.location for p in refused.value.problems] == [location]


def test_a_search_request_defaults_to_the_first_page() -> None:
    assert parse_search({"query": {"$all": []}}) == SearchRequest(True, (), 100, 0)


def test_searching_does_not_see_changes_to_a_copy(
    store: ContactStore, seed: dict[str, Any]
) -> None:
    other = ContactStore.from_seed(copy.deepcopy(seed))
    other.replace(ANA, {"mail": "someone@example.org"})
    assert search(store, mail_is("ana.martin@example.org")) == [ANA]
