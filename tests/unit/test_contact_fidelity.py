"""Each defect a new user met on Qomon's documented contact, pinned as a class.

The documented contact (events/qomon-docs/) is what a real space shows first: notes with
their author, integer fields, answers per survey. Each test names the defect it pins.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from typing import Any

import pytest
from pydantic import ValidationError

from qomon_sync.domain.assembly import (
    AssemblyPolicy,
    Replace,
    Unchanged,
    assemble_contact,
    same_meaning,
)
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_shape import ShapePolicy, to_write_shape
from qomon_sync.domain.contact_sync import sync_contact
from qomon_sync.domain.dates import NotADate, to_qomon_date
from qomon_sync.domain.forms import Form, FormCatalog
from tests.unit.campaign import (
    AGE,
    CATALOG,
    COMMENT,
    HOUSEHOLD,
    MEETING,
    MEMBER_NO,
    SUPPORT,
    TIER,
)
from tests.unit.test_contact_sync import FakeQomon


def event(**changes: Any) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "event_id": "fid-1",
            "source": "test",
            "occurred_at": "2026-12-01T09:00:00Z",
            "contact": {"id": 42},
            **changes,
        }
    )


def survey_answer(form_id: int, data: str, survey_id: int | None, **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": 100 + (survey_id or 0), "form_id": form_id}
    answer["form_ref_id"] = form_id * 10
    answer |= {"data": data, "date": "2026-01-05T10:00:00.000Z", "deleted_at": None}
    return answer | ({"survey_id": survey_id} if survey_id is not None else {}) | extra


def contact(**overrides: Any) -> dict[str, Any]:
    return {"id": 42, "firstname": "Ana", "mail": "ana@example.org", **overrides}


# -- integers stay integers -------------------------------------------------------------


def test_integer_fields_are_written_back_as_integers() -> None:
    read = contact(age_category=3, user_contact_id="77")
    body = to_write_shape(read, CATALOG)
    assert body["age_category"] == 3
    assert body["user_contact_id"] == 77
    assert assemble_contact(read, CATALOG, [event(set={"firstname": "Ana"})]) == Unchanged()


def test_a_change_event_sets_integer_fields_as_integers() -> None:
    outcome = assemble_contact(
        contact(), CATALOG, [event(set={"age_category": 2, "user_contact_id": 9001})]
    )
    assert isinstance(outcome, Replace)
    assert (outcome.contact["age_category"], outcome.contact["user_contact_id"]) == (2, 9001)


@pytest.mark.parametrize("value", ["two", 1.5, True, -1])
def test_a_change_event_refuses_an_integer_field_that_is_not_one(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        event(set={"age_category": value})
    assert caught.value.errors()[0]["loc"] == ("set", "age_category")


# -- dates keep four-digit years ----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),  # Go's zero time
        ("0969-05-01", "0969-05-01T00:00:00.000Z"),
        ("0099-12-31T23:59:59.999999Z", "0099-12-31T23:59:59.999Z"),
        ("9999-12-31T23:59:59.9Z", "9999-12-31T23:59:59.900Z"),
    ],
)
def test_dates_before_the_year_1000_keep_four_digits(given: str, written: str) -> None:
    assert to_qomon_date(given) == written


@pytest.mark.parametrize("given", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-02:00"])
def test_a_date_outside_utc_years_is_not_a_date_rather_than_a_crash(given: str) -> None:
    with pytest.raises(NotADate):
        to_qomon_date(given)
    outcome = assemble_contact(contact(birthdate=given), CATALOG, [event()])
    assert getattr(outcome, "code", None) == "invalid_contact"
    assert getattr(outcome, "fields", None) == ("birthdate",)


def test_a_typed_in_early_birth_year_is_written_padded() -> None:
    outcome = assemble_contact(contact(), CATALOG, [event(set={"birthdate": "0969-05-01"})])
    assert isinstance(outcome, Replace)
    assert outcome.contact["birthdate"] == "0969-05-01T00:00:00.000Z"


# -- text, number and date forms hold one answer per survey ---------------------------------


def two_surveys() -> dict[str, Any]:
    return contact(
        formdatas=[
            survey_answer(COMMENT.id, "Parking", 1),
            survey_answer(COMMENT.id, "Schools", 2),
            survey_answer(SUPPORT.id, "leaning", None, form_ref_id=21),
        ]
    )


def comments(outcome: Replace) -> dict[Any, str]:
    return {
        a.get("survey_id"): a["data"]
        for a in outcome.contact["formdatas"]
        if a["form_id"] == COMMENT.id
    }


def test_an_answer_for_one_survey_keeps_the_other_surveys_answers() -> None:
    change = {"field": COMMENT.id, "value": "Buses", "survey_id": 1}
    outcome = assemble_contact(two_surveys(), CATALOG, [event(fields=[change])])
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {1: "Buses", 2: "Schools"}
    assert outcome.changed == (f"formdatas[form_id={COMMENT.id}]",)


def test_an_answer_a_survey_already_holds_is_not_rewritten_nor_redated() -> None:
    change = {"field": COMMENT.id, "value": "Schools", "survey_id": 2}
    assert assemble_contact(two_surveys(), CATALOG, [event(fields=[change])]) == Unchanged()


def test_an_answer_without_a_survey_is_added_beside_the_surveys() -> None:
    outcome = assemble_contact(
        two_surveys(), CATALOG, [event(fields=[{"field": COMMENT.id, "value": "Buses"}])]
    )
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {1: "Parking", 2: "Schools", None: "Buses"}


def test_clear_with_a_survey_clears_that_survey_only() -> None:
    change = {"field": COMMENT.id, "op": "clear", "survey_id": 1}
    outcome = assemble_contact(two_surveys(), CATALOG, [event(fields=[change])])
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {2: "Schools"}


def test_clear_without_a_survey_clears_every_answer_of_the_form() -> None:
    change = {"field": COMMENT.id, "op": "clear"}
    outcome = assemble_contact(two_surveys(), CATALOG, [event(fields=[change])])
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {}
    assert [a["form_id"] for a in outcome.contact["formdatas"]] == [SUPPORT.id]


@pytest.mark.parametrize(("held", "sent"), [("4.0", 4), ("4", "4,0"), (4, "4"), ("12.50", 12.5)])
def test_numbers_compare_as_numbers(held: Any, sent: Any) -> None:
    read = contact(formdatas=[survey_answer(HOUSEHOLD.id, held, None)])
    change = {"field": HOUSEHOLD.id, "value": sent}
    assert assemble_contact(read, CATALOG, [event(fields=[change])]) == Unchanged()


def test_dates_answers_compare_as_instants() -> None:
    read = contact(formdatas=[survey_answer(MEETING.id, "2026-03-01T00:00:00.000000Z", 4)])
    change = {"field": MEETING.id, "value": "2026-03-01", "survey_id": 4}
    assert assemble_contact(read, CATALOG, [event(fields=[change])]) == Unchanged()


# -- null clears, address included ------------------------------------------------------------


def test_address_null_clears_every_part() -> None:
    read = contact(address={"id": 5, "street": "Rue Neuve", "city": "Lyon", "citycode": "69123"})
    outcome = assemble_contact(read, CATALOG, [event(set={"address": None})])
    assert isinstance(outcome, Replace)
    assert outcome.contact["address"] == {"street": None, "city": None, "citycode": None}
    assert outcome.changed == ("address.city", "address.citycode", "address.street")


def test_address_null_on_a_contact_without_address_is_unchanged() -> None:
    assert assemble_contact(contact(), CATALOG, [event(set={"address": None})]) == Unchanged()


# -- the echo check reads with the write's policy ------------------------------------------------


class EchoingQomon(FakeQomon):
    """Stores the body, and answers with read-side extras the way Qomon does."""

    def _store(self, contact_id: int, body: dict[str, Any]) -> dict[str, Any]:
        stored = super()._store(contact_id, body)
        for index, note in enumerate(stored.get("notes") or []):
            note.setdefault("id", 500 + index)
            note.setdefault("created_at", "2026-12-01T09:00:00.123456Z")
            note.setdefault("user", {"id": 9, "firstname": "API"})
        self.contacts[contact_id] = copy.deepcopy(stored)
        return stored


@pytest.mark.parametrize(
    ("extra", "passthrough"),
    [
        ({"address": {"city": "Lyon", "citycode": "69123"}}, frozenset({"address.citycode"})),
        (
            {"notes": [{"id": 3, "data": "Met", "origin": "door"}]},
            frozenset({"address.citycode", "notes[].origin"}),
        ),
        ({"formdatas": [survey_answer(COMMENT.id, "x", 1, origin="app")]}, {"formdatas[].origin"}),
    ],
)
def test_a_nested_passthrough_does_not_fail_the_echo(
    extra: dict[str, Any], passthrough: frozenset[str]
) -> None:
    qomon = EchoingQomon([contact(**extra)])
    policy = AssemblyPolicy(shape=ShapePolicy(passthrough=frozenset(passthrough)))
    result = sync_contact(
        [event(set={"firstname": "Anna"}, notes=[{"data": "Called back"}])],
        qomon,
        CATALOG,
        policy,
    )
    assert [o.action for o in result.outcomes] == ["replaced"], result.outcomes
    assert qomon.calls == ["get", "patch"]


def test_the_echo_still_catches_what_qomon_did_not_keep() -> None:
    sent = to_write_shape(contact(address={"city": "Lyon", "citycode": "69123"}), CATALOG)
    echoed = copy.deepcopy(sent) | {"id": 42}
    echoed["address"] = {"city": "Lyon"}
    assert same_meaning(sent, echoed, CATALOG, ShapePolicy()) == ["address.citycode"]


# -- what the assembly calls a change ----------------------------------------------------------
#
# A value that means what Qomon already holds is no change: no PATCH, and the held
# spelling is kept. Each test names the class it pins.


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


CAFE = "Café militant"  # composed: é is U+00E9


def tag_names(outcome: Replace) -> list[str]:
    return [t["name"] for t in outcome.contact["tags"]]


def test_a_tag_held_decomposed_and_added_composed_is_one_tag() -> None:
    qomon = FakeQomon([contact(tags=[{"name": nfd(CAFE), "color": "#123456"}])])
    result = sync_contact([event(tags={"add": [nfc(CAFE)]})], qomon, CATALOG)
    assert [o.action for o in result.outcomes] == ["unchanged"]
    assert qomon.calls == ["get"]


def test_a_tag_added_in_another_form_and_case_beside_a_change_keeps_the_held_spelling() -> None:
    read = contact(tags=[{"name": nfd(CAFE)}, {"name": "Donor"}])
    change = event(set={"firstname": "Anna"}, tags={"add": [nfc(CAFE).upper()]})
    outcome = assemble_contact(read, CATALOG, [change])
    assert isinstance(outcome, Replace)
    assert tag_names(outcome) == [nfd(CAFE), "Donor"]  # no look-alike twin
    assert outcome.changed == ("firstname",)


def test_a_tag_removed_in_composed_form_removes_the_decomposed_one() -> None:
    read = contact(tags=[{"name": nfd(CAFE)}, {"name": "Donor"}])
    outcome = assemble_contact(read, CATALOG, [event(tags={"remove": [nfc(CAFE)]})])
    assert isinstance(outcome, Replace)
    assert tag_names(outcome) == ["Donor"]


def test_one_event_cannot_add_and_remove_one_tag_in_two_forms() -> None:
    with pytest.raises(ValidationError):
        event(tags={"add": [nfc(CAFE)], "remove": [nfd(CAFE).lower()]})


def test_form_and_choice_labels_match_in_any_unicode_form() -> None:
    opinion = Form.model_validate(
        {
            "id": 60,
            "type": "radio",
            "label": nfd("Intérêt pour l'élection"),
            "section": "survey",
            "refvalues": [
                {"id": 601, "value": "fort", "label": nfd("Très intéressé")},
                {"id": 602, "value": "faible", "label": "Peu"},
            ],
        }
    )
    forms = FormCatalog([opinion])
    change = {"field": nfc("INTÉRÊT pour l'élection"), "value": nfc("très intéressé")}
    outcome = assemble_contact(contact(), forms, [event(fields=[change])])
    assert isinstance(outcome, Replace), outcome
    assert [(a["form_ref_id"], a["data"]) for a in outcome.contact["formdatas"]] == [(601, "fort")]
    # Answered already: the same choice in another form is no change.
    held = contact(formdatas=[{"id": 1, "form_id": 60, "form_ref_id": 601, "data": "fort"}])
    assert assemble_contact(held, forms, [event(fields=[change])]) == Unchanged()


def test_a_text_held_decomposed_and_set_composed_is_no_change() -> None:
    qomon = FakeQomon([contact(firstname=nfd("Zoé"), address={"city": nfd("Orléans")})])
    change = event(set={"firstname": nfc("Zoé"), "address": {"city": nfc("Orléans")}})
    result = sync_contact([change], qomon, CATALOG)
    assert [o.action for o in result.outcomes] == ["unchanged"]
    assert qomon.calls == ["get"]


def test_a_text_set_in_another_unicode_form_beside_a_change_keeps_the_held_spelling() -> None:
    read = contact(firstname=nfd("Zoé"), address={"city": nfd("Orléans")})
    change = event(
        set={"firstname": nfc("Zoé"), "surname": "Roux", "address": {"city": nfc("Orléans")}}
    )
    outcome = assemble_contact(read, CATALOG, [change])
    assert isinstance(outcome, Replace)
    assert outcome.contact["firstname"] == nfd("Zoé")
    assert outcome.contact["address"] == {"city": nfd("Orléans")}
    assert outcome.changed == ("surname",)


def test_a_note_held_decomposed_is_not_added_again_composed() -> None:
    read = contact(notes=[{"id": 7, "data": nfd("Rencontrée au marché"), "pinned": False}])
    outcome = assemble_contact(
        read, CATALOG, [event(notes=[{"data": nfc("Rencontrée au marché")}])]
    )
    assert outcome == Unchanged(("note not added: the contact already has a note with this text",))


def test_an_answer_a_survey_holds_decomposed_is_no_change() -> None:
    read = contact(formdatas=[survey_answer(COMMENT.id, nfd("Église"), 1)])
    change = {"field": COMMENT.id, "value": nfc("Église"), "survey_id": 1}
    assert assemble_contact(read, CATALOG, [event(fields=[change])]) == Unchanged()


def test_qomon_storing_text_composed_is_not_an_echo_mismatch() -> None:
    sent = to_write_shape(
        contact(
            firstname=nfd("Zoé"),
            tags=[{"name": nfd("Café")}],
            notes=[{"id": 7, "data": nfd("Rencontrée")}],
            formdatas=[survey_answer(COMMENT.id, nfd("Église"), 1)],
        ),
        CATALOG,
    )
    echoed = json.loads(nfc(json.dumps(sent, ensure_ascii=False))) | {"id": 42}
    assert echoed["firstname"] != sent["firstname"]
    assert same_meaning(sent, echoed, CATALOG) == []


def test_an_email_that_differs_only_in_case_is_no_change() -> None:
    qomon = FakeQomon([contact(mail="ana.martin@example.org")])
    result = sync_contact([event(set={"mail": "Ana.Martin@Example.ORG"})], qomon, CATALOG)
    assert [o.action for o in result.outcomes] == ["unchanged"]
    assert qomon.calls == ["get"]
    assert qomon.contacts[42]["mail"] == "ana.martin@example.org"


def test_an_email_in_another_case_beside_a_change_keeps_the_held_spelling() -> None:
    change = event(set={"mail": "ANA.MARTIN@example.org", "firstname": "Anna"})
    outcome = assemble_contact(contact(mail="ana.martin@example.org"), CATALOG, [change])
    assert isinstance(outcome, Replace)
    assert outcome.contact["mail"] == "ana.martin@example.org"
    assert outcome.changed == ("firstname",)


def test_a_new_email_is_still_a_change() -> None:
    change = event(set={"mail": "Anna.Martin@example.org"})
    outcome = assemble_contact(contact(mail="ana.martin@example.org"), CATALOG, [change])
    assert isinstance(outcome, Replace)
    assert (outcome.contact["mail"], outcome.changed) == ("Anna.Martin@example.org", ("mail",))


def test_qomon_storing_the_email_in_lower_case_is_not_an_echo_mismatch() -> None:
    sent = to_write_shape(contact(mail="Ana.Martin@Example.org"), CATALOG)
    echoed = copy.deepcopy(sent) | {"id": 42, "mail": "ana.martin@example.org"}
    assert same_meaning(sent, echoed, CATALOG) == []


def entries(outcome: Replace, form_id: int, list_name: str = "formdatas") -> list[Any]:
    return sorted(
        (a.get("survey_id") or 0, a["data"])
        for a in outcome.contact[list_name]
        if a["form_id"] == form_id
    )


def test_an_answer_naming_no_survey_that_a_survey_holds_is_no_change() -> None:
    qomon = FakeQomon([two_surveys()])
    change = {"field": COMMENT.id, "value": "Schools"}
    result = sync_contact([event(fields=[change])], qomon, CATALOG)
    assert [o.action for o in result.outcomes] == ["unchanged"]
    assert qomon.calls == ["get"]


def test_an_answer_naming_no_survey_beside_a_change_leaves_every_entry() -> None:
    change = {"field": COMMENT.id, "value": "Schools"}
    outcome = assemble_contact(
        two_surveys(), CATALOG, [event(set={"firstname": "Anna"}, fields=[change])]
    )
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {1: "Parking", 2: "Schools"}
    assert outcome.changed == ("firstname",)


@pytest.mark.parametrize(
    ("form", "held", "value"),
    [
        (MEMBER_NO, ["M-0041", "M-0042"], "M-0042"),  # text custom field, two entries
        (AGE, ["41", "42"], 42),  # integer custom field: "42" holds 42
        (AGE, ["42.0", "43"], "42"),
        (HOUSEHOLD, ["3", "4.0"], 4),  # numeric form
        (MEETING, ["2024-06-01T00:00:00.000Z", "2024-05-01T00:00:00.000Z"], "2024-05-01"),
        (MEETING, ["2024-05-01T00:00:00.000000Z", "2024-06-01"], "2024-05-01T02:00:00+02:00"),
        (COMMENT, [nfd("Église"), "Parking"], nfc("Église")),
    ],
)
def test_a_value_the_field_holds_without_a_survey_is_no_change_and_deletes_nothing(
    form: Any, held: list[str], value: Any
) -> None:
    list_name = "custom_fields" if form.section == "custom_fields" else "formdatas"
    read = contact(
        **{
            list_name: [
                survey_answer(form.id, data, None, id=300 + i) for i, data in enumerate(held)
            ]
        }
    )
    change = {"field": form.id, "value": value}
    assert assemble_contact(read, CATALOG, [event(fields=[change])]) == Unchanged()
    beside = assemble_contact(read, CATALOG, [event(set={"firstname": "Anna"}, fields=[change])])
    assert isinstance(beside, Replace)
    assert beside.changed == ("firstname",)
    assert entries(beside, form.id, list_name) == sorted(
        (0, a["data"]) for a in to_write_shape(read, CATALOG)[list_name]
    )


def test_a_date_held_in_one_survey_answered_without_a_survey_keeps_the_others() -> None:
    read = contact(
        formdatas=[
            survey_answer(MEETING.id, "2024-05-01T00:00:00.000Z", 3),
            survey_answer(MEETING.id, "2024-06-01T00:00:00.000Z", None, id=7),
        ]
    )
    change = {"field": MEETING.id, "value": "2024-05-01"}
    assert assemble_contact(read, CATALOG, [event(fields=[change])]) == Unchanged()


def test_removing_an_answer_naming_no_survey_removes_it_from_the_survey_holding_it() -> None:
    change = {"field": COMMENT.id, "op": "remove", "value": "Schools"}
    outcome = assemble_contact(two_surveys(), CATALOG, [event(fields=[change])])
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {1: "Parking"}


def test_an_answer_naming_a_survey_keeps_the_per_survey_rule() -> None:
    change = {"field": COMMENT.id, "value": "Schools", "survey_id": 1}
    outcome = assemble_contact(two_surveys(), CATALOG, [event(fields=[change])])
    assert isinstance(outcome, Replace)
    assert comments(outcome) == {1: "Schools", 2: "Schools"}


# -- both naming generations of one field, with one meaning ------------------------------------


@pytest.mark.parametrize(
    "twins",
    [
        {"action_ids": [3, 7], "actions_ids": [7, 3]},
        {"birth_city": nfc("Saint-Étienne"), "birthcity": nfd("Saint-Étienne")},
        {"birth_dept": "42", "birthdept": 42},
        {
            "custom_fields": [
                survey_answer(MEMBER_NO.id, "M-1", None, id=1),
                survey_answer(TIER.id, "gold", None, id=2, form_ref_id=70),
            ],
            "customfields": [
                survey_answer(TIER.id, "gold", None, id=12, form_ref_id=70, label="x"),
                survey_answer(MEMBER_NO.id, "M-1", None, id=11, date="2026-01-05T10:00:00Z"),
            ],
        },
    ],
)
def test_both_naming_generations_with_one_meaning_are_read_as_one(twins: dict[str, Any]) -> None:
    read = contact(**twins)
    assert assemble_contact(read, CATALOG, [event()]) == Unchanged()
    outcome = assemble_contact(read, CATALOG, [event(set={"firstname": "Anna"})])
    assert isinstance(outcome, Replace), outcome
    assert outcome.changed == ("firstname",)
    assert not {"actions_ids", "birthcity", "birthdept", "customfields"} & outcome.contact.keys()
    # The current name's value is written, as read: the legacy twin adds nothing.
    current = next(iter(twins))
    alone = to_write_shape(contact(**{current: twins[current]}), CATALOG)
    assert outcome.contact[current] == alone[current]


@pytest.mark.parametrize(
    ("twins", "path"),
    [
        ({"action_ids": [3, 7], "actions_ids": [3]}, "action_ids"),
        ({"birth_city": "Lyon", "birthcity": "Lyons"}, "birth_city"),
        (
            {
                "custom_fields": [survey_answer(MEMBER_NO.id, "M-1", None)],
                "customfields": [survey_answer(MEMBER_NO.id, "M-2", None)],
            },
            "custom_fields",
        ),
    ],
)
def test_naming_generations_that_disagree_are_still_refused_without_quoting_them(
    twins: dict[str, Any], path: str
) -> None:
    outcome = assemble_contact(contact(**twins), CATALOG, [event(set={"firstname": "Anna"})])
    assert getattr(outcome, "code", None) == "conflicting_names"
    assert getattr(outcome, "fields", None) == (path,)
    detail = getattr(outcome, "detail", "")
    assert not any(text in detail for text in ("Lyon", "M-1", "M-2", "7"))


@pytest.mark.parametrize(
    ("form", "sent", "stored"),
    [
        (COMMENT, nfd("Église"), nfc("Église")),
        (HOUSEHOLD, "4.0", "4"),
        (MEETING, "2024-05-01T00:00:00.000Z", "2024-05-01T00:00:00.000000Z"),
    ],
)
def test_an_undated_answer_qomon_dates_and_respells_is_not_an_echo_mismatch(
    form: Any, sent: str, stored: str
) -> None:
    answer = {"form_id": form.id, "form_ref_id": form.id * 10, "data": sent}
    body = {"firstname": "Ana", "formdatas": [answer]}
    stamped = answer | {"id": 9, "data": stored, "date": "2026-12-01T09:00:00.123456Z"}
    assert same_meaning(body, body | {"id": 42, "formdatas": [stamped]}, CATALOG) == []
    other = stamped | {"data": "something else"}
    assert same_meaning(body, body | {"id": 42, "formdatas": [other]}, CATALOG) == [
        f"formdatas[form_id={form.id}]"
    ]
