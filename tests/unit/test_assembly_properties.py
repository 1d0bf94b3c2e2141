"""Properties of the assembly over generated contacts, as GET could return them.

Contacts are shaped like Qomon's documented response, in both naming generations: notes
with their documented keys and author (`user`), integer fields, several answers per text
form (one per survey), soft-deleted answers, read-side extras, and dates of years 1 to
9999 with 0 to 6 fractional digits; events are drawn from valid changes of every kind.
"""

from __future__ import annotations

import copy
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qomon_sync.domain.assembly import (
    Rejected,
    Replace,
    Unchanged,
    assemble_contact,
    same_meaning,
)
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_fields import ADDRESS, CONTACT, NOTE
from qomon_sync.domain.contact_meaning import as_number, fingerprint, note_path, tag_key
from qomon_sync.domain.contact_shape import ShapePolicy, to_write_shape
from qomon_sync.domain.contact_values import is_empty
from qomon_sync.domain.dates import QOMON_DATE, parse_instant, to_qomon_date
from qomon_sync.domain.forms import Form, FormCatalog
from qomon_sync.domain.replacement_body import body_problems
from tests.unit.campaign import ANSWERABLE, CATALOG

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

names = (
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèABCDEFGHIJ -", min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
tag_names = st.sampled_from(["Volunteer", "Donor", "prospect", "Door 2026", "newsletter", "VIP"])
# Years 1 to 9999; a day kept at each end so that an offset never leaves them in UTC.
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@st.composite
def date_text(draw: st.DrawFn) -> str:
    """ISO text with 0..6 fractional digits, `Z` or an offset, as Qomon's answers vary."""
    moment = draw(instants)
    digits = draw(st.integers(0, 6))
    offset = draw(st.sampled_from([None, timedelta(hours=2), timedelta(hours=-5)]))
    shown = moment if offset is None else moment.astimezone(timezone(offset))
    text = f"{shown.year:04d}-" + shown.strftime("%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{shown.microsecond:06d}"[:digits]
    return text + (
        "Z" if offset is None else shown.strftime("%z")[:3] + ":" + shown.strftime("%z")[3:]
    )


def live_answers(draw: st.DrawFn, form: Form) -> list[dict[str, Any]]:
    kind = form.type
    if kind == "checkbox":
        refs = draw(st.lists(st.sampled_from(form.refvalues), unique_by=lambda r: r.id, max_size=3))
        return [{"form_id": form.id, "form_ref_id": r.id, "data": r.value} for r in refs]
    if kind in ("radio", "select"):
        ref = draw(st.sampled_from(form.refvalues))
        return [{"form_id": form.id, "form_ref_id": ref.id, "data": ref.value}]
    ref = form.refvalues[0]
    # Free-input forms hold one answer per survey: several surveys, several answers.
    # (Custom fields belong to no survey: the documented custom_fields carry no survey_id.)
    surveys: list[int | None] = [None]
    if form.section != "custom_fields":
        surveys = draw(st.lists(st.none() | st.integers(1, 4), unique=True, min_size=1, max_size=3))
    answers = []
    for survey in surveys:
        data: Any = {
            "text": draw(names),
            "numeric": draw(st.integers(1, 20) | st.sampled_from(["4.0", "7", "12,5"])),
            "integer": str(draw(st.integers(0, 130))),
            "date": draw(date_text()),
        }[kind]
        answer = {"form_id": form.id, "form_ref_id": ref.id, "data": data}
        answers.append(answer if survey is None else answer | {"survey_id": survey})
    return answers


@st.composite
def basic_fields(draw: st.DrawFn, legacy: bool) -> dict[str, Any]:
    """Some basic fields, each present or not, of their documented types (or as GET may
    return them: a user_contact_id as digits)."""
    drawn: dict[str, Any] = {
        "mail": draw(names).replace(" ", "") + "@example.org",
        "age_category": draw(st.integers(0, 9)),
        "user_contact_id": draw(st.integers(1, 10**6) | st.just("123")),
        "birthdate": draw(date_text()),
        "birthcity" if legacy else "birth_city": draw(names),
    }
    for name in ("firstname", "surname", "married_name", "nationality", "phone"):
        drawn[name] = draw(st.none() | names)
    fields = {name: value for name, value in drawn.items() if draw(st.booleans())}
    return fields | {"black_list": draw(st.booleans())}


@st.composite
def read_contacts(draw: st.DrawFn) -> dict[str, Any]:
    legacy = draw(st.booleans())
    contact: dict[str, Any] = {
        "id": draw(st.integers(1, 10**6)),
        "group_id": 3,
        "CreatedAt": draw(date_text()),
        "UpdatedAt": draw(date_text()),
        "lastchange": draw(date_text()),
    }
    contact |= draw(basic_fields(legacy))
    if draw(st.booleans()):
        postal: Any = draw(st.integers(10000, 99999))
        contact["address"] = {
            "id": 9,
            "city": draw(names),
            "postalcode": postal if legacy else str(postal),
            "score": 0.5,
            "latitude": 1.0,
        }
    contact["tags"] = [
        {"name": n, "color": "#000", "appearance_count": 1}
        for n in draw(st.lists(tag_names, unique_by=tag_key, max_size=4))
    ]
    contact["actions_ids" if legacy else "action_ids"] = draw(
        st.lists(st.integers(1, 99), unique=True, max_size=3)
    )
    formdatas: list[dict[str, Any]] = []
    customs: list[dict[str, Any]] = []
    next_id = iter(range(1000, 10**6))
    for form in draw(st.lists(st.sampled_from(ANSWERABLE), unique_by=lambda f: f.id, max_size=6)):
        target = customs if form.section == "custom_fields" else formdatas
        for entry in live_answers(draw, form):
            extra: dict[str, Any] = {
                "id": next(next_id),
                "deleted_at": None,
                "label": "x",
                "type_of_form": form.section,
            }
            if draw(st.booleans()):
                extra["date"] = draw(date_text())
            target.append(entry | extra)
        if draw(st.booleans()):  # history Qomon keeps soft-deleted and may return
            for gone in live_answers(draw, form)[:1]:
                target.append(gone | {"id": next(next_id), "deleted_at": draw(date_text())})
    contact["formdatas"] = draw(st.permutations(formdatas))
    contact["customfields" if legacy else "custom_fields"] = customs
    contact["notes"] = [
        draw(documented_notes(70 + i, text, legacy))
        for i, text in enumerate(draw(st.lists(names, unique=True, max_size=3)))
    ]
    return contact


@st.composite
def documented_notes(draw: st.DrawFn, note_id: int, text: str, legacy: bool) -> dict[str, Any]:
    """A note as the documented response shows it: stamps, flags and its author."""
    note: dict[str, Any] = {
        "id": note_id,
        ("content" if legacy else "data"): text,
        "pinned": draw(st.booleans()),
    }
    if draw(st.booleans()):
        note |= {
            "contact_id": 1,
            "group_id": 3,
            "created_at": draw(date_text()),
            "updated_at": draw(date_text()),
            "only_super_admin": draw(st.booleans()),
        }
    if draw(st.booleans()):
        note["user"] = {
            "id": 12,  # server-owned: the request leaves it out
            "CreatedAt": draw(date_text()),
            "firstname": draw(names),
            "surname": draw(names),
            "mail": "agent@example.org",
            "group_id": [3],
            "birthdate": draw(st.none() | date_text()),
            "two_factor_enable": draw(st.booleans()),
            "role_data": {"id": 2, "name": "admin", "order": 1, "web": True, "mobile": False},
        }
    return note


@st.composite
def field_changes(draw: st.DrawFn) -> dict[str, Any]:
    form = draw(st.sampled_from(ANSWERABLE))
    name: Any = draw(st.sampled_from([form.label, form.id, form.label.upper()]))
    if form.type == "checkbox":
        op = draw(st.sampled_from(["set", "add", "remove", "clear"]))
        if op == "clear":
            return {"field": name, "op": op}
        refs = draw(
            st.lists(
                st.sampled_from(form.refvalues), min_size=1, max_size=3, unique_by=lambda r: r.id
            )
        )
        values = [draw(st.sampled_from([r.value, r.label])) for r in refs]
        return {"field": name, "op": op, "value": values if op == "set" else values[0]}
    if form.type in ("radio", "select"):
        op = draw(st.sampled_from(["set", "remove", "clear"]))
        ref = draw(st.sampled_from(form.refvalues))
        return (
            {"field": name, "op": op}
            if op == "clear"
            else {"field": name, "op": op, "value": ref.value}
        )
    value: Any = {
        "text": draw(names),
        "numeric": draw(st.integers(1, 20)),
        "integer": draw(st.integers(0, 130)),
        "date": draw(date_text()),
    }[form.type]
    op = draw(st.sampled_from(["set", "clear"]))
    change: dict[str, Any] = {"field": name, "op": op}
    if op != "clear":
        change["value"] = value
    survey = None if form.section == "custom_fields" else draw(st.none() | st.integers(1, 4))
    return change if survey is None else change | {"survey_id": survey}


@st.composite
def change_events(draw: st.DrawFn, event_id: str = "e") -> ChangeEvent:
    body: dict[str, Any] = {
        "event_id": event_id,
        "source": "prop",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": 1},
    }
    patch: dict[str, Any] = {}
    for name in draw(
        st.lists(st.sampled_from(["firstname", "surname", "phone", "nationality"]), unique=True)
    ):
        patch[name] = draw(st.none() | names)
    if draw(st.booleans()):
        patch["birthdate"] = draw(date_text())
    if draw(st.booleans()):
        patch["black_list"] = draw(st.booleans())
    if draw(st.booleans()):
        patch[draw(st.sampled_from(["age_category", "user_contact_id"]))] = draw(
            st.none() | st.integers(0, 99)
        )
    if draw(st.booleans()):
        patch["address"] = draw(
            st.none()  # clears every part
            | st.builds(
                lambda part, text: {part: text},
                st.sampled_from(["city", "street", "floor"]),
                st.none() | names,
            )
        )
    if patch:
        body["set"] = patch
    added = draw(st.lists(tag_names, unique_by=tag_key, max_size=2))
    removed = [
        t
        for t in draw(st.lists(tag_names, unique_by=tag_key, max_size=2))
        if tag_key(t) not in {tag_key(a) for a in added}
    ]
    if added or removed:
        body["tags"] = {"add": added, "remove": removed}
    body["fields"] = draw(st.lists(field_changes(), max_size=4))
    body["notes"] = [{"data": text} for text in draw(st.lists(names, max_size=2))]
    return ChangeEvent.model_validate(body)


def named_paths(event: ChangeEvent) -> set[str]:
    """The paths an event names, worked out independently of the assembly code."""
    paths: set[str] = set()
    for name, value in event.set_fields().items():
        if name == "address":
            parts = [*value] if isinstance(value, dict) else [*ADDRESS.written, "citycode"]
            paths |= {f"address.{part}" for part in parts}
        else:
            paths.add(name)
    if event.tags:
        paths |= {f"tags[{tag_key(t)}]" for t in (*event.tags.add, *event.tags.remove)}
    for change in event.fields:
        form = CATALOG.find(change.field)
        list_name = "custom_fields" if form.section == "custom_fields" else "formdatas"
        paths.add(f"{list_name}[form_id={form.id}]")
    return paths


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """What GET would return after Qomon stored `body`: new ids, server fields, microseconds."""
    stored = copy.deepcopy(body)
    stored |= {"id": 1, "UpdatedAt": "2026-11-24T10:00:00.123456Z"}
    for list_name in ("formdatas", "custom_fields"):
        stored[list_name] = [
            dict(a, id=5000 + i, deleted_at=None) for i, a in enumerate(stored.get(list_name, []))
        ]
    stored["notes"] = [
        dict(n, id=n.get("id", 9000 + i)) for i, n in enumerate(stored.get("notes", []))
    ]
    return stored


def written_dates(contact: dict[str, Any]) -> list[str]:
    dates = [contact["birthdate"]] if contact.get("birthdate") else []
    for list_name in ("formdatas", "custom_fields"):
        for entry in contact.get(list_name, []):
            if entry.get("date"):
                dates.append(entry["date"])
            if (
                CATALOG.get(entry["form_id"]) is not None
                and CATALOG.by_id[entry["form_id"]].type == "date"
            ):
                dates.append(entry["data"])
    return dates


@PROPERTY_SETTINGS
@given(read_contacts())
def test_an_empty_change_is_unchanged(contact: dict[str, Any]) -> None:
    empty = ChangeEvent.model_validate(
        {
            "event_id": "e",
            "source": "p",
            "occurred_at": "2026-01-01T00:00:00Z",
            "contact": {"id": 1},
        }
    )
    assert assemble_contact(contact, CATALOG, [empty]) == Unchanged()


@PROPERTY_SETTINGS
@given(read_contacts(), change_events())
def test_a_change_leaves_every_field_it_does_not_name_as_it_was(
    contact: dict[str, Any], event: ChangeEvent
) -> None:
    outcome = assemble_contact(contact, CATALOG, [event])
    assert not isinstance(outcome, Rejected), outcome
    if isinstance(outcome, Unchanged):
        return
    # As Qomon holds it, before any translation: a key the translation dropped would show.
    before = fingerprint(contact, CATALOG)
    after = fingerprint(outcome.contact, CATALOG)
    named = named_paths(event)
    for path in before.keys() | after.keys():
        if before.get(path) != after.get(path):
            assert path in named or path in {note_path(n.data) for n in event.notes}, path
    # Notes are only ever added: no note text loses an occurrence.
    for path in (p for p in before if p.startswith("notes[")):
        kept = dict(after.get(path, frozenset()))
        assert all(kept.get(flags, 0) >= count for flags, count in before[path]), path


@PROPERTY_SETTINGS
@given(read_contacts(), change_events("e1"), change_events("e2"))
def test_folding_equals_applying_one_by_one(
    contact: dict[str, Any], first: ChangeEvent, second: ChangeEvent
) -> None:
    folded = assemble_contact(contact, CATALOG, [first, second])
    step = assemble_contact(contact, CATALOG, [first])
    assert isinstance(step, Replace | Unchanged)
    between = echo(step.contact) if isinstance(step, Replace) else contact
    stepped = assemble_contact(between, CATALOG, [second])
    assert isinstance(folded, Replace | Unchanged)
    assert isinstance(stepped, Replace | Unchanged)
    folded_result = (
        folded.contact if isinstance(folded, Replace) else to_write_shape(contact, CATALOG)
    )
    stepped_result = (
        stepped.contact if isinstance(stepped, Replace) else to_write_shape(between, CATALOG)
    )
    # Equal up to what Qomon stamps itself (a note's id once saved), as the echo check reads.
    assert same_meaning(folded_result, stepped_result, CATALOG) == []


@PROPERTY_SETTINGS
@given(read_contacts(), change_events())
def test_every_written_date_has_milliseconds(contact: dict[str, Any], event: ChangeEvent) -> None:
    outcome = assemble_contact(contact, CATALOG, [event])
    if isinstance(outcome, Replace):
        for text in written_dates(outcome.contact):
            assert QOMON_DATE.match(text), text


@PROPERTY_SETTINGS
@given(read_contacts(), change_events())
def test_qomon_storing_the_body_reads_back_as_unchanged(
    contact: dict[str, Any], event: ChangeEvent
) -> None:
    outcome = assemble_contact(contact, CATALOG, [event])
    if isinstance(outcome, Replace):
        empty = event.model_copy(update={"set": None, "tags": None, "fields": (), "notes": ()})
        assert assemble_contact(echo(outcome.contact), CATALOG, [empty]) == Unchanged()


@PROPERTY_SETTINGS
@given(read_contacts(), change_events())
def test_every_body_matches_the_documented_write_model(
    contact: dict[str, Any], event: ChangeEvent
) -> None:
    outcome = assemble_contact(contact, CATALOG, [event])
    assert not isinstance(outcome, Rejected), outcome
    if isinstance(outcome, Replace):
        assert body_problems(outcome.contact, ShapePolicy().passthrough) == []


@PROPERTY_SETTINGS
@given(read_contacts(), change_events())
def test_the_echo_of_our_own_write_passes_the_echo_check(
    contact: dict[str, Any], event: ChangeEvent
) -> None:
    outcome = assemble_contact(contact, CATALOG, [event])
    if isinstance(outcome, Replace):
        assert same_meaning(outcome.contact, echo(outcome.contact), CATALOG, ShapePolicy()) == []


# -- one name, whatever its Unicode form and case --------------------------------------------

accented = (
    st.text(alphabet="aeiouyéèêëàâîïôöùûüçñœÉÈÀÇ -", min_size=1, max_size=14)
    .map(str.strip)
    .filter(bool)
)
UnicodeForm = Literal["NFC", "NFD"]
unicode_forms: st.SearchStrategy[UnicodeForm] = st.sampled_from(["NFC", "NFD"])
cases = st.sampled_from([str, str.upper, str.lower, str.title])


def spelled(name: str, form: UnicodeForm, case: Any) -> str:
    return unicodedata.normalize(form, case(unicodedata.normalize(form, name)))


def tag_event(**tags: list[str]) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "event_id": "t",
            "source": "prop",
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": 1},
            "tags": tags,
        }
    )


@PROPERTY_SETTINGS
@given(read_contacts(), accented, unicode_forms, unicode_forms, cases)
def test_a_held_tag_sent_in_any_unicode_form_or_case_is_that_tag(
    contact: dict[str, Any], name: str, held_form: UnicodeForm, sent_form: UnicodeForm, case: Any
) -> None:
    held = unicodedata.normalize(held_form, name)
    contact["tags"] = [t for t in contact["tags"] if tag_key(t["name"]) != tag_key(name)]
    contact["tags"].append({"name": held, "color": "#000"})
    sent = spelled(name, sent_form, case)

    assert assemble_contact(contact, CATALOG, [tag_event(add=[sent])]) == Unchanged()
    removed = assemble_contact(contact, CATALOG, [tag_event(remove=[sent])])
    assert isinstance(removed, Replace), removed
    assert [t["name"] for t in removed.contact["tags"]] == [
        t["name"] for t in contact["tags"] if t["name"] != held
    ]


@PROPERTY_SETTINGS
@given(accented, accented, unicode_forms, unicode_forms, cases)
def test_form_and_choice_labels_are_found_in_any_unicode_form_or_case(
    label: str, choice: str, held_form: UnicodeForm, sent_form: UnicodeForm, case: Any
) -> None:
    form = Form.model_validate(
        {
            "id": 70,
            "type": "radio",
            "label": unicodedata.normalize(held_form, label),
            "refvalues": [
                {"id": 701, "value": "v", "label": unicodedata.normalize(held_form, choice)}
            ],
        }
    )
    catalog = FormCatalog([form])
    assert catalog.find(spelled(label, sent_form, case)) is form
    assert catalog.choice(form, spelled(choice, sent_form, case)).id == 701


TEXT_FIELDS = ("firstname", "surname", "married_name", "nationality", "birth_city")


@PROPERTY_SETTINGS
@given(read_contacts(), unicode_forms)
def test_text_set_again_in_any_unicode_form_is_no_change(
    contact: dict[str, Any], sent_form: UnicodeForm
) -> None:
    held = to_write_shape(contact, CATALOG)
    again = {
        name: unicodedata.normalize(sent_form, held[name])
        for name in TEXT_FIELDS
        if isinstance(held.get(name), str)
    }
    event = ChangeEvent.model_validate(
        {
            "event_id": "t",
            "source": "prop",
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": 1},
            "set": again,
        }
    )
    assert assemble_contact(contact, CATALOG, [event]) == Unchanged()


# -- an answer naming no survey speaks of the whole field ------------------------------------

FREE_INPUT = frozenset({"text", "numeric", "integer", "date"})


def same_answer(kind: str, data: Any) -> st.SearchStrategy[Any]:
    """`data` (as Qomon holds it) spelled another way that means the same."""
    if kind == "text":
        return unicode_forms.map(lambda f: unicodedata.normalize(f, data))
    if kind == "date":
        return st.sampled_from([data, to_qomon_date(data), parse_instant(data).isoformat()])
    number = as_number(data)
    assert number is not None
    spelled = [data, number, str(number).replace(".", ",")]
    return st.sampled_from(spelled + ([int(number)] if number.is_integer() else []))


@PROPERTY_SETTINGS
@given(read_contacts(), st.data())
def test_a_value_the_field_holds_answered_without_a_survey_is_no_change(
    contact: dict[str, Any], data: st.DataObject
) -> None:
    shape = to_write_shape(contact, CATALOG)
    held = [
        answer
        for name in ("formdatas", "custom_fields")
        for answer in shape.get(name) or []
        if CATALOG.by_id[answer["form_id"]].type in FREE_INPUT
    ]
    assume(held)
    answer = data.draw(st.sampled_from(held))
    form = CATALOG.by_id[answer["form_id"]]
    change = {"field": form.id, "value": data.draw(same_answer(form.type, answer["data"]))}
    body: dict[str, Any] = {
        "event_id": "s",
        "source": "prop",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": 1},
        "fields": [change],
    }

    assert assemble_contact(contact, CATALOG, [ChangeEvent.model_validate(body)]) == Unchanged()
    beside = ChangeEvent.model_validate(body | {"set": {"firstname": "Quinn"}})
    outcome = assemble_contact(contact, CATALOG, [beside])
    assert isinstance(outcome, Replace), outcome
    assert outcome.changed == ("firstname",)
    path = (
        f"{'custom_fields' if form.section == 'custom_fields' else 'formdatas'}[form_id={form.id}]"
    )
    assert fingerprint(outcome.contact, CATALOG)[path] == fingerprint(contact, CATALOG)[path]


# -- both naming generations of a field, meaning the same ------------------------------------


@st.composite
def same_meaning_as(draw: st.DrawFn, value: Any) -> Any:
    """`value` as the other generation could spell it: lists in another order, entries
    with other ids, text in another Unicode form."""
    if isinstance(value, str):
        return unicodedata.normalize(draw(unicode_forms), value)
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return draw(st.permutations([dict(item, id=item.get("id", 0) + 7) for item in value]))
    if isinstance(value, list):
        return draw(st.permutations(value))
    return value


@st.composite
def with_both_generations(draw: st.DrawFn, contact: dict[str, Any]) -> dict[str, Any]:
    both = copy.deepcopy(contact)
    for node, target in [(CONTACT, both), *((NOTE, note) for note in both["notes"])]:
        for old, new in node.legacy.items():
            held = [name for name in (old, new) if not is_empty(target.get(name))]
            if len(held) == 1 and draw(st.booleans()):
                twin = new if held[0] == old else old
                target[twin] = draw(same_meaning_as(target[held[0]]))
    return both


@PROPERTY_SETTINGS
@given(read_contacts(), change_events(), st.data())
def test_both_generations_meaning_the_same_assemble_as_one(
    contact: dict[str, Any], event: ChangeEvent, data: st.DataObject
) -> None:
    both = data.draw(with_both_generations(contact))
    plain = assemble_contact(contact, CATALOG, [event])
    twinned = assemble_contact(both, CATALOG, [event])
    assert type(twinned) is type(plain), twinned
    if isinstance(plain, Replace):
        assert isinstance(twinned, Replace)
        assert twinned.changed == plain.changed
        assert same_meaning(plain.contact, twinned.contact, CATALOG) == []
