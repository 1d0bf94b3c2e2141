"""How the batch reads SQS records: groups, staging order, flush markers."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from qomon_sync.adapters.flush_markers import KIND_ATTRIBUTE, MARKER_KIND, marker_of
from qomon_sync.application.messages import group_of, sequence_of
from tests.conftest import PSEUDONYMS


def record(body: str, **attributes: str) -> SQSRecord:
    raw: dict[str, Any] = {
        "messageId": "m-1",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", **attributes},
        "messageAttributes": {},
    }
    return SQSRecord(raw)


EVENT = json.dumps(
    {
        "event_id": "e",
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": 700103},
    }
)


def test_the_sequence_number_sorts_as_a_number() -> None:
    short = sequence_of(record(EVENT, SequenceNumber="99"), 0)
    long = sequence_of(record(EVENT, SequenceNumber="18889999999999999999"), 0)
    assert len(short) == len(long) == 40
    assert short < long


def test_a_standard_queue_record_is_ordered_by_its_sent_time_then_its_place() -> None:
    first = sequence_of(record(EVENT, SentTimestamp="1700000000000"), 3)
    second = sequence_of(record(EVENT, SentTimestamp="1700000000000"), 4)
    later = sequence_of(record(EVENT, SentTimestamp="1700000000001"), 0)
    assert first < second < later
    assert first.endswith("#m-1")  # and another batch's message never takes its place


def test_the_group_is_the_message_group_else_the_contact_else_the_message() -> None:
    assert group_of(record(EVENT, MessageGroupId="id:42"), PSEUDONYMS) == "id:42"
    assert group_of(record(EVENT), PSEUDONYMS) == "id:700103"
    assert group_of(record("not json"), PSEUDONYMS) == "m-1"


def test_a_flush_marker_is_known_by_its_attribute_never_its_body_alone() -> None:
    body = json.dumps({"flush": "id:42", "marker": "abc"})
    attribute = {KIND_ATTRIBUTE: {"stringValue": MARKER_KIND, "dataType": "String"}}
    assert marker_of(attribute, body) == "abc"
    assert marker_of({}, body) is None  # a sender writing the same body is an event
    assert marker_of(attribute, "garbled") == "unnamed"
