"""Deleting settled messages before the batch ends is an optimisation: what SQS refuses
is counted and left to the invocation's report, never raised."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from qomon_sync.adapters.settled_messages import SettledMessages
from tests.unit.fakes import offline_aws


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    with offline_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="changes")["QueueUrl"]
        yield sqs, url


def received(sqs: Any, url: str, count: int) -> list[str]:
    for n in range(count):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    handles: list[str] = []
    while len(handles) < count:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        handles += [m["ReceiptHandle"] for m in answer.get("Messages", [])]
    return handles


def waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_more_than_one_request_of_messages_are_deleted(queue: tuple[Any, str]) -> None:
    sqs, url = queue
    handles = received(sqs, url, 13)
    assert SettledMessages(sqs, url).delete(handles) == 0
    assert waiting(sqs, url) == 0


def test_a_second_delete_of_deleted_messages_is_taken(queue: tuple[Any, str]) -> None:
    """The invocation's report deletes the same messages again."""
    sqs, url = queue
    handles = received(sqs, url, 2)
    settled = SettledMessages(sqs, url)
    assert settled.delete(handles) == 0
    assert settled.delete(handles) == 0


def test_what_sqs_refuses_is_counted_not_raised(queue: tuple[Any, str]) -> None:
    sqs, url = queue
    handles = received(sqs, url, 2)
    assert SettledMessages(sqs, url).delete([*handles, "not-a-receipt"]) == 1
    assert waiting(sqs, url) == 0


def test_an_unreachable_queue_is_counted_not_raised() -> None:
    class Down:
        def delete_message_batch(self, **_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="https://sqs.invalid")

    assert SettledMessages(Down(), "https://sqs.invalid/q").delete(["a", "b", "c"]) == 3
