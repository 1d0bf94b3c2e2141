"""Each assembly rule, and each rejection with its reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from qomon_sync.domain import assembly
from qomon_sync.domain.assembly import (
    AssemblyPolicy,
    Rejected,
    Replace,
    Unchanged,
    assemble_contact,
    outcome_as_json,
    same_meaning,
)
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_meaning import note_path
from qomon_sync.domain.contact_shape import ShapePolicy
from qomon_sync.domain.dates import QOMON_DATE
from qomon_sync.domain.refusal import Code
from tests.unit.campaign import CATALOG, CONSENT, MEETING, SUPPORT, TIER, TOPICS


def event(**changes: Any) -> ChangeEvent:
    base = {
        "event_id": "evt-1",
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": 42},
    }
    return ChangeEvent.model_validate({**base, **changes})


def answer(form_id: int, ref: int, data: str, **extra: Any) -> dict[str, Any]:
    return {"form_id": form_id, "form_ref_id": ref, "data": data, **extra}


def read_contact(**overrides: Any) -> dict[str, Any]:
    """A contact as GET returns it: server fields, read-side extras, microsecond dates."""
    contact: dict[str, Any] = {
        "id": 42,
        "group_id": 3,
        "user_id": 9,
        "CreatedAt": "2024-02-01T09:00:00.123456Z",
        "UpdatedAt": "2026-11-01T09:00:00.654321Z",
        "lastchange": "2026-11-01T09:00:00.654Z",
        "firstname": "Ana",
        "surname": "Martin",
        "mail": "ana.martin@example.org",
        "phone": "+33600000001",
        "black_list": False,
        "birthdate": "1985-03-02T00:00:00Z",
        "birth_city": "Lyon",
        "address": {
            "id": 5,
            "street": "Rue Neuve",
            "postalcode": "69001",
            "city": "Lyon",
            "score": 0.97,
            "latitude": 45.7,
        },
        "tags": [{"name": "Volunteer", "color": "#ff0000", "appearance_count": 12}],
        "action_ids": [3, 7],
        "formdatas": [
            answer(
                1,
                10,
                "consent_email",
                id=501,
                date="2025-01-02T03:04:05.678901Z",
                deleted_at=None,
                label="E-mail",
            ),
            answer(2, 21, "leaning", id=502, deleted_at=None, type_of_form="level_of_support"),
            answer(2, 20, "strong", id=400, deleted_at="2025-06-01T00:00:00.000Z"),
        ],
        "custom_fields": [answer(7, 70, "gold", id=601, deleted_at=None)],
        "notes": [
            {
                "id": 77,
                "data": "Met at the market",
                "pinned": True,
                "created_at": "2025-01-01T00:00:00Z",
            }
        ],
    }
    contact.update(overrides)
    return contact


def replace(outcome: object) -> Replace:
    assert isinstance(outcome, Replace), outcome
    return outcome


def rejected(outcome: object) -> Rejected:
    assert isinstance(outcome, Rejected), outcome
    return outcome


def sent(outcome: object) -> dict[str, Any]:
    return replace(outcome).contact


# -- translation: read shape -> write shape ------------------------------------------------


def test_an_empty_event_changes_nothing() -> None:
    assert assemble_contact(read_contact(), CATALOG, [event()]) == Unchanged()


def test_write_shape_drops_server_fields_and_soft_deleted_answers() -> None:
    body = sent(assemble_contact(read_contact(), CATALOG, [event(set={"firstname": "Anna"})]))
    for server_owned in ("id", "group_id", "user_id", "CreatedAt", "UpdatedAt", "lastchange"):
        assert server_owned not in body
    assert body["address"] == {"street": "Rue Neuve", "postalcode": "69001", "city": "Lyon"}
    assert body["tags"] == [{"name": "Volunteer"}]
    assert body["formdatas"] == [
        answer(1, 10, "consent_email", date="2025-01-02T03:04:05.678Z"),
        answer(2, 21, "leaning"),
    ]
    assert body["custom_fields"] == [answer(7, 70, "gold")]
    # The documented PATCH body carries a note's timestamps: they are sent back (ms).
    assert body["notes"] == [
        {
            "id": 77,
            "data": "Met at the market",
            "pinned": True,
            "created_at": "2025-01-01T00:00:00.000Z",
        }
    ]
    assert body["action_ids"] == [3, 7]


def test_legacy_read_names_are_written_with_current_names() -> None:
    legacy = read_contact()
    legacy["birthcity"] = legacy.pop("birth_city")
    legacy["actions_ids"] = legacy.pop("action_ids")
    legacy["customfields"] = legacy.pop("custom_fields")
    legacy["notes"] = [{"id": 77, "content": "Met at the market", "pinned": True}]
    legacy["address"]["postalcode"] = 69001
    legacy["address"]["housenumber"] = 12
    body = sent(assemble_contact(legacy, CATALOG, [event(set={"firstname": "Anna"})]))
    assert body["birth_city"] == "Lyon"
    assert body["action_ids"] == [3, 7]
    assert body["custom_fields"] == [answer(7, 70, "gold")]
    assert body["notes"] == [{"id": 77, "data": "Met at the market", "pinned": True}]
    assert body["address"]["postalcode"] == "69001"
    assert body["address"]["housenumber"] == "12"
    assert not {"birthcity", "actions_ids", "customfields"} & body.keys()


def test_legacy_and_current_names_holding_different_values_are_refused() -> None:
    outcome = rejected(assemble_contact(read_contact(birthcity="Paris"), CATALOG, [event()]))
    assert outcome.code == "conflicting_names"
    assert outcome.fields == ("birth_city",)
    assert "birthcity" in outcome.detail


def test_legacy_and_current_names_agreeing_are_fine() -> None:
    assert isinstance(
        assemble_contact(read_contact(birthcity="Lyon"), CATALOG, [event()]), Unchanged
    )


def test_unknown_fields_stop_the_write_and_are_named() -> None:
    contact = read_contact(external_id="crm-991", membership_number=12)
    contact["address"]["geohash"] = "u05kq"
    contact["formdatas"][0]["origin"] = "door"
    outcome = rejected(assemble_contact(contact, CATALOG, [event(set={"firstname": "Anna"})]))
    assert outcome.code == "unknown_field"
    assert set(outcome.fields) == {
        "external_id",
        "membership_number",
        "address.geohash",
        "formdatas[].origin",
    }


def test_unknown_fields_can_be_declared_passthrough_or_droppable() -> None:
    contact = read_contact(external_id="crm-991", legacy_score=3)
    policy = AssemblyPolicy(
        shape=ShapePolicy(
            passthrough=frozenset({"external_id"}), droppable=frozenset({"legacy_score"})
        )
    )
    body = sent(assemble_contact(contact, CATALOG, [event(set={"firstname": "Anna"})], policy))
    assert body["external_id"] == "crm-991"
    assert "legacy_score" not in body


def test_empty_unknown_fields_hold_nothing_to_lose() -> None:
    assert isinstance(
        assemble_contact(read_contact(external_id=None, nationbuilderid=""), CATALOG, [event()]),
        Unchanged,
    )


def test_older_address_citycode_is_sent_back_as_read() -> None:
    contact = read_contact()
    contact["address"]["citycode"] = "69381"
    assert (
        sent(assemble_contact(contact, CATALOG, [event(set={"firstname": "X"})]))["address"][
            "citycode"
        ]
        == "69381"
    )


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"formdatas": {"not": "a list"}}, "formdatas"),
        ({"formdatas": [{"data": "x"}]}, "formdatas[0]"),
        ({"tags": [{"color": "red"}]}, "tags[0]"),
        ({"notes": [{"pinned": True}]}, "notes[0]"),
        ({"birthdate": "the eighties"}, "birthdate"),
        ({"black_list": "maybe"}, "black_list"),
        ({"address": ["Lyon"]}, "address"),
    ],
)
def test_a_contact_we_cannot_read_is_refused_naming_the_field(
    override: dict[str, Any], field: str
) -> None:
    outcome = rejected(assemble_contact(read_contact(**override), CATALOG, [event()]))
    assert outcome.code == "invalid_contact"
    assert outcome.fields == (field,)


@pytest.mark.parametrize(
    ("read", "written"),
    [
        ("1985-03-02T00:00:00Z", "1985-03-02T00:00:00.000Z"),
        ("1985-03-02", "1985-03-02T00:00:00.000Z"),
        ("1985-03-02T00:00:00.1Z", "1985-03-02T00:00:00.100Z"),
        ("1985-03-02T10:11:12.999999Z", "1985-03-02T10:11:12.999Z"),
        ("1985-03-02T01:00:00+02:00", "1985-03-01T23:00:00.000Z"),
    ],
)
def test_dates_are_written_in_milliseconds_whatever_their_precision(
    read: str, written: str
) -> None:
    body = sent(
        assemble_contact(read_contact(birthdate=read), CATALOG, [event(set={"firstname": "Anna"})])
    )
    assert body["birthdate"] == written
    assert QOMON_DATE.match(body["formdatas"][0]["date"])


# -- basic fields: JSON Merge Patch ----------------------------------------------------------


def test_set_merges_fields_and_address_parts_and_null_clears() -> None:
    outcome = replace(
        assemble_contact(
            read_contact(),
            CATALOG,
            [
                event(
                    set={
                        "firstname": "Anna",
                        "phone": None,
                        "address": {"city": "Paris", "street": None},
                    }
                )
            ],
        )
    )
    body = outcome.contact
    assert body["firstname"] == "Anna"
    assert body["phone"] is None
    assert body["address"] == {"street": None, "postalcode": "69001", "city": "Paris"}
    assert outcome.changed == ("address.city", "address.street", "firstname", "phone")


def test_set_birthdate_is_written_in_milliseconds() -> None:
    body = sent(assemble_contact(read_contact(), CATALOG, [event(set={"birthdate": "1990-07-14"})]))
    assert body["birthdate"] == "1990-07-14T00:00:00.000Z"


def test_setting_what_qomon_already_has_is_unchanged() -> None:
    same = event(
        set={"firstname": "Ana", "birthdate": "1985-03-02T00:00:00.000000+00:00"},
        tags={"add": ["volunteer"]},
    )
    assert assemble_contact(read_contact(), CATALOG, [same]) == Unchanged()


def test_black_list_is_sticky_by_default() -> None:
    outcome = assemble_contact(
        read_contact(black_list=True), CATALOG, [event(set={"black_list": False})]
    )
    assert outcome == Unchanged(("black_list kept true: opt-outs are sticky",))


def test_black_list_can_be_lifted_when_configured() -> None:
    policy = AssemblyPolicy(allow_unblacklist=True)
    outcome = assemble_contact(
        read_contact(black_list=True), CATALOG, [event(set={"black_list": False})], policy
    )
    assert sent(outcome)["black_list"] is False


def test_black_list_can_always_be_turned_on() -> None:
    assert (
        sent(assemble_contact(read_contact(), CATALOG, [event(set={"black_list": True})]))[
            "black_list"
        ]
        is True
    )


# -- tags ---------------------------------------------------------------------------------------


def test_tags_are_added_once_and_removed_ignoring_case() -> None:
    contact = read_contact(tags=[{"name": "Volunteer", "color": "red"}, {"name": "Prospect"}])
    change = event(tags={"add": ["VOLUNTEER", "Donor"], "remove": ["prospect "]})
    outcome = replace(assemble_contact(contact, CATALOG, [change]))
    assert outcome.contact["tags"] == [{"name": "Volunteer"}, {"name": "Donor"}]
    assert outcome.changed == ("tags[donor]", "tags[prospect]")


# -- advanced fields and custom fields ------------------------------------------------------


def answers_of(
    body: dict[str, Any], form_id: int, list_name: str = "formdatas"
) -> list[tuple[int, str]]:
    return sorted((a["form_ref_id"], a["data"]) for a in body[list_name] if a["form_id"] == form_id)


def test_radio_set_replaces_the_single_answer() -> None:
    body = sent(
        assemble_contact(
            read_contact(),
            CATALOG,
            [event(fields=[{"field": "Level of support", "value": "Strong supporter"}])],
        )
    )
    assert answers_of(body, SUPPORT.id) == [(20, "strong")]
    assert answers_of(body, CONSENT.id) == [(10, "consent_email")]


def test_radio_set_to_the_current_value_is_unchanged() -> None:
    assert isinstance(
        assemble_contact(
            read_contact(), CATALOG, [event(fields=[{"field": 2, "value": "leaning"}])]
        ),
        Unchanged,
    )


def test_radio_remove_of_the_current_value_removes_it() -> None:
    body = sent(
        assemble_contact(
            read_contact(),
            CATALOG,
            [event(fields=[{"field": 2, "op": "remove", "value": "leaning"}])],
        )
    )
    assert answers_of(body, SUPPORT.id) == []


@pytest.mark.parametrize(
    "change",
    [{"field": 2, "op": "add", "value": "strong"}, {"field": 2, "value": ["strong", "leaning"]}],
)
def test_radio_holds_one_value(change: dict[str, Any]) -> None:
    outcome = rejected(assemble_contact(read_contact(), CATALOG, [event(fields=[change])]))
    assert outcome.code == "unsupported_operation"
    assert outcome.fields == ("Level of support",)
    assert outcome.event_id == "evt-1"


def test_checkbox_values_are_added_and_removed_one_by_one() -> None:
    body = sent(
        assemble_contact(
            read_contact(),
            CATALOG,
            [
                event(
                    fields=[
                        {"field": "Consents", "op": "add", "value": "SMS"},
                        {"field": "consents", "op": "remove", "value": "consent_email"},
                    ]
                )
            ],
        )
    )
    assert answers_of(body, CONSENT.id) == [(11, "consent_sms")]


def test_checkbox_add_of_a_present_value_keeps_its_date_and_is_unchanged() -> None:
    assert isinstance(
        assemble_contact(
            read_contact(),
            CATALOG,
            [event(fields=[{"field": 1, "op": "add", "value": "consent_email"}])],
        ),
        Unchanged,
    )


def test_checkbox_set_with_a_list_replaces_the_selection() -> None:
    contact = read_contact()
    contact["formdatas"].append(answer(3, 30, "housing"))
    body = sent(
        assemble_contact(
            contact,
            CATALOG,
            [event(fields=[{"field": "Topics", "value": ["Transport", "schools"]}])],
        )
    )
    assert answers_of(body, TOPICS.id) == [(31, "transport"), (32, "schools")]


def test_clear_removes_every_answer_of_the_form_and_only_those() -> None:
    outcome = replace(
        assemble_contact(
            read_contact(), CATALOG, [event(fields=[{"field": "Consents", "op": "clear"}])]
        )
    )
    assert answers_of(outcome.contact, CONSENT.id) == []
    assert answers_of(outcome.contact, SUPPORT.id) == [(21, "leaning")]
    assert outcome.changed == ("formdatas[form_id=1]",)


def test_custom_fields_are_answered_in_custom_fields() -> None:
    body = sent(
        assemble_contact(
            read_contact(),
            CATALOG,
            [
                event(
                    fields=[
                        {"field": "Membership tier", "value": "Silver"},
                        {"field": "Member number", "value": "M-0042"},
                    ]
                )
            ],
        )
    )
    assert answers_of(body, TIER.id, "custom_fields") == [(71, "silver")]
    assert answers_of(body, 8, "custom_fields") == [(80, "M-0042")]
    assert all(a["form_id"] not in (7, 8) for a in body["formdatas"])


@pytest.mark.parametrize(
    ("field", "value", "data"),
    [
        ("Comment", "  Wants a yard sign ", "Wants a yard sign"),
        ("Household size", 4, "4"),
        ("Household size", "3,5", "3.5"),
        ("Household size", "4.0", "4"),
        ("Age", "42", "42"),
        ("Meeting date", "2026-12-01", "2026-12-01T00:00:00.000Z"),
        ("Meeting date", "2026-12-01T18:30:00+01:00", "2026-12-01T17:30:00.000Z"),
    ],
)
def test_free_input_answers_replace_the_form_entry(field: str, value: object, data: str) -> None:
    contact = read_contact()
    contact["formdatas"].append(answer(MEETING.id, 60, "2020-01-01T00:00:00.000Z"))
    body = sent(
        assemble_contact(contact, CATALOG, [event(fields=[{"field": field, "value": value}])])
    )
    form = CATALOG.find(field)
    key = "custom_fields" if form.section == "custom_fields" else "formdatas"
    assert answers_of(body, form.id, key) == [(form.refvalues[0].id, data)]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"field": "Favourite colour", "value": "blue"}, "unknown_field", "Favourite colour"),
        ({"field": 999, "value": "blue"}, "unknown_field", "999"),
        ({"field": "Notes from the door", "value": "x"}, "ambiguous_field", "Notes from the door"),
        ({"field": "Level of support", "value": "maybe"}, "unknown_value", "Level of support"),
        ({"field": "Household size", "value": "a few"}, "invalid_number", "Household size"),
        ({"field": "Household size", "value": "NaN"}, "invalid_number", "Household size"),
        ({"field": "Household size", "value": 40}, "out_of_range", "Household size"),
        ({"field": "Age", "value": 41.5}, "invalid_number", "Age"),
        ({"field": "Meeting date", "value": "next tuesday"}, "invalid_date", "Meeting date"),
        ({"field": "Meeting date", "value": 20261201}, "invalid_date", "Meeting date"),
        ({"field": "Comment", "op": "add", "value": "x"}, "unsupported_operation", "Comment"),
        ({"field": "Rating", "value": "5"}, "unsupported_form_type", "Rating"),
    ],
)
def test_each_invalid_answer_is_refused_naming_the_field(
    change: dict[str, Any], code: str, field: str
) -> None:
    outcome = rejected(assemble_contact(read_contact(), CATALOG, [event(fields=[change])]))
    assert (outcome.code, outcome.fields) == (code, (field,))
    assert outcome.detail.startswith("fields[0]")


def test_ambiguous_value_names_are_refused() -> None:
    from qomon_sync.domain.forms import Form, FormCatalog

    twins = Form.model_validate(
        {
            "id": 50,
            "type": "radio",
            "label": "Twins",
            "refvalues": [
                {"id": 1, "value": "a", "label": "Same"},
                {"id": 2, "value": "b", "label": "same"},
            ],
        }
    )
    outcome = rejected(
        assemble_contact(
            {}, FormCatalog([twins]), [event(fields=[{"field": "Twins", "value": "SAME"}])]
        )
    )
    assert outcome.code == "ambiguous_value"


def test_a_consent_refusal_is_sticky() -> None:
    contact = read_contact()
    contact["formdatas"][0] = answer(1, 13, "refuse_all")
    for change in (
        {"field": "Consents", "op": "remove", "value": "refuse_all"},
        {"field": "Consents", "op": "clear"},
        {"field": "Consents", "value": ["consent_email"]},
    ):
        outcome = assemble_contact(contact, CATALOG, [event(fields=[change])])
        body = contact if isinstance(outcome, Unchanged) else sent(outcome)
        assert (13, "refuse_all") in [(a["form_ref_id"], a["data"]) for a in body["formdatas"]]
        assert "consent refusal kept on form 1: opt-outs are sticky" in outcome.warnings  # type: ignore[union-attr]


def test_a_consent_refusal_can_be_withdrawn_when_configured() -> None:
    contact = read_contact()
    contact["formdatas"][0] = answer(1, 13, "refuse_all")
    policy = AssemblyPolicy(allow_refusal_withdrawal=True)
    body = sent(
        assemble_contact(contact, CATALOG, [event(fields=[{"field": 1, "op": "clear"}])], policy)
    )
    assert answers_of(body, CONSENT.id) == []


# -- notes ------------------------------------------------------------------------------------


def test_notes_are_added_and_existing_ones_kept() -> None:
    outcome = replace(
        assemble_contact(
            read_contact(),
            CATALOG,
            [event(notes=[{"data": "Asked for a yard sign", "pinned": False}])],
        )
    )
    assert outcome.contact["notes"] == [
        {
            "id": 77,
            "data": "Met at the market",
            "pinned": True,
            "created_at": "2025-01-01T00:00:00.000Z",
        },
        {"data": "Asked for a yard sign", "pinned": False},
    ]
    assert outcome.changed == (note_path("Asked for a yard sign"),)


def test_a_note_the_contact_already_has_is_not_added_twice() -> None:
    outcome = assemble_contact(
        read_contact(), CATALOG, [event(notes=[{"data": "Met  at the market"}])]
    )
    assert isinstance(outcome, Unchanged)
    assert outcome.warnings == ("note not added: the contact already has a note with this text",)


# -- folding, guard, echo ----------------------------------------------------------------------


def test_events_fold_in_order_into_one_body() -> None:
    first = event(event_id="e1", set={"firstname": "Anna"}, tags={"add": ["Donor"]})
    second = event(event_id="e2", set={"firstname": "Annabel"}, tags={"remove": ["donor"]})
    outcome = replace(assemble_contact(read_contact(), CATALOG, [first, second]))
    assert outcome.contact["firstname"] == "Annabel"
    assert outcome.contact["tags"] == [{"name": "Volunteer"}]
    assert outcome.changed == ("firstname",)


def test_a_rejected_event_rejects_the_fold_and_is_named() -> None:
    good = event(event_id="e1", set={"firstname": "Anna"})
    bad = event(event_id="e2", fields=[{"field": "Nope", "value": 1}])
    outcome = rejected(assemble_contact(read_contact(), CATALOG, [good, bad]))
    assert outcome.event_id == "e2"


def test_the_guard_refuses_a_body_that_loses_what_no_event_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = assembly._Draft._change_tags

    def careless(self: Any, add: Any, remove: Any) -> None:
        original(self, add, remove)
        self.contact.pop("notes")  # a bug that would delete Qomon's notes

    monkeypatch.setattr(assembly._Draft, "_change_tags", careless)
    outcome = rejected(assemble_contact(read_contact(), CATALOG, [event(tags={"add": ["Donor"]})]))
    assert outcome.code == "data_loss_guard"
    assert outcome.fields == (note_path("Met at the market"),)


def test_a_new_contact_is_assembled_from_nothing() -> None:
    body = sent(
        assemble_contact(
            {},
            CATALOG,
            [event(set={"firstname": "Zoé", "mail": "zoe@example.org"}, tags={"add": ["Form"]})],
        )
    )
    assert body == {"firstname": "Zoé", "mail": "zoe@example.org", "tags": [{"name": "Form"}]}


def test_echo_check_ignores_ids_and_precision_but_sees_a_lost_answer() -> None:
    change = event(set={"firstname": "Anna"}, notes=[{"data": "New note"}])
    body = sent(assemble_contact(read_contact(), CATALOG, [change]))
    echo = copy.deepcopy(body) | {"id": 42, "UpdatedAt": "2026-11-24T10:00:00.123456Z"}
    echo["formdatas"] = [
        dict(a, id=900 + i, deleted_at=None) for i, a in enumerate(body["formdatas"])
    ]
    echo["formdatas"][0]["date"] = "2025-01-02T03:04:05.678123Z"
    echo["notes"] = [dict(n, id=n.get("id", 1234)) for n in body["notes"]]
    assert same_meaning(body, echo, CATALOG) == []
    echo["formdatas"].pop()
    assert same_meaning(body, echo, CATALOG) == ["formdatas[form_id=2]"]


def test_preview_json_shapes() -> None:
    assert outcome_as_json(Unchanged()) == {"action": "unchanged"}
    assert outcome_as_json(Rejected(Code.UNKNOWN_FIELD, "why", ("x",))) == {
        "action": "reject",
        "error": {"code": "unknown_field", "detail": "why", "fields": ["x"]},
    }
    result = outcome_as_json(
        assemble_contact(read_contact(), CATALOG, [event(set={"firstname": "Anna"})])
    )
    assert result["action"] == "replace"
    assert result["changed"] == ["firstname"]
    assert result["body"]["data"]["contact"]["firstname"] == "Anna"


def test_new_answers_are_dated_when_the_person_answered() -> None:
    change = event(
        occurred_at="2026-11-24T11:00:00.123456+01:00",
        fields=[
            {"field": "Comment", "value": "Yes"},
            {"field": "Topics", "op": "add", "value": "housing", "date": "2026-11-20T09:00:00Z"},
        ],
    )
    body = sent(assemble_contact(read_contact(), CATALOG, [change]))
    dates = {a["form_id"]: a.get("date") for a in body["formdatas"]}
    assert dates[4] == "2026-11-24T10:00:00.123Z"
    assert dates[3] == "2026-11-20T09:00:00.000Z"
    assert dates[1] == "2025-01-02T03:04:05.678Z"  # an untouched answer keeps its own date


def test_echo_check_accepts_a_date_qomon_filled_in() -> None:
    body = {"firstname": "A", "formdatas": [answer(4, 40, "Yes")]}
    echo = {
        "id": 1,
        "firstname": "A",
        "formdatas": [answer(4, 40, "Yes", id=5, date="2026-11-24T10:00:00.000000Z")],
    }
    assert same_meaning(body, echo, CATALOG) == []
    echo["formdatas"] = [answer(4, 40, "No", id=5, date="2026-11-24T10:00:00.000000Z")]
    assert same_meaning(body, echo, CATALOG) == ["formdatas[form_id=4]"]


def test_an_echo_spelling_out_empty_fields_means_the_same_as_a_sparse_body() -> None:
    body = {"firstname": "Zoé", "address": {"city": "Lyon"}}
    echo = {
        "id": 9,
        "firstname": "Zoé",
        "surname": None,
        "action_ids": [],
        "tags": [],
        "formdatas": [],
        "custom_fields": [],
        "notes": [],
        "address": {"city": "Lyon", "street": None, "id": 9, "score": 0.5},
    }
    assert same_meaning(body, echo, CATALOG) == []
