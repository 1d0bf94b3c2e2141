"""The change event v1: what it accepts, what it refuses (and says why), its schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync_dev.schema import SCHEMA_FILE, render
from tests.conftest import EVENTS, PSEUDONYMS

MINIMAL = {
    "event_id": "d-1",
    "source": "tally",
    "occurred_at": "2026-11-24T10:00:00Z",
    "contact": {"mail": "a@example.org"},
}


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        ChangeEvent.model_validate(body)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


def test_minimal_event_is_valid_with_safe_defaults() -> None:
    event = ChangeEvent.model_validate(MINIMAL)
    assert event.if_missing == "dead_letter"
    assert event.contact.group(PSEUDONYMS) == "mail:" + PSEUDONYMS(" A@Example.org")
    assert "example.org" not in event.contact.group(PSEUDONYMS)
    assert event.contact.person == (None, "a@example.org")
    assert event.set_fields() == {}


def test_merge_patch_keeps_only_named_keys_and_nulls() -> None:
    event = ChangeEvent.model_validate(
        {**MINIMAL, "set": {"phone": None, "address": {"city": "Lyon", "floor": None}}}
    )
    assert event.set_fields() == {"phone": None, "address": {"city": "Lyon", "floor": None}}


@pytest.mark.parametrize(
    ("change", "location", "reason"),
    [
        ({"contact": {}}, "contact", "needs an `id` or a `mail`"),
        ({"contact": {"mail": "not-an-address"}}, "contact.mail", "is not an e-mail address"),
        ({"contact": {"id": 0}}, "contact.id", "greater than or equal to 1"),
        ({"occurred_at": "2026-11-24T10:00:00"}, "occurred_at", "needs a time zone"),
        (
            {"set": {"favourite_colour": "blue"}},
            "set.favourite_colour",
            "Extra inputs are not permitted",
        ),
        ({"set": {"gender": "X"}}, "set.gender", "Input should be 'M', 'F' or 'O'"),
        (
            {"set": {"address": {"planet": "Mars"}}},
            "set.address.planet",
            "Extra inputs are not permitted",
        ),
        ({"tags": {"add": ["a"], "remove": ["A"]}}, "tags", "both added and removed"),
        (
            {"fields": [{"field": "Age", "op": "clear", "value": 3}]},
            "fields.0",
            "`clear` takes no value",
        ),
        ({"fields": [{"field": "Age"}]}, "fields.0", "`set` needs a value"),
        (
            {"fields": [{"field": "Topics", "op": "add", "value": ["a", "b"]}]},
            "fields.0",
            "only for `set`",
        ),
        ({"event_id": "has space"}, "event_id", "should match pattern"),
        ({"source": "Has Caps"}, "source", "should match pattern"),
        ({"if_missing": "ignore"}, "if_missing", "'dead_letter', 'create' or 'skip'"),
        ({"schema_version": 2}, "schema_version", "Input should be 1"),
    ],
)
def test_invalid_events_are_refused_naming_the_field(
    change: dict[str, Any], location: str, reason: str
) -> None:
    errors = errors_of({**MINIMAL, **change})
    assert location in errors, errors
    assert reason in errors[location]


def test_a_boolean_is_not_a_number_answer() -> None:
    errors = errors_of({**MINIMAL, "fields": [{"field": "Age", "value": True}]})
    assert any(key.startswith("fields.0.value") for key in errors)


def test_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), "run: qomon-sync schema --write"


def test_sample_events_validate_against_model_and_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    samples = sorted((EVENTS / "changes").glob("*.json"))
    assert samples, "events/changes/ holds the sample change events"
    for path in samples:
        body = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(body, schema)
        ChangeEvent.model_validate(body)


def test_schema_refuses_what_the_model_refuses() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**MINIMAL, "set": {"favourite_colour": "blue"}}, schema)
