"""Which change events were already applied: Powertools idempotency records in DynamoDB.

The sync folds several events for one contact into one write, so the idempotency
decorator (one call, one key) does not fit; the same persistence layer is used per event
instead, keyed on `<source>:<event_id>` (never the SQS message id, which a redrive
changes). An event id is unique only within its source, and the source is the one the
ingest authenticated (it sets every queued event's `source`): keyed on the id alone, a
generic event `tally-<id>` made the real Tally event with that id a duplicate. Every
method takes the event, so no caller can build the key another way:

- claim: write an in-progress record, or learn that the event is done or busy elsewhere;
- complete: the event was applied or found to change nothing, for `idempotency_expiry_s`;
- release: it was not applied (dead-lettered, or left for a retry), so a redelivery or a
  redrive from the dead-letter queue processes it again.

A consumer killed between the PATCH and `complete` leaves an in-progress record that
expires with the Lambda's remaining time; the retry then re-applies the same changes,
which the assembly turns into "unchanged" or the same body (notes are not added twice).
"""

from __future__ import annotations

import enum
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

from qomon_sync.domain.change_event import ChangeEvent


class Claim(enum.Enum):
    NEW = "new"
    DONE = "done"
    BUSY = "busy"


class EventLedger:
    def __init__(
        self, table_name: str, *, expiry_s: int, function_name: str = "qomon-sync"
    ) -> None:
        self._store = DynamoDBPersistenceLayer(table_name=table_name)
        self._store.configure(
            IdempotencyConfig(
                event_key_jmespath="event_id",
                expires_after_seconds=expiry_s,
                raise_on_no_idempotency_key=True,
            ),
            function_name=function_name,
        )

    def claim(self, event: ChangeEvent, remaining_ms: int) -> Claim:
        key = _key(event)
        try:
            self._store.save_inprogress(key, remaining_time_in_millis=remaining_ms)
        except IdempotencyItemAlreadyExistsError as exc:
            record = exc.old_data_record
            if record is None:
                try:
                    record = self._store.get_record(key)
                except IdempotencyItemNotFoundError:
                    return Claim.BUSY  # removed between our write and read: retry later
            if record is not None and record.status == STATUS_CONSTANTS["COMPLETED"]:
                return Claim.DONE
            return Claim.BUSY
        return Claim.NEW

    def complete(self, event: ChangeEvent, outcome: dict[str, Any]) -> None:
        self._store.save_success(_key(event), result=outcome)

    def release(self, event: ChangeEvent, reason: Exception) -> None:
        self._store.delete_record(_key(event), exception=reason)


def ledger_key(event: ChangeEvent) -> str:
    """`<source>:<event_id>`; a source's name holds no `:`, so no two events share one."""
    return f"{event.source}:{event.event_id}"


def _key(event: ChangeEvent) -> dict[str, Any]:
    return {"event_id": ledger_key(event)}
