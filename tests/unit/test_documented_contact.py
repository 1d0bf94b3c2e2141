"""Qomon's documented contact round-trips: every documented key keeps its fate and type.

The fixtures in events/qomon-docs/ are the request and response bodies of Qomon's PATCH
reference page, as published. Given the documented response as the contact Qomon holds,
a no-op is `unchanged` and one change is a replacement whose body holds exactly the
documented request's keys, each with the documented type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qomon_sync.domain import assembly, contact_shape
from qomon_sync.domain.assembly import Rejected, Replace, Unchanged, assemble_contact
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_fields import inventory
from qomon_sync.domain.contact_meaning import note_path
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.replacement_body import body_problems
from qomon_sync_dev.cli import main
from tests.conftest import EVENTS, ROOT

DOCS = EVENTS / "qomon-docs"
REQUEST = json.loads((DOCS / "patch-request.json").read_text())["data"]["contact"]
RESPONSE = json.loads((DOCS / "patch-response.json").read_text())["data"]["contact"]
NO_FORMS = FormCatalog([])
# In the inventory but not in the documented request: older schemas document them.
OLDER_SCHEMA_WRITES = {"gender", "custom_fields[].date"}


def event(**changes: Any) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "event_id": "docs-1",
            "source": "test",
            "occurred_at": "2026-12-01T09:00:00Z",
            "contact": {"id": 1},
            **changes,
        }
    )


def leaf_paths(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, JSON type) of every key, lists as `[]`, in the inventory's path style."""
    if isinstance(value, dict):
        for key, part in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path, _json_type(part)
            yield from leaf_paths(part, path)
    elif isinstance(value, list):
        for item in value:
            yield from leaf_paths(item, f"{prefix}[]")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names: dict[type, str] = {dict: "object", list: "list", str: "string"}
    return names.get(type(value), "null")


def test_every_documented_response_key_has_exactly_one_fate() -> None:
    fates: dict[str, list[str]] = {}
    for row in inventory():
        fates.setdefault(row.path, []).append(row.fate)
    assert all(len(fate) == 1 for fate in fates.values()), fates
    unplaced = [path for path, _ in leaf_paths(RESPONSE) if path not in fates]
    assert unplaced == []


def test_the_written_keys_are_the_documented_request_keys() -> None:
    documented = {path for path, _ in leaf_paths(REQUEST)}
    written = {row.path for row in inventory() if row.fate == "written"}
    assert written - OLDER_SCHEMA_WRITES == documented


def test_the_documented_response_with_a_no_op_is_unchanged() -> None:
    outcome = assemble_contact(RESPONSE, NO_FORMS, [event(set={"mail": RESPONSE["mail"]})])
    assert outcome == Unchanged()


def test_the_documented_response_with_its_email_in_another_case_is_unchanged() -> None:
    outcome = assemble_contact(RESPONSE, NO_FORMS, [event(set={"mail": RESPONSE["mail"].upper()})])
    assert outcome == Unchanged()


def test_the_documented_response_with_one_change_is_the_documented_request() -> None:
    outcome = assemble_contact(RESPONSE, NO_FORMS, [event(set={"mobile": "+33600000042"})])
    assert isinstance(outcome, Replace), outcome
    assert outcome.changed == ("mobile",)
    body = outcome.contact
    # Same keys at every depth, each with the documented JSON type.
    assert sorted(leaf_paths(body)) == sorted(leaf_paths(REQUEST))
    note = body["notes"][0]
    assert note["id"] == 1
    assert note["created_at"] == "2023-11-07T05:31:56.000Z"
    assert note["user"]["role_data"]["order"] == 1
    assert "id" not in note["user"]  # the request leaves the author's id out
    assert body["age_category"] == 1
    assert body["user_contact_id"] == 123
    assert body["formdatas"][0]["survey_id"] == 1
    assert body_problems(body) == []


def with_both_generations(contact: dict[str, Any]) -> dict[str, Any]:
    """The contact as a GET mixing both naming generations would give it: each field of
    the older documentation beside its current twin, meaning the same (entries carry
    other ids, lists come in another order)."""
    both: dict[str, Any] = json.loads(json.dumps(contact))
    both["birthcity"], both["birthcountry"] = contact["birth_city"], contact["birth_country"]
    both["birthdept"] = contact["birth_dept"]
    both["actions_ids"] = list(reversed(contact["action_ids"]))
    both["customfields"] = [
        dict(entry, id=entry["id"] + 100) for entry in reversed(contact["custom_fields"])
    ]
    for note in both["notes"]:
        note["content"] = note["data"]
    return both


def test_the_documented_response_holding_both_generations_is_read_as_one() -> None:
    both = with_both_generations(RESPONSE)
    assert assemble_contact(both, NO_FORMS, [event()]) == Unchanged()
    outcome = assemble_contact(both, NO_FORMS, [event(set={"mobile": "+33600000042"})])
    assert isinstance(outcome, Replace), outcome
    assert outcome.changed == ("mobile",)
    # Nothing lost, nothing doubled: exactly the documented request's keys and types.
    assert sorted(leaf_paths(outcome.contact)) == sorted(leaf_paths(REQUEST))
    assert outcome.contact["custom_fields"] == [
        {k: v for k, v in RESPONSE["custom_fields"][0].items() if k != "id"}
    ]


def test_the_documented_response_whose_generations_disagree_is_refused() -> None:
    both = with_both_generations(RESPONSE)
    both["actions_ids"] = [2]
    outcome = assemble_contact(both, NO_FORMS, [event(set={"mobile": "+33600000042"})])
    assert isinstance(outcome, Rejected)
    assert (outcome.code, outcome.fields) == ("conflicting_names", ("action_ids",))


def test_the_request_example_is_valid_but_for_its_dates_precision() -> None:
    # The page's example writes `2023-11-07T05:31:56Z`; its text documents the input
    # format `YYYY-MM-DD'T'HH:mm:ss.SSS'Z'`, which is what qomon-sync always writes.
    problems = body_problems(REQUEST)
    assert problems
    assert all("should match pattern" in problem for problem in problems), problems
    dated = json.loads(json.dumps(REQUEST).replace(":56Z", ":56.000Z"))
    assert body_problems(dated) == []


@pytest.mark.parametrize(
    ("contact", "path"),
    [
        ({"age_category": "3"}, "age_category"),
        ({"user_contact_id": 1.5}, "user_contact_id"),
        ({"black_list": 1}, "black_list"),
        ({"action_ids": ["7"]}, "action_ids[0]"),
        ({"birthdate": "1-01-01T00:00:00.000Z"}, "birthdate"),
        ({"birthdate": "2023-11-07T05:31:56.123456Z"}, "birthdate"),
        ({"notes": [{"data": "x", "pinned": "yes"}]}, "notes[0].pinned"),
        ({"notes": [{"data": "x", "user": {"group_id": [True]}}]}, "notes[0].user.group_id[0]"),
        ({"formdatas": [{"form_id": 1, "form_ref_id": 2, "survey_id": "9"}]}, "formdatas[0]"),
        ({"tags": [{"name": "a", "color": "#fff"}]}, "tags[0].color"),
    ],
)
def test_the_write_model_names_the_path_of_a_wrong_type(contact: dict[str, Any], path: str) -> None:
    problems = body_problems(contact)
    assert problems, contact
    assert any(problem.startswith(path) for problem in problems), problems


def test_passthrough_keys_are_left_out_of_the_type_check() -> None:
    contact = {"external_id": 5, "address": {"citycode": 69123}, "notes": [{"data": "x"}]}
    assert body_problems(contact, ["external_id", "address.citycode"]) == []
    assert body_problems(contact) != []


def test_the_inventory_table_in_the_docs_is_the_code_inventory() -> None:
    page = (ROOT / "docs" / "change-event.md").read_text(encoding="utf-8")
    table = page.split("<!-- inventory -->")[1]
    rows = set(re.findall(r"^\| `([^`]+)` \| ([a-z-]+) \|", table, flags=re.MULTILINE))
    assert rows == {(row.path, row.fate) for row in inventory()}


def test_preview_on_the_documented_response_keeps_notes_and_integers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    contact = tmp_path / "contact.json"
    contact.write_text(json.dumps({"status": "success", "data": {"contact": RESPONSE}}))
    code = main(["preview", "--contact", str(contact), "--change", str(DOCS / "new-mobile.json")])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["action"] == "replace"
    body = result["body"]["data"]["contact"]
    assert body["mobile"] == "+33 6 00 00 00 42"
    note = body["notes"][0]
    assert (note["id"], note["created_at"], note["updated_at"]) == (
        1,
        "2023-11-07T05:31:56.000Z",
        "2023-11-07T05:31:56.000Z",
    )
    assert note["user"]["mail"] == RESPONSE["notes"][0]["user"]["mail"]
    assert isinstance(body["age_category"], int)
    assert isinstance(body["user_contact_id"], int)


def test_a_translation_that_drops_a_key_is_stopped_by_the_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = contact_shape.to_write_shape

    def losing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        shaped = original(*args, **kwargs)
        shaped["notes"][0].pop("created_at")  # a translator bug: a documented key lost
        return shaped

    monkeypatch.setattr(assembly, "to_write_shape", losing)
    outcome = assemble_contact(RESPONSE, NO_FORMS, [event(set={"mobile": "+33600000042"})])
    assert isinstance(outcome, Rejected)
    assert outcome.code == "data_loss_guard"
    assert outcome.fields == (note_path(RESPONSE["notes"][0]["data"]),)


def test_a_body_off_the_write_model_is_never_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    original = contact_shape.to_write_shape

    def stringly(*args: Any, **kwargs: Any) -> dict[str, Any]:
        shaped = original(*args, **kwargs)
        shaped["age_category"] = str(shaped["age_category"])  # what 0.x used to send
        return shaped

    monkeypatch.setattr(assembly, "to_write_shape", stringly)
    outcome = assemble_contact(RESPONSE, NO_FORMS, [event(set={"mobile": "+33600000042"})])
    assert isinstance(outcome, Rejected)
    assert outcome.code == "invalid_replacement"
    assert outcome.fields == ("age_category",)
    assert "+33" not in outcome.detail
