"""The stand-in's store: Qomon's contact semantics, tested without HTTP."""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qomon_sync_dev.standin.common import (
    InvalidRequest,
    SeedError,
    UnknownContact,
    format_millis,
    is_millis_timestamp,
)
from qomon_sync_dev.standin.fields import EntryKind
from qomon_sync_dev.standin.forms import FormCatalog
from qomon_sync_dev.standin.records import StoredContact
from qomon_sync_dev.standin.search import SearchRequest, parse_search
from qomon_sync_dev.standin.store import ContactStore
from qomon_sync_dev.standin.writes import WriteRules
from tests import make_seed
from tests.conftest import EVENTS, ROOT

MICROS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

ANA = 700103  # ana.martin@example.org
DECOY = 700106  # ana.martin@example.org.example.com
CAMILLE = (700109, 700112)  # one e-mail in two cases
REFUSED_ALL = 700124

CONSENT, SUPPORT, HOUSEHOLD, LAST_VOTE = 3101, 3102, 3202, 3203
PROFESSION, TIER = 3401, 3402
ADDRESS_WRITE_KEYS = (
    "housenumber",
    "street",
    "postalcode",
    "city",
    "county",
    "state",
    "country",
    "addition",
    "infos",
    "building",
    "floor",
    "door",
    "pollingstation",
)


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
    assert committed == seed, "run: python -m tests.make_seed > events/..."


def test_the_seed_is_a_campaign_space_with_its_traps(store: ContactStore) -> None:
    contacts = store.contacts()
    assert len(contacts) == 340  # the 40 shaped by hand, and 300 plain ones after them
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


def test_the_stand_in_keeps_its_own_field_lists() -> None:
    """No stand-in module imports the client (`qomon_sync`): sharing its field lists
    would share its mistakes, and the contract tests could no longer catch them."""
    package = ROOT / "local" / "qomon_sync_dev" / "standin"
    modules = sorted(package.glob("*.py"))
    assert {m.name for m in modules} >= {"fields.py", "writes.py", "store.py", "render.py"}
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "qomon_sync"], module.name


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
        {"formdatas": [{"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": "21"}]},
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
            {"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": "2.5"},
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


def test_a_strict_search_matches_the_whole_value_in_its_case(store: ContactStore) -> None:
    # Documented: `eql:strictdata` is "equals (case-sensitive, exact match)".
    assert search(store, mail_is("ana.martin@example.org")) == [ANA]
    assert search(store, mail_is("ANA.MARTIN@example.org")) == []
    assert search(store, mail_is("camille.roux@example.com")) == [CAMILLE[0]]
    assert search(store, mail_is("Camille.Roux@example.com")) == [CAMILLE[1]]
    assert search(store, mail_is("ana.martin")) == []
    assert search(store, mail_is(" ana.martin@example.org")) == []


def test_a_loose_search_ignores_case_and_also_matches_prefixes_and_tokens(
    store: ContactStore,
) -> None:
    assert search(store, mail_is("ana.martin@example.org", "eql")) == [ANA, DECOY]
    assert search(store, mail_is("ANA.Martin@Example.ORG", "eql")) == [ANA, DECOY]
    assert search(store, mail_is("CAMILLE.ROUX@EXAMPLE.COM", "eql")) == list(CAMILLE)
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
                {"$all": [cond("firstname", "Ana")]},
                {"$all": [cond("surname", "Roux")]},
            ]
        },
    )
    assert either == [ANA, DECOY, *CAMILLE]
    both = search(
        store,
        {
            "$all": [
                {"$at_least_one": [cond("firstname", "Ana"), cond("surname", "Roux")]},
                {"$all": [cond("surname", "Martin")]},
            ]
        },
    )
    assert both == [ANA]


def test_empty_queries_and_groups(store: ContactStore) -> None:
    everyone = [c.id for c in store.contacts()]
    assert search(store, {"$all": []}, per_page=1000) == everyone
    assert search(store, {"$all": [{"$all": []}]}, per_page=1000) == everyone
    assert search(store, {"$at_least_one": []}) == []
    assert search(store, {"$all": [{"$at_least_one": []}]}) == []


def test_search_pages_are_zero_based_in_id_order(store: ContactStore) -> None:
    everyone = [c.id for c in store.contacts()]
    pages = [search(store, {"$all": []}, per_page=150, page=n) for n in range(4)]
    assert [len(p) for p in pages] == [150, 150, 40, 0]
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


# -- the documented contact -------------------------------------------------------------

SHOWCASE = 700190  # every key of the documented contact holds a value
SHOWCASE_NOTES = (60015, 60016, 60017)
CONCERN = 3201
API_USER_ID = 9001
LENIENT = WriteRules(documented_types=False)

# The keys of the documented PATCH response (what GET answers), level by level.
DOCUMENTED_CONTACT_KEYS = {
    "id",
    "CreatedAt",
    "UpdatedAt",
    "action_ids",
    "address",
    "age_category",
    "birth_city",
    "birth_country",
    "birth_dept",
    "birthdate",
    "black_list",
    "custom_fields",
    "firstname",
    "formdatas",
    "group_id",
    "lastchange",
    "lastchangeuserid",
    "mail",
    "married_name",
    "mobile",
    "mobile_invalid",
    "nationality",
    "notes",
    "phone",
    "phone_invalid",
    "surname",
    "tags",
    "user_contact_id",
}
DOCUMENTED_ADDRESS_KEYS = {
    "addition",
    "building",
    "city",
    "country",
    "county",
    "door",
    "floor",
    "housenumber",
    "id",
    "infos",
    "latitude",
    "location",
    "longitude",
    "pollingstation",
    "postalcode",
    "score",
    "state",
    "street",
}
DOCUMENTED_FORMDATA_KEYS = {
    "data",
    "form_id",
    "form_ref_id",
    "id",
    "contact_id",
    "date",
    "group_id",
    "survey_id",
}
DOCUMENTED_NOTE_KEYS = {
    "id",
    "contact_id",
    "created_at",
    "data",
    "group_id",
    "only_super_admin",
    "pinned",
    "updated_at",
    "user",
}
DOCUMENTED_USER_KEYS = {
    "CreatedAt",
    "UpdatedAt",
    "address",
    "avatar",
    "birthdate",
    "city",
    "created",
    "firstname",
    "group_id",
    "id",
    "locale",
    "location",
    "mail",
    "phone",
    "postal",
    "role_data",
    "status",
    "surname",
    "two_factor_enable",
}
DOCUMENTED_ROLE_KEYS = {"color", "id", "mobile", "name", "order", "web"}


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def test_the_seed_plays_the_documented_contact(store: ContactStore) -> None:
    shape = store.render(store.get(SHOWCASE))
    assert set(shape) >= DOCUMENTED_CONTACT_KEYS
    assert all(shape[key] not in (None, [], {}) for key in DOCUMENTED_CONTACT_KEYS), [
        key for key in DOCUMENTED_CONTACT_KEYS if shape[key] in (None, [], {})
    ]
    assert is_int(shape["age_category"])
    assert is_int(shape["user_contact_id"])
    assert all(is_int(i) for i in shape["action_ids"])
    assert set(shape["address"]) >= DOCUMENTED_ADDRESS_KEYS
    assert all(isinstance(shape["address"][key], str) for key in ADDRESS_WRITE_KEYS)
    for entry in shape["formdatas"]:
        assert set(entry) >= DOCUMENTED_FORMDATA_KEYS
        assert MILLIS.fullmatch(entry["date"])
    assert all(e["date"] for e in shape["custom_fields"])
    # One text question answered in two surveys: two entries, told apart by survey_id.
    concern = [(e["survey_id"], e["data"]) for e in shape["formdatas"] if e["form_id"] == CONCERN]
    assert len(concern) == 2
    assert len({survey for survey, _ in concern}) == 2
    assert all(is_int(survey) for survey, _ in concern)
    assert [n["id"] for n in shape["notes"]] == list(SHOWCASE_NOTES)
    assert len({n["user"]["id"] for n in shape["notes"]}) == 3
    assert [n["pinned"] for n in shape["notes"]] == [True, False, False]
    assert [n["only_super_admin"] for n in shape["notes"]] == [False, True, False]
    assert shape["notes"][2]["updated_at"] > shape["notes"][2]["created_at"]


def test_every_seeded_note_has_the_documented_shape_and_an_author(store: ContactStore) -> None:
    notes = [
        (contact, note) for contact in store.contacts() for note in store.render(contact)["notes"]
    ]
    assert len(notes) > 20
    assert len({note["id"] for _, note in notes}) == len(notes)
    for contact, note in notes:
        assert set(note) == DOCUMENTED_NOTE_KEYS
        assert (note["contact_id"], note["group_id"]) == (contact.id, contact.group_id)
        assert all(is_int(note[key]) for key in ("id", "contact_id", "group_id"))
        assert isinstance(note["pinned"], bool)
        assert isinstance(note["only_super_admin"], bool)
        assert MILLIS.fullmatch(note["created_at"])
        assert MILLIS.fullmatch(note["updated_at"])
        assert set(note["user"]) >= DOCUMENTED_USER_KEYS
        assert set(note["user"]["role_data"]) == DOCUMENTED_ROLE_KEYS
        assert is_int(note["user"]["id"])
        assert note["user"]["id"] != API_USER_ID  # written by the team, not by the API
        assert note["created_at"] >= format_millis(contact.created_at)


def test_some_seeded_contacts_carry_integer_age_categories_and_user_contact_ids(
    store: ContactStore,
) -> None:
    ages = [c.fields["age_category"] for c in store.contacts() if c.fields["age_category"]]
    users = [c.fields["user_contact_id"] for c in store.contacts() if c.fields["user_contact_id"]]
    assert len(ages) >= 5
    assert len(users) >= 2
    assert all(is_int(value) for value in ages + users)


def test_the_documented_response_sent_back_whole_changes_nothing_but_entry_ids(
    store: ContactStore,
) -> None:
    before = store.render(store.get(SHOWCASE))
    stored = store.replace(SHOWCASE, copy.deepcopy(before))
    after = store.render(stored)

    def meaning(shape: dict[str, Any]) -> dict[str, Any]:
        entries = {
            kind: [
                (e["form_id"], e["form_ref_id"], e["data"], e["date"], e["survey_id"])
                for e in shape[kind]
            ]
            for kind in ("formdatas", "custom_fields")
        }
        rest = {k: v for k, v in shape.items() if k not in (*entries, "UpdatedAt")}
        return {**rest, **entries}

    assert meaning(after) == meaning(before)
    assert after["notes"] == before["notes"]  # ids, times and authors kept
    assert not {e["id"] for e in after["formdatas"]} & {e["id"] for e in before["formdatas"]}
    assert after["UpdatedAt"] > before["UpdatedAt"]


def test_a_note_sent_back_with_its_id_keeps_its_id_creation_and_author(
    store: ContactStore,
) -> None:
    before = store.render(store.get(SHOWCASE))["notes"]
    edited, untouched = copy.deepcopy(before[0]), copy.deepcopy(before[2])
    edited["data"] = "Référent de l'immeuble, et de celui d'à côté."
    # The times and the author a write carries are the server's: ignored.
    for note in (edited, untouched):
        note["created_at"] = "2000-01-01T00:00:00.000Z"
        note["updated_at"] = "2000-01-01T00:00:00.000Z"
        note["user"] = {"id": 1, "firstname": "Someone", "surname": "Else"}
    stored = store.replace(SHOWCASE, {"notes": [edited, untouched]})
    after = store.render(stored)["notes"]
    assert [n["id"] for n in after] == [before[0]["id"], before[2]["id"]]
    assert after[0]["data"] == edited["data"]
    assert [n["created_at"] for n in after] == [before[0]["created_at"], before[2]["created_at"]]
    assert [n["user"] for n in after] == [before[0]["user"], before[2]["user"]]
    assert after[0]["updated_at"] == format_millis(stored.updated_at)  # its text changed
    assert after[1]["updated_at"] == before[2]["updated_at"]  # it did not

    flagged = store.replace(SHOWCASE, {"notes": [{**after[1], "pinned": True}]})
    assert flagged.notes[0].updated_at == flagged.updated_at  # a flag is content too


def test_a_note_without_the_id_of_one_of_the_contacts_notes_is_new(
    store: ContactStore,
) -> None:
    someone_elses = store.render(store.get(700118))["notes"][0]
    body = {
        "notes": [
            {"data": "Nouvelle note", "created_at": "2000-01-01T00:00:00.000Z", "user": {"id": 1}},
            {**someone_elses, "data": "Copiée d'un autre contact"},
        ]
    }
    stored = store.replace(SHOWCASE, body)
    seeded = {note.id for contact in store.contacts() for note in contact.notes} - {
        n.id for n in stored.notes
    }
    assert len({n.id for n in stored.notes}) == 2
    assert all(n.id > max(seeded) for n in stored.notes)
    assert all(n.created_at == n.updated_at == stored.updated_at for n in stored.notes)
    assert all(n.author == store.api_user for n in stored.notes)
    assert store.api_user["id"] == API_USER_ID
    assert store.api_user["firstname"] == "Intégration"  # the seed's api_user
    assert store.get(700118).notes[0].id == someone_elses["id"]  # the other one is untouched


WRONG_TYPES: list[tuple[str, dict[str, Any], str]] = [
    ("age_category as text", {"age_category": "3"}, "contact.age_category"),
    ("age_category with a fraction", {"age_category": 3.0}, "contact.age_category"),
    ("age_category as a boolean", {"age_category": True}, "contact.age_category"),
    ("user_contact_id as text", {"user_contact_id": "9002"}, "contact.user_contact_id"),
    ("black_list as a number", {"black_list": 1}, "contact.black_list"),
    ("phone_invalid as text", {"phone_invalid": "false"}, "contact.phone_invalid"),
    ("mobile_invalid as a number", {"mobile_invalid": 0}, "contact.mobile_invalid"),
    ("firstname as a number", {"firstname": 5}, "contact.firstname"),
    ("mail as a list", {"mail": ["a@example.org"]}, "contact.mail"),
    ("action id as text", {"action_ids": ["12"]}, "contact.action_ids[0]"),
    ("address key as a number", {"address": {"housenumber": 14}}, "contact.address.housenumber"),
    ("birthdate without time", {"birthdate": "1986-04-23"}, "contact.birthdate"),
    ("birthdate in seconds", {"birthdate": "1986-04-23T00:00:00Z"}, "contact.birthdate"),
    (
        "birthdate in microseconds",
        {"birthdate": "1986-04-23T00:00:00.000000Z"},
        "contact.birthdate",
    ),
    (
        "birthdate with an offset",
        {"birthdate": "1986-04-23T00:00:00.000+02:00"},
        "contact.birthdate",
    ),
    ("birthdate with a short year", {"birthdate": "86-04-23T00:00:00.000Z"}, "contact.birthdate"),
    ("birthdate not a day", {"birthdate": "1986-02-30T00:00:00.000Z"}, "contact.birthdate"),
    (
        "survey_id as text",
        {
            "formdatas": [
                {"form_id": CONCERN, "form_ref_id": 32011, "data": "x", "survey_id": "501"}
            ]
        },
        "contact.formdatas[0].survey_id",
    ),
    (
        "numeric answer as a number",
        {"formdatas": [{"form_id": HOUSEHOLD, "form_ref_id": 32021, "data": 4}]},
        "contact.formdatas[0].data",
    ),
    (
        "custom field date in seconds",
        {
            "custom_fields": [
                {
                    "form_id": PROFESSION,
                    "form_ref_id": 34011,
                    "data": "x",
                    "date": "2024-06-03T14:12:09Z",
                }
            ]
        },
        "contact.custom_fields[0].date",
    ),
    ("note pinned as text", {"notes": [{"data": "n", "pinned": "yes"}]}, "contact.notes[0].pinned"),
    (
        "note only_super_admin as a number",
        {"notes": [{"data": "n", "only_super_admin": 0}]},
        "contact.notes[0].only_super_admin",
    ),
    ("note id as text", {"notes": [{"data": "n", "id": "60015"}]}, "contact.notes[0].id"),
    (
        "note contact_id as text",
        {"notes": [{"data": "n", "contact_id": "1"}]},
        "contact.notes[0].contact_id",
    ),
    (
        "note group_id with a fraction",
        {"notes": [{"data": "n", "group_id": 4242.5}]},
        "contact.notes[0].group_id",
    ),
    (
        "note created_at in seconds",
        {"notes": [{"data": "n", "created_at": "2024-05-01T10:00:00Z"}]},
        "contact.notes[0].created_at",
    ),
    (
        "note updated_at in microseconds",
        {"notes": [{"data": "n", "updated_at": "2024-05-01T10:00:00.123456Z"}]},
        "contact.notes[0].updated_at",
    ),
    ("note user as text", {"notes": [{"data": "n", "user": "Marion"}]}, "contact.notes[0].user"),
    (
        "note user id as text",
        {"notes": [{"data": "n", "user": {"id": "9002"}}]},
        "contact.notes[0].user.id",
    ),
    (
        "note user two_factor_enable as text",
        {"notes": [{"data": "n", "user": {"two_factor_enable": "true"}}]},
        "contact.notes[0].user.two_factor_enable",
    ),
    (
        "note user group ids as text",
        {"notes": [{"data": "n", "user": {"group_id": ["4242"]}}]},
        "contact.notes[0].user.group_id",
    ),
    (
        "note user role order as text",
        {"notes": [{"data": "n", "user": {"role_data": {"order": "1"}}}]},
        "contact.notes[0].user.role_data.order",
    ),
    (
        "note user birthdate in seconds",
        {"notes": [{"data": "n", "user": {"birthdate": "1984-02-11T00:00:00Z"}}]},
        "contact.notes[0].user.birthdate",
    ),
]


@pytest.mark.parametrize(
    ("body", "location"),
    [(body, location) for _, body, location in WRONG_TYPES],
    ids=[name for name, _, _ in WRONG_TYPES],
)
def test_a_value_not_of_its_documented_type_is_refused(
    store: ContactStore, body: dict[str, Any], location: str
) -> None:
    before = store.raw(store.get(SHOWCASE))
    with pytest.raises(InvalidRequest) as refused:
        store.replace(SHOWCASE, body)
    assert [(p.location, p.value) for p in refused.value.problems] == [
        (location, value_at(body, location))
    ]
    assert store.raw(store.get(SHOWCASE)) == before
    with pytest.raises(InvalidRequest):
        store.create(body)


def value_at(body: dict[str, Any], location: str) -> Any:
    """The value a problem location names, e.g. `contact.notes[0].user.id`."""
    value: Any = body
    for part in re.findall(r"\.(\w+)|\[(\d+)\]", location.removeprefix("contact")):
        value = value[part[0]] if part[0] else value[int(part[1])]
    return value


ALWAYS_REFUSED = {
    "black_list as a number",
    "phone_invalid as text",
    "mobile_invalid as a number",
    "firstname as a number",
    "mail as a list",
    "action id as text",
    "address key as a number",
    "survey_id as text",
    "custom field date in seconds",
    "note pinned as text",
    "note only_super_admin as a number",
    "note id as text",
}
"""The wrong types the stand-in refused before it played the documented types."""
LENIENT_TAKES = [(name, body) for name, body, _ in WRONG_TYPES if name not in ALWAYS_REFUSED]


@pytest.mark.parametrize(
    "body", [body for _, body in LENIENT_TAKES], ids=[name for name, _ in LENIENT_TAKES]
)
def test_lenient_rules_take_what_the_stand_in_took_before(
    store: ContactStore, body: dict[str, Any]
) -> None:
    stored = store.replace(SHOWCASE, body, rules=LENIENT)
    for key in ("age_category", "user_contact_id", "birthdate"):
        if key in body:
            assert stored.fields[key] == body[key]


def test_lenient_rules_still_refuse_what_was_always_refused(store: ContactStore) -> None:
    always = [body for name, body, _ in WRONG_TYPES if name in ALWAYS_REFUSED]
    assert len(always) == len(ALWAYS_REFUSED)
    for body in always:
        with pytest.raises(InvalidRequest):
            store.replace(SHOWCASE, body, rules=LENIENT)


def test_dates_in_the_documented_write_form_are_taken(store: ContactStore) -> None:
    body = {
        "birthdate": "1986-04-23T00:00:00.000Z",
        "notes": [
            {
                "data": "n",
                "created_at": "2024-05-01T10:00:00.123Z",
                "updated_at": "2024-05-02T10:00:00.999Z",
                "user": {"id": 9002, "birthdate": "1984-02-11T00:00:00.000Z"},
            }
        ],
    }
    stored = store.replace(SHOWCASE, body)
    assert stored.fields["birthdate"] == "1986-04-23T00:00:00.000Z"
    assert stored.notes[0].created_at == stored.updated_at  # a new note: created now


def test_null_means_left_out_wherever_a_value_is_optional(store: ContactStore) -> None:
    body: dict[str, Any] = {
        **dict.fromkeys(
            (
                "firstname",
                "birthdate",
                "age_category",
                "user_contact_id",
                "black_list",
                "address",
                "tags",
                "action_ids",
                "custom_fields",
            )
        ),
        "formdatas": [
            {"form_id": CONCERN, "form_ref_id": 32011, "data": "x", "date": None, "survey_id": None}
        ],
        "notes": [
            {
                "id": None,
                "data": "n",
                "pinned": None,
                "only_super_admin": None,
                "contact_id": None,
                "group_id": None,
                "created_at": None,
                "updated_at": None,
                "user": {"id": None, "role_data": None, "group_id": None, "birthdate": None},
            }
        ],
    }
    stored = store.replace(SHOWCASE, body)
    assert all(value is None for value in stored.fields.values())
    assert (stored.address, stored.tags, stored.action_ids) == ({}, [], [])
    [note] = stored.notes
    assert (note.pinned, note.only_super_admin) == (False, False)
    assert note.id not in SHOWCASE_NOTES
    assert live(stored) == [(CONCERN, 32011, "x")]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"action_ids": [None]}, "contact.action_ids[0]"),
        ({"tags": [{"name": None}]}, "contact.tags[0]"),
        ({"notes": [None]}, "contact.notes[0]"),
        ({"notes": [{"data": None}]}, "contact.notes[0].data"),
        ({"formdatas": [None]}, "contact.formdatas[0]"),
        ({"formdatas": [{"form_id": None, "form_ref_id": 1}]}, "contact.formdatas[0].form_id"),
        (
            {"formdatas": [{"form_id": CONCERN, "form_ref_id": None}]},
            "contact.formdatas[0].form_ref_id",
        ),
        (
            {"formdatas": [{"form_id": CONCERN, "form_ref_id": 32011, "data": None}]},
            "contact.formdatas[0].data",
        ),
    ],
)
def test_null_is_refused_where_the_value_is_the_item(
    store: ContactStore, body: dict[str, Any], location: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        store.replace(SHOWCASE, body)
    assert [p.location for p in refused.value.problems] == [location]


def test_a_write_location_can_name_the_body_path(store: ContactStore) -> None:
    with pytest.raises(InvalidRequest) as refused:
        store.replace(
            ANA, {"notes": [{"data": "n", "pinned": "yes"}]}, location="body.data.contact"
        )
    assert refused.value.problems[0].location == "body.data.contact.notes[0].pinned"


def test_a_stored_birthdate_without_milliseconds_cannot_be_sent_back_as_read(
    store: ContactStore,
) -> None:
    # Qomon answers some birthdates without a fraction; writes want milliseconds.
    contact = next(c for c in store.contacts() if (c.fields["birthdate"] or "").endswith(":00Z"))
    shape = store.render(contact)
    with pytest.raises(InvalidRequest) as refused:
        store.replace(contact.id, shape)
    assert [p.location for p in refused.value.problems] == ["contact.birthdate"]
    assert store.replace(contact.id, shape, rules=LENIENT).fields["birthdate"] == shape["birthdate"]


# -- seeded notes and the API user ------------------------------------------------------


def test_a_seed_note_keeps_its_id_times_and_author(store: ContactStore) -> None:
    author = {"id": 9100, "firstname": "Nadia", "role_data": {"id": 2, "name": "Équipe"}}
    record = {
        "firstname": "Seeded",
        "notes": [
            {
                "id": 95_000,
                "data": "old",
                "created_at": "2023-02-01T10:00:00Z",
                "updated_at": "2023-03-01T10:00:00.5+01:00",
                "user": author,
            },
            {"data": "no id"},
        ],
    }
    stored, _ = store.put_seed_contact(record, contact_id=42)
    old, plain = stored.notes
    assert old.id == 95_000
    assert old.created_at == datetime(2023, 2, 1, 10, tzinfo=UTC)
    assert old.updated_at == datetime(2023, 3, 1, 9, 0, 0, 500_000, tzinfo=UTC)
    assert old.author["firstname"] == "Nadia"
    assert set(old.author) >= DOCUMENTED_USER_KEYS  # the unknown ones null
    assert old.author["role_data"] == {
        "color": None, "id": 2, "mobile": None, "name": "Équipe", "order": None, "web": None
    }  # fmt: skip
    assert plain.author == store.api_user
    # A note written later never takes an id the seed gave.
    new = store.replace(42, {"notes": [{"data": "later"}]}).notes[0]
    assert new.id > 95_000


def test_a_seed_note_id_used_twice_is_refused(store: ContactStore, seed: dict[str, Any]) -> None:
    taken = store.get(SHOWCASE).notes[0].id
    with pytest.raises(InvalidRequest) as refused:
        store.put_seed_contact({"notes": [{"id": taken, "data": "x"}]}, contact_id=42)
    assert [p.location for p in refused.value.problems] == ["contact.notes[0].id"]
    # Replacing the contact that holds it may keep it.
    record = {"notes": [{"id": taken, "data": "x"}]}
    assert store.put_seed_contact(record, contact_id=SHOWCASE)[0].notes[0].id == taken

    seed["contacts"][1]["notes"] = [{"id": taken, "data": "twice"}]
    with pytest.raises(SeedError, match="used twice"):
        ContactStore.from_seed(seed)


def test_the_seed_names_the_api_user(seed: dict[str, Any]) -> None:
    assert ContactStore.from_seed({**seed, "api_user": None}).api_user["firstname"] == "Clé"
    for wrong in ({"firstname": "No id"}, {"id": "9001"}, {"id": 9001, "two_factor_enable": 1}):
        with pytest.raises(SeedError, match="api_user"):
            ContactStore.from_seed({**seed, "api_user": wrong})


def test_a_seed_may_give_dates_in_any_iso_precision_but_documented_types(
    store: ContactStore,
) -> None:
    stored, _ = store.put_seed_contact(
        {"birthdate": "1990-01-01T00:00:00Z", "notes": [{"data": "n", "created_at": "2024-01-01"}]},
        contact_id=42,
    )
    assert stored.fields["birthdate"] == "1990-01-01T00:00:00Z"
    for wrong, location in (
        ({"age_category": "3"}, "contact.age_category"),
        ({"birthdate": "soon"}, "contact.birthdate"),
        ({"notes": [{"data": "n", "created_at": "yesterday"}]}, "contact.notes[0].created_at"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            store.put_seed_contact(wrong, contact_id=43)
        assert [p.location for p in refused.value.problems] == [location]
