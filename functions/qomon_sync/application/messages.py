"""How the sync reads what the changes queue hands it: one record at a time.

A record is a change event or a flush marker (adapters.flush_markers); it belongs to its
contact's message group, has a place in that group (its sequence number) and a receive
count. A change event's body is read here, for the batch and for the flush alike, and a
body that is not a change event is refused here, once.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from qomon_sync.adapters.flush_markers import marker_of
from qomon_sync.adapters.staging import Staged
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync.domain.refusal import Code, Refusal
from qomon_sync.domain.validation import error_paths


def read_event(body: str) -> ChangeEvent | Refusal:
    """The change event a message (or a staged copy of one) carries, or why it is none:
    `invalid_event`, naming the fields at fault and never their values."""
    try:
        return ChangeEvent.model_validate_json(body)
    except ValidationError as exc:
        problems = error_paths(exc)
        return Refusal(
            Code.INVALID_EVENT,
            "not a change event v1: " + "; ".join(f"{path}: {why}" for path, why in problems),
            tuple(path for path, _ in problems),
        )


def marker(record: SQSRecord) -> str | None:
    """The flush marker's id when `record` is one, else None (a change event)."""
    return marker_of(record.raw_event.get("messageAttributes") or {}, record.body)


def as_staged(record: SQSRecord, index: int) -> Staged:
    """`record` as it waits in the staging table (`index`: its place in the batch)."""
    return Staged(
        seq=sequence_of(record, index),
        body=record.body,
        message_id=record.message_id,
        receive_count=receives(record),
    )


def group_of(record: SQSRecord, pseudonyms: Pseudonyms) -> str:
    """The contact's message group; for a standard-queue test event, the contact's key."""
    group = record.attributes.message_group_id
    if group:
        return group
    try:
        body = json.loads(record.body)
        return ChangeEvent.model_validate(body).contact.group(pseudonyms)
    except (ValueError, ValidationError, TypeError):
        return record.message_id


def sequence_of(record: SQSRecord, index: int) -> str:
    """The staging sort key: the FIFO sequence number, zero-padded so it sorts as a number.

    A standard-queue event (a test) has none: its sent time and place in the batch order
    it, and its message id keeps it apart from another batch's."""
    sequence = record.attributes.sequence_number
    if sequence and sequence.isdigit():
        return sequence.rjust(40, "0")
    sent = record.attributes.get("SentTimestamp") or "0"
    sent = sent if sent.isdigit() else "0"
    return f"{sent.rjust(20, '0')}{index:020d}#{record.message_id}"


def receives(record: SQSRecord) -> int:
    """How many times SQS has delivered `record` (its ApproximateReceiveCount)."""
    count = record.attributes.get("ApproximateReceiveCount") or "1"
    return int(count) if str(count).isdigit() else 1
