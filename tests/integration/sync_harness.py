"""Helpers for tests that hand the sync handler SQS events themselves (local AWS, stand-in)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx

from qomon_sync.adapters.table import bucket_key
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync_dev.local_lambda import (
    LocalContext,
    lambda_event,
    queue_is_empty,
    take_dead_letters,
)
from qomon_sync_dev.local_mode import LocalMode, LocalOptions

_sequence = itertools.count(int(time.time() * 1000))


class Heard(httpx.BaseTransport):
    """A consumer's way to Qomon: holds a kind of request back (`hold`), and says when the
    answer to one came (`heard`). Kinds: "GET contacts", "PATCH contacts", "POST search"."""

    def __init__(self, hold: dict[str, Callable[[], None]] | None = None) -> None:
        self._inner = httpx.HTTPTransport()
        self._hold = hold or {}
        self.heard: dict[str, threading.Event] = {
            kind: threading.Event() for kind in ("GET contacts", "PATCH contacts", "POST search")
        }

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        kind = f"{request.method} {request.url.path.strip('/').split('/')[0]}"
        if kind in self._hold:
            self._hold[kind]()
        response = self._inner.handle_request(request)
        if kind in self.heard:
            self.heard[kind].set()
        return response

    def close(self) -> None:
        self._inner.close()


class Killed(BaseException):
    """The consumer dies here: nothing after this point of the invocation happens."""


@contextlib.contextmanager
def paused_local_mode() -> Iterator[LocalMode]:
    """Local mode with its poller paused: a test invokes the sync handler itself, with
    AWS's timings (a 60 s function keeps 8 s back)."""
    with LocalMode(LocalOptions(function_timeout_s=60.0)) as running:
        assert running.poller is not None
        running.poller.pause()
        yield running


def invoke(records: list[dict[str, Any]], timeout_s: float = 60) -> Any:
    from qomon_sync.handlers.sync import handler

    return handler(
        lambda_event(records, "arn:aws:sqs:eu-west-3:123456789012:changes.fifo"),
        LocalContext(timeout_s),
    )


def change_body(
    contact_id: int | None,
    *,
    event_id: str | None = None,
    source: str = "test",
    mail: str | None = None,
    **changes: Any,
) -> str:
    """A change event's JSON for contact `contact_id`, or for the person with `mail` (a
    fresh event id unless given)."""
    return json.dumps(
        {
            "event_id": event_id or uuid.uuid4().hex,
            "source": source,
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": contact_id} if contact_id is not None else {"mail": mail},
            **changes,
        }
    )


def send(local: LocalMode, contact_id: int, **changes: Any) -> str:
    """Put one change event for `contact_id` on local mode's changes queue; its event id."""
    assert local.endpoints is not None
    sqs, _ = clients(local)
    event_id = uuid.uuid4().hex
    sqs.send_message(
        QueueUrl=local.endpoints.changes_queue_url,
        MessageBody=change_body(contact_id, event_id=event_id, **changes),
        MessageGroupId=f"id:{contact_id}",
        MessageDeduplicationId=event_id,
    )
    return event_id


def message(
    contact_id: int,
    *,
    event_id: str | None = None,
    source: str = "test",
    receives: int = 1,
    sequenced: bool = True,
    **changes: Any,
) -> dict[str, Any]:
    """A FIFO message as SQS hands it over, with a sequence number that keeps growing
    (`sequenced=False`: none, as in a standard queue's test event)."""
    body = change_body(contact_id, event_id=event_id, source=source, **changes)
    return _record(body, f"id:{contact_id}", receives=receives, sequenced=sequenced)


def mail_message(
    local: LocalMode, mail: str, *, receives: int = 1, **changes: Any
) -> dict[str, Any]:
    """A FIFO message for the person with `mail`, in that e-mail's message group (the
    pseudonym under local mode's key, as the ingest names it)."""
    assert local.pseudonyms is not None
    body = change_body(None, mail=mail, **changes)
    group = ChangeEvent.model_validate_json(body).contact.group(local.pseudonyms)
    return _record(body, group, receives=receives, sequenced=True)


def _record(body: str, group: str, *, receives: int, sequenced: bool) -> dict[str, Any]:
    return {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": uuid.uuid4().hex,
        "Body": body,
        "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "Attributes": {
            "ApproximateReceiveCount": str(receives),
            "MessageGroupId": group,
            **({"SequenceNumber": str(next(_sequence)).rjust(20, "0")} if sequenced else {}),
            "SentTimestamp": "0",
        },
    }


def again(record: dict[str, Any]) -> dict[str, Any]:
    """The same message delivered once more (a new receipt, one more receive)."""
    attributes = dict(record["Attributes"])
    attributes["ApproximateReceiveCount"] = str(int(attributes["ApproximateReceiveCount"]) + 1)
    return {**record, "ReceiptHandle": uuid.uuid4().hex, "Attributes": attributes}


def standin(local: LocalMode, path: str, payload: Any = None) -> Any:
    assert local.endpoints is not None
    url = f"{local.endpoints.qomon_url}/_standin/{path}"
    return (httpx.post(url, json=payload) if payload is not None else httpx.get(url)).json()


def calls(local: LocalMode, endpoint: str) -> int:
    return int(standin(local, "stats")["calls"].get(endpoint, 0))


def clients(local: LocalMode) -> tuple[Any, Any]:
    assert local.endpoints is not None
    endpoints = local.endpoints
    sqs = boto3.client("sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region)
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
    )
    return sqs, dynamodb


def spend_the_burst(local: LocalMode, booked_s: float = 9.0) -> None:
    """As on a backlog: the space's shared bucket nearly empty, the refill spoken for
    (`booked_s` of refill booked ahead; 0 or less: the bucket full)."""
    _, dynamodb = clients(local)
    assert local.endpoints is not None
    space = hashlib.sha256(b"local-qomon-token").hexdigest()[:16]
    dynamodb.put_item(
        TableName=local.endpoints.staging_table,
        Item={**bucket_key(space), "tat": {"N": f"{time.time() + booked_s:.3f}"}},
    )


def dead_letters(local: LocalMode) -> list[dict[str, str]]:
    """Every dead letter, received and deleted: its body and attributes."""
    assert local.endpoints is not None
    sqs, _ = clients(local)
    return take_dead_letters(sqs, local.endpoints.dead_letter_queue_url)


def queued(local: LocalMode, *, keep: bool = False) -> list[dict[str, Any]]:
    """Everything waiting on the changes queue (the poller is paused), received and
    deleted; or, with `keep`, left in flight, each with the receipt a consumer holds."""
    assert local.endpoints is not None
    sqs, _ = clients(local)
    found: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=local.endpoints.changes_queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        if not answer.get("Messages"):
            return found
        found += answer["Messages"]
        if keep:
            continue
        for received in answer["Messages"]:
            sqs.delete_message(
                QueueUrl=local.endpoints.changes_queue_url,
                ReceiptHandle=received["ReceiptHandle"],
            )


def staged(local: LocalMode) -> list[dict[str, Any]]:
    """Every staged event still waiting (items under a `group#` key, but heads)."""
    assert local.endpoints is not None
    _, dynamodb = clients(local)
    items = dynamodb.scan(TableName=local.endpoints.staging_table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("group#") and i["sk"]["S"] != "head"]


def expire_claims(local: LocalMode) -> int:
    """What the visibility timeout does in AWS: by the time a killed invocation's messages
    come back, its in-progress claims have expired with it."""
    assert local.endpoints is not None
    _, dynamodb = clients(local)
    table = local.endpoints.idempotency_table
    expired = 0
    for item in dynamodb.scan(TableName=table)["Items"]:
        if item.get("status", {}).get("S") == "INPROGRESS":
            dynamodb.update_item(
                TableName=table,
                Key={"id": item["id"]},
                UpdateExpression="SET in_progress_expiration = :past",
                ExpressionAttributeValues={":past": {"N": "0"}},
            )
            expired += 1
    return expired


def context(timeout_s: float = 60) -> LocalContext:
    return LocalContext(timeout_s)


def drain(local: LocalMode, timeout_s: float = 60) -> None:
    """Let the paused poller run until the changes queue stays empty and the poller idle."""
    assert local.endpoints is not None
    assert local.poller is not None
    sqs, _ = clients(local)
    local.poller.resume()
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        idle = local.poller.idle.is_set()
        quiet = quiet + 1 if idle and queue_is_empty(sqs, local.endpoints.changes_queue_url) else 0
        if quiet >= 3:
            return
        time.sleep(0.1)
    raise AssertionError("the queue did not drain")
