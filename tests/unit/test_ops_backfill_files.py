"""What `qomon-sync backfill` reads: CSV rows through a column map, JSONL change events and
JSONL source deliveries, each with a stable event id; bad rows named, never quoted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qomon_sync_ops.backfill import read_rows
from qomon_sync_ops.masking import MASK, masked_body
from qomon_sync_ops.target import OpsError
from tests.conftest import PSEUDONYMS, ROOT


def test_a_csv_row_becomes_one_change_event_and_empty_cells_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "E-mail,Portable,Soutien,Étiquettes\n"
        "ana.martin@example.org,+33600000101,Très favorable,bénévole; porte-à-porte\n"
        "bob@example.org,,,\n"
        "not-an-address,,,\n",
        encoding="utf-8",
    )
    columns = {
        "E-mail": "contact.mail",
        "Portable": "set.mobile",
        "Soutien": "field:Niveau de soutien",
        "Étiquettes": "tags.add",
    }
    first, second, bad = read_rows(path, "import", columns, None)
    [event] = first.events
    assert event.source == "import"
    assert event.set_fields() == {"mobile": "+33600000101"}
    assert event.fields[0].field == "Niveau de soutien"
    assert event.tags is not None
    assert event.tags.add == ("bénévole", "porte-à-porte")
    assert second.events[0].set is None
    assert bad.events == []
    assert bad.problem is not None
    assert "contact.mail" in bad.problem
    assert "not-an-address" not in bad.problem


def test_an_unmapped_csv_column_is_refused_with_the_targets(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("Nom,E-mail\nAna,a@example.org\n", encoding="utf-8")
    with pytest.raises(OpsError, match=r"'Nom'.*--column HEADER=TARGET"):
        read_rows(path, "import", {"E-mail": "contact.mail"}, None)


def test_jsonl_change_events_keep_their_ids_and_get_the_source(tmp_path: Path) -> None:
    sample = json.loads((ROOT / "events/changes/01-tally-consent-and-support.json").read_text())
    path = tmp_path / "e.jsonl"
    without_id = {k: v for k, v in sample.items() if k not in {"event_id", "occurred_at"}}
    path.write_text(json.dumps(sample) + "\n\n" + json.dumps(without_id) + "\n", encoding="utf-8")
    first, second = read_rows(path, "import", {}, None)
    assert first.events[0].event_id == sample["event_id"]
    assert first.events[0].source == "import"
    assert second.number == 2
    assert second.events[0].event_id.startswith("e-2-")
    assert read_rows(path, "import", {}, None)[1].events[0].event_id == second.events[0].event_id


def test_jsonl_deliveries_go_through_the_sources_mapping(tmp_path: Path) -> None:
    delivery = json.loads((ROOT / "events/webhooks/tally/form-response.json").read_text())
    path = tmp_path / "tally.jsonl"
    path.write_text(json.dumps(delivery) + "\n" + '{"eventType": "nope"}\n', encoding="utf-8")
    good, bad = read_rows(path, "tally", {}, ROOT / "functions" / "sources.yaml")
    assert good.events
    assert {e.source for e in good.events} == {"tally"}
    assert bad.events == []
    assert bad.problem


def test_a_shown_event_masks_every_personal_value() -> None:
    body = (ROOT / "events/changes/01-tally-consent-and-support.json").read_text()
    shown = json.dumps(masked_body(body, PSEUDONYMS), ensure_ascii=False)
    for personal in ("ana.martin@example.org", "+33600000101", "bénévole", "Souhaite", "Très"):
        assert personal not in shown
    assert MASK in shown
    assert "Niveau de soutien" in shown  # which form: not personal
    assert masked_body("{not json", PSEUDONYMS) == "<not JSON: 9 characters, not shown>"


def test_a_row_the_queue_would_refuse_is_not_queued_and_its_problem_names_the_field() -> None:
    """The backfill checks its messages with the ingest's own check (changes_queue)."""
    from datetime import UTC, datetime

    from qomon_sync.domain.change_event import BasicFieldsPatch, ChangeEvent, ContactRef
    from qomon_sync_ops.backfill import Row, _entries

    slipped = ChangeEvent.model_construct(  # built without validation: only the last look sees it
        event_id="r-1",
        source="import",
        occurred_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
        contact=ContactRef(id=1),
        set=BasicFieldsPatch.model_construct(firstname="Ana\uffff"),
    )
    row = Row(1, [slipped])
    assert _entries(row, "import", PSEUDONYMS) == []
    assert row.problem is not None
    assert "`set.firstname`" in row.problem
    assert "U+FFFF" in row.problem
    assert "Ana" not in row.problem

    huge = ChangeEvent.model_validate(
        {
            "event_id": "r-2",
            "source": "import",
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": 2},
            "notes": [{"data": "Disponible le samedi. " * 90}] * 150,  # 150 notes of 2 KB
        }
    )
    row = Row(2, [huge])
    assert _entries(row, "import", PSEUDONYMS) == []
    assert row.problem == "a change event exceeds the queue's message size"
