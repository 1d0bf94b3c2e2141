"""The pipeline in local mode: local AWS (moto), the stand-in over real HTTP, the very
same handler driven by a poller playing the Lambda event source mapping."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from qomon_sync_dev.local_lambda import wait_until_drained
from qomon_sync_dev.local_mode import LocalMode, LocalOptions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions(visibility_timeout_s=2, max_receive_count=5)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_qomon(local: LocalMode) -> None:
    assert local.endpoints is not None
    httpx.post(f"{local.endpoints.qomon_url}/_standin/reset").raise_for_status()
    httpx.post(
        f"{local.endpoints.qomon_url}/_standin/config", json={"refill": 10.0}
    ).raise_for_status()


def sqs(local: LocalMode) -> Any:
    assert local.endpoints is not None
    return boto3.client(
        "sqs", endpoint_url=local.endpoints.aws_endpoint_url, region_name=local.endpoints.region
    )


def change(contact_id: int, **changes: Any) -> dict[str, Any]:
    event_id = f"test-{uuid.uuid4().hex[:12]}"
    return {
        "event_id": event_id,
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": contact_id},
        **changes,
    }


def send(
    local: LocalMode, event: dict[str, Any] | str, *, group: str = "g", dedup: str | None = None
) -> str:
    assert local.endpoints is not None
    body = event if isinstance(event, str) else json.dumps(event)
    if not isinstance(event, str):
        group = f"id:{event['contact']['id']}"
    sqs(local).send_message(
        QueueUrl=local.endpoints.changes_queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=dedup or uuid.uuid4().hex,
    )
    return body


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def drained(local: LocalMode) -> bool:
    """The queue empty and the poller idle five checks in a row: one check alone can fall
    between a receive and the handler's start."""
    assert local.endpoints is not None
    url = local.endpoints.changes_queue_url
    return wait_until_drained(sqs(local), url, local, time.monotonic() + 1.5)


def dead_letters(local: LocalMode) -> list[dict[str, Any]]:
    assert local.endpoints is not None
    client, found = sqs(local), list[dict[str, Any]]()
    while True:
        answer = client.receive_message(
            QueueUrl=local.endpoints.dead_letter_queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            client.delete_message(
                QueueUrl=local.endpoints.dead_letter_queue_url,
                ReceiptHandle=message["ReceiptHandle"],
            )
            found.append(
                {
                    "body": message["Body"],
                    **{
                        k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()
                    },
                }
            )


def qomon(local: LocalMode, path: str) -> Any:
    assert local.endpoints is not None
    return httpx.get(f"{local.endpoints.qomon_url}/_standin/{path}").json()


def stored(local: LocalMode, contact_id: int) -> dict[str, Any]:
    return dict(qomon(local, f"contacts/{contact_id}")["contact"])


def test_several_events_for_one_contact_cost_one_get_and_one_patch_in_order(
    local: LocalMode,
) -> None:
    assert local.poller is not None
    local.poller.pause()
    send(local, change(700118, set={"firstname": "Inès-Marie"}))
    send(local, change(700118, set={"firstname": "Inès"}, tags={"add": ["bénévole"]}))
    send(local, change(700118, fields=[{"field": "Niveau de soutien", "value": "Très favorable"}]))
    local.poller.resume()
    wait_until(lambda: drained(local))
    calls = qomon(local, "stats")["calls"]
    assert calls.get("GET /contacts/{id}") == 1
    assert calls.get("PATCH /contacts/{id}") == 1
    contact = stored(local, 700118)
    assert contact["firstname"] == "Inès"  # the later event wins: order kept
    assert {"name": "bénévole"} in contact["tags"]
    live = [e for e in contact["formdatas"] if e["deleted_at"] is None and e["form_id"] == 3102]
    assert [e["data"] for e in live] == ["very_favorable"]
    assert dead_letters(local) == []


def test_a_duplicate_delivery_is_not_applied_again(local: LocalMode) -> None:
    event = change(
        700124, notes=[{"data": "Rappel demandé pour le porte-à-porte."}], tags={"add": ["rappel"]}
    )
    send(local, event)
    wait_until(lambda: drained(local))
    before = qomon(local, "stats")["calls"]
    notes_before = len(stored(local, 700124)["notes"])
    send(local, event, dedup="a-retry-after-the-dedup-window")  # same event id, new message
    wait_until(lambda: drained(local))
    assert qomon(local, "stats")["calls"] == before  # not even read again
    assert len(stored(local, 700124)["notes"]) == notes_before
    assert dead_letters(local) == []


def test_a_poison_event_is_dead_lettered_on_its_first_attempt_with_its_reason(
    local: LocalMode,
) -> None:
    poison = send(local, change(700127, fields=[{"field": "Couleur préférée", "value": "vert"}]))
    garbage = send(local, '{"event_id": 12', group="nobody")
    wait_until(lambda: drained(local))
    letters = {letter["error_code"]: letter for letter in dead_letters(local)}
    assert set(letters) == {"unknown_field", "invalid_event"}
    assert letters["unknown_field"]["body"] == poison
    assert letters["unknown_field"]["attempts"] == "1"
    assert letters["unknown_field"]["error_fields"] == "Couleur préférée"
    assert letters["invalid_event"]["body"] == garbage
    assert letters["invalid_event"]["attempts"] == "1"
    assert "PATCH /contacts/{id}" not in qomon(local, "stats")["calls"]


def test_a_qomon_outage_delays_events_but_loses_none_and_keeps_order(local: LocalMode) -> None:
    assert local.endpoints is not None
    assert local.poller is not None
    invocations = local.poller.invocations
    # More 503s than one delivery's in-process retries absorb: SQS must deliver again.
    httpx.post(
        f"{local.endpoints.qomon_url}/_standin/faults", json={"status": 503, "count": 12}
    ).raise_for_status()
    local.poller.pause()
    send(local, change(700130, set={"firstname": "First"}))
    send(local, change(700130, set={"firstname": "Second"}))
    local.poller.resume()
    wait_until(
        lambda: drained(local) and stored(local, 700130)["firstname"] == "Second", timeout=60
    )
    assert local.poller.invocations - invocations >= 3  # delivered again after the outage
    assert qomon(local, "stats")["statuses"].get("503") == 12
    assert dead_letters(local) == []


def test_a_429_storm_delays_events_but_loses_none(local: LocalMode) -> None:
    assert local.endpoints is not None
    httpx.post(
        f"{local.endpoints.qomon_url}/_standin/faults", json={"rate_limit_storm_s": 3}
    ).raise_for_status()
    for contact_id, name in ((700133, "Chloé A"), (700136, "Mathis B"), (700139, "Sarah C")):
        send(local, change(contact_id, set={"firstname": name}))
    wait_until(lambda: drained(local), timeout=60)
    assert [stored(local, c)["firstname"] for c in (700133, 700136, 700139)] == [
        "Chloé A",
        "Mathis B",
        "Sarah C",
    ]
    assert qomon(local, "stats")["rate_limited"] > 0
    assert dead_letters(local) == []


@contextlib.contextmanager
def fifo_queue(name: str, *, visibility_s: int) -> Iterator[tuple[Any, str]]:
    """A FIFO queue of its own in a local mode of its own: an SQS client and the URL."""
    with LocalMode(LocalOptions(paused=True)) as local:
        assert local.endpoints is not None
        endpoints = local.endpoints
        client = boto3.client(
            "sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
        )
        queue = client.create_queue(
            QueueName=f"{name}-{uuid.uuid4().hex[:8]}.fifo",
            Attributes={"FifoQueue": "true", "VisibilityTimeout": str(visibility_s)},
        )["QueueUrl"]
        yield client, queue


def test_local_sqs_redelivers_a_fifo_group_in_order_and_batches_it_together() -> None:
    """Two ways SQS's FIFO rules show (local_sqs): moto broke both, and with them the
    soak's conservation check."""
    with fifo_queue("order", visibility_s=1) as (client, queue):
        for n in range(14):  # two groups, interleaved as they arrive
            client.send_message(
                QueueUrl=queue,
                MessageBody=f"a{n:02d}",
                MessageGroupId="a",
                MessageDeduplicationId=f"a{n}",
            )
            if n < 4:
                client.send_message(
                    QueueUrl=queue,
                    MessageBody=f"b{n:02d}",
                    MessageGroupId="b",
                    MessageDeduplicationId=f"b{n}",
                )
        first = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in first] == [f"a{n:02d}" for n in range(10)]  # one group first
        for message in first[:4]:  # a04..a09 fail: they stay in flight
            client.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        assert [
            m["Body"]
            for m in client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        ] == ["b00", "b01", "b02", "b03"]
        time.sleep(1.2)
        again = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in again] == [f"a{n:02d}" for n in range(4, 14)]  # in order


def test_local_sqs_changes_visibility_only_through_the_latest_receipt() -> None:
    """SQS asks for the most recently received handle to change a message's visibility:
    a held flush marker's old receipt must not show the marker while another receive of
    it is in a consumer's hands (two consumers would hold one FIFO group)."""
    with fifo_queue("receipts", visibility_s=30) as (client, queue):
        client.send_message(
            QueueUrl=queue, MessageBody="m", MessageGroupId="g", MessageDeduplicationId="m"
        )
        [first] = client.receive_message(QueueUrl=queue)["Messages"]
        client.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
        )
        [second] = client.receive_message(QueueUrl=queue)["Messages"]  # shown at once
        with pytest.raises(ClientError) as stale:
            client.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
            )
        assert stale.value.response["Error"]["Code"] == "InvalidParameterValue"
        assert client.receive_message(QueueUrl=queue).get("Messages") is None  # still held
        client.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=0
        )
        assert len(client.receive_message(QueueUrl=queue)["Messages"]) == 1
