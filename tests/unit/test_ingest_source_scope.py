"""A change event is from the source that authenticated its delivery, whatever its body
says: the sync's idempotency key (`<source>:<event_id>`) and the queue's deduplication id
are both scoped by it, so no sender can suppress another's events (issue 11)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from qomon_sync.application.ingest import Ingest, _deduplication_id
from qomon_sync.handlers.ingest import handle
from tests.unit.ingest_harness import local_ingest, queued, signed_event
from tests.unit.webhooks import example


@pytest.fixture(scope="module")
def ingest() -> Iterator[Ingest]:
    with local_ingest() as running:
        yield running


def claiming(source: str, event_id: str = "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1") -> Any:
    return {
        "event_id": event_id,
        "source": source,
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"mail": "hugo.lefort@example.org"},
        "set": {"firstname": "Hugo"},
    }


def post(ingest: Ingest, source: str, body: bytes) -> dict[str, Any]:
    response = handle(signed_event(source, body, msg_id=f"msg_{time.time_ns()}"), ingest)
    assert response["statusCode"] == 202, response["body"]
    return dict(json.loads(response["body"]))


@pytest.mark.parametrize("claimed", ["tally", "typeform", "brevo", "crm", "generic"])
def test_a_generic_event_is_from_generic_whatever_source_it_names(
    ingest: Ingest, claimed: str
) -> None:
    post(ingest, "generic", json.dumps(claiming(claimed)).encode())
    [message] = queued(ingest)
    assert message["body"]["source"] == "generic"
    assert message["body"]["event_id"] == "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1"


def test_every_event_of_a_generic_list_is_stamped(ingest: Ingest) -> None:
    events = [claiming("tally", "a-1"), claiming("brevo", "a-2"), claiming("generic", "a-3")]
    post(ingest, "generic", json.dumps(events).encode())
    assert [m["body"]["source"] for m in queued(ingest)] == ["generic"] * 3


def test_the_real_tally_delivery_is_queued_as_tally_next_to_a_generic_claim(
    ingest: Ingest,
) -> None:
    post(ingest, "generic", json.dumps(claiming("tally")).encode())
    post(ingest, "tally", example("tally/form-response.json"))
    messages = queued(ingest)
    assert sorted((m["body"]["source"], m["body"]["event_id"]) for m in messages) == [
        ("generic", "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1"),
        ("tally", "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1"),
    ]
    dedup = {m["Attributes"]["MessageDeduplicationId"] for m in messages}
    assert len(dedup) == 2


def test_the_deduplication_id_is_scoped_by_the_authenticated_source() -> None:
    ids = {
        _deduplication_id(source, "msg_same", 0, b"{}") for source in ("generic", "crm", "tally")
    }
    assert len(ids) == 3
    same = _deduplication_id("generic", "msg_same", 0, b"{}")
    assert same in ids  # a retry of the same delivery keeps its id
