"""Issue 18, point 1: a change event reaches the sync with exactly the meaning the ingest
accepted. An explicit `null` (clear the field) and a field left out (leave it alone) are
two meanings, and every path that writes a message body keeps them apart: the ingest, the
backfill, and a redrive (which sends the letter's body as it was)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qomon_sync.adapters.changes_queue import queue_entry
from qomon_sync.application.ingest import accept
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.handlers.ingest import handle
from qomon_sync.sources.base import WebhookRequest
from qomon_sync_ops import letters as dl
from qomon_sync_ops.backfill import Row, _entries
from tests.conftest import PSEUDONYMS
from tests.unit.ingest_harness import SOURCES, local_ingest, queued, signed_event

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
OR_NULL = st.one_of(st.none(), TEXT)
ADDRESS = st.fixed_dictionaries(
    {},
    optional={part: OR_NULL for part in ("street", "city", "postalcode", "floor", "infos")},
)
BASIC = st.fixed_dictionaries(
    {},
    optional={
        "firstname": OR_NULL,
        "phone": OR_NULL,
        "mobile": OR_NULL,
        "mail": st.one_of(st.none(), st.just("new.address@example.org")),
        "gender": st.one_of(st.none(), st.sampled_from(["M", "F", "O"])),
        "birthdate": st.one_of(st.none(), st.just("1990-04-01T00:00:00Z")),
        "age_category": st.one_of(st.none(), st.integers(0, 9)),
        "black_list": st.one_of(st.none(), st.booleans()),
        "address": st.one_of(st.none(), ADDRESS),
    },
)
FIELD = st.one_of(
    st.fixed_dictionaries(
        {"field": st.one_of(TEXT, st.integers(1, 10**6)), "op": st.just("clear")},
        optional={"value": st.none(), "survey_id": st.one_of(st.none(), st.integers(1, 99))},
    ),
    st.fixed_dictionaries(
        {"field": TEXT, "value": st.one_of(TEXT, st.integers(-5, 5))},
        optional={
            "op": st.sampled_from(["set", "add", "remove"]),
            "date": st.one_of(st.none(), st.just("2026-11-24T10:00:00Z")),
        },
    ),
)
EVENTS = st.fixed_dictionaries(
    {
        "event_id": st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
        "source": st.just("generic"),
        "occurred_at": st.just("2026-11-24T10:00:00+01:00"),
        "contact": st.one_of(
            st.fixed_dictionaries({"id": st.integers(1, 10**7)}, optional={"mail": st.none()}),
            st.fixed_dictionaries({"mail": st.just("Ana.Martin@Example.org")}),
        ),
    },
    optional={
        "set": st.one_of(st.none(), BASIC),
        "tags": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {}, optional={"add": st.lists(TEXT, max_size=2), "remove": st.just([])}
            ),
        ),
        "fields": st.lists(FIELD, max_size=2),
        "notes": st.lists(st.fixed_dictionaries({"data": TEXT}), max_size=1),
        "if_missing": st.sampled_from(["dead_letter", "create", "skip"]),
    },
)


def meaning(event: ChangeEvent) -> Any:
    """All an event says: every field its maker set, `null` included, and nothing else."""
    return event.model_dump(mode="json", exclude_unset=True)


def assert_same_meaning(body: str, event: ChangeEvent) -> None:
    back = ChangeEvent.model_validate_json(body)
    assert meaning(back) == meaning(event)
    assert back.set_fields() == event.set_fields()


@settings(max_examples=300, deadline=None)
@given(data=EVENTS)
def test_any_change_event_survives_its_queue_body(data: dict[str, Any]) -> None:
    event = ChangeEvent.model_validate(data)
    assert_same_meaning(queue_entry(event, "d", pseudonyms=PSEUDONYMS)["MessageBody"], event)


@settings(max_examples=100, deadline=None)
@given(data=EVENTS)
def test_any_backfilled_change_event_survives_its_queue_body(data: dict[str, Any]) -> None:
    event = ChangeEvent.model_validate(data)
    [entry] = _entries(Row(1, [event]), "generic", PSEUDONYMS)
    assert_same_meaning(entry["MessageBody"], event)


@settings(max_examples=100, deadline=None)
@given(data=EVENTS)
def test_any_generic_delivery_is_queued_with_its_meaning(data: dict[str, Any]) -> None:
    """The ingest's own path (authentication off: the signature is another test's)."""
    source = SOURCES["generic"]
    body = json.dumps(data).encode()
    request = _request(body)
    accepted = accept(source, request, None, pseudonyms=PSEUDONYMS, max_bytes=262_144,
                      authenticate=False)  # fmt: skip
    [message] = accepted.messages
    assert_same_meaning(message["MessageBody"], ChangeEvent.model_validate(data))


@settings(max_examples=100, deadline=None)
@given(data=EVENTS)
def test_a_redrive_sends_the_letters_body_as_it_was(data: dict[str, Any]) -> None:
    """The sync dead-letters the staged body intact (DeadLetter.body); the redrive sends
    the letter's body back as it was read."""
    body = queue_entry(ChangeEvent.model_validate(data), "d", pseudonyms=PSEUDONYMS)["MessageBody"]
    read = dl.letter_from(
        {"MessageId": "m-1", "ReceiptHandle": "r", "Body": body,
         "MessageAttributes": {"error_code": {"StringValue": "contact_not_found"}},
         "Attributes": {"MessageGroupId": "id:1", "SentTimestamp": "1700000000000"}},
    )  # fmt: skip
    entry = dl._entry(0, read)
    assert entry["MessageBody"] == body
    assert_same_meaning(entry["MessageBody"], ChangeEvent.model_validate(data))


def test_the_documented_clear_reaches_the_queue_as_a_clear() -> None:
    """docs/change-event.md's example through the ingest handler, on a (local) FIFO queue."""
    event = {
        "event_id": "crm-4711",
        "source": "crm",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"mail": "ana.martin@example.org"},
        "set": {"phone": None, "address": None, "firstname": "Ana"},
    }
    with local_ingest() as ingest:
        answer = handle(signed_event("generic", json.dumps(event).encode(), msg_id="m1"), ingest)
        assert answer["statusCode"] == 202, answer["body"]
        [message] = queued(ingest)
    assert message["body"]["set"] == {"phone": None, "address": None, "firstname": "Ana"}
    queued_event = ChangeEvent.model_validate(message["body"])
    assert queued_event.set_fields() == {"phone": None, "address": None, "firstname": "Ana"}


def _request(body: bytes) -> WebhookRequest:
    return WebhookRequest(
        source="generic",
        body=body,
        headers={"content-type": "application/json"},
        received_at=datetime.now(UTC),
    )
