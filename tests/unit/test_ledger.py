"""The idempotency ledger keys an event by its source and its id: an id is unique only
within its source (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest

from qomon_sync.adapters.ledger import Claim, EventLedger, ledger_key
from qomon_sync.domain.change_event import ChangeEvent, ContactRef
from tests.unit.fakes import offline_aws

SHARED_ID = "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1"


@pytest.fixture
def ledger() -> Iterator[EventLedger]:
    with offline_aws():
        boto3.client("dynamodb").create_table(
            TableName="ledger",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield EventLedger("ledger", expiry_s=3600)


def event(source: str, event_id: str = SHARED_ID) -> ChangeEvent:
    return ChangeEvent(
        event_id=event_id,
        source=source,
        occurred_at=datetime(2026, 11, 24, tzinfo=UTC),
        contact=ContactRef(id=700103),
    )


def test_the_key_is_the_source_and_the_event_id() -> None:
    assert ledger_key(event("generic")) == f"generic:{SHARED_ID}"
    assert ledger_key(event("tally")) != ledger_key(event("generic"))


def claim(ledger: EventLedger, one: ChangeEvent) -> Claim:
    [claimed] = ledger.claim_all([one], 60_000)
    return claimed


def applied(ledger: EventLedger, one: ChangeEvent) -> None:
    ledger.complete_all([(one, {"action": "replaced", "contact_id": 700103})])


def test_an_event_applied_for_one_source_is_new_for_another(ledger: EventLedger) -> None:
    claimed = event("generic")
    assert claim(ledger, claimed) is Claim.NEW
    applied(ledger, claimed)
    real = event("tally")
    assert claim(ledger, real) is Claim.NEW
    applied(ledger, real)
    assert claim(ledger, event("tally")) is Claim.DONE
    assert claim(ledger, event("generic")) is Claim.DONE


def test_in_progress_and_released_are_per_source_too(ledger: EventLedger) -> None:
    assert claim(ledger, event("crm")) is Claim.NEW
    assert claim(ledger, event("crm")) is Claim.BUSY
    assert claim(ledger, event("generic")) is Claim.NEW
    ledger.release_all([event("crm")])  # dead-lettered
    assert claim(ledger, event("crm")) is Claim.NEW
    assert claim(ledger, event("generic")) is Claim.BUSY


def test_in_progress_names_the_claims_not_completed_nor_released(ledger: EventLedger) -> None:
    held, done, released, never = (event("crm", f"e{n}") for n in range(4))
    assert ledger.claim_all([held, done, released], 60_000) == [Claim.NEW] * 3
    ledger.complete_all([(done, {"action": "replaced", "contact_id": 700103})])
    ledger.release_all([released])
    assert ledger.in_progress([held, done, released, never, held]) == [
        True,
        False,
        False,
        False,
        True,
    ]
