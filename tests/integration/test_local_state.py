"""Local mode's state folder, in process: what the journal keeps of moto's queues and table,
and what a restart puts back (qomon_sync_dev.local_state)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.local_state import StateInUse

pytestmark = pytest.mark.integration


def options(state: Path, **changes: Any) -> LocalOptions:
    """The poller stays paused unless told: most tests receive from the queues themselves."""
    return LocalOptions(
        **{"state_dir": state, "visibility_timeout_s": 1, "paused": True, **changes}
    )


def clients(local: LocalMode) -> tuple[Any, Any]:
    assert local.endpoints is not None
    url, region = local.endpoints.aws_endpoint_url, local.endpoints.region
    return (
        boto3.client("sqs", endpoint_url=url, region_name=region),
        boto3.client("dynamodb", endpoint_url=url, region_name=region),
    )


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found += messages


def test_a_restart_gives_back_each_groups_messages_in_order_with_their_ids(
    tmp_path: Path,
) -> None:
    sent: dict[str, list[str]] = {}
    with LocalMode(options(tmp_path)) as local:
        assert local.endpoints is not None
        sqs, _ = clients(local)
        for n in range(24):
            group = f"id:{700103 + 3 * (n % 3)}"
            answer = sqs.send_message(
                QueueUrl=local.endpoints.changes_queue_url,
                MessageBody=f'{{"n": {n}}}',  # not change events: the poller stays paused
                MessageGroupId=group,
                MessageDeduplicationId=uuid.uuid4().hex,
            )
            sent.setdefault(group, []).append(answer["MessageId"])
        deleted = sqs.receive_message(
            QueueUrl=local.endpoints.changes_queue_url, MaxNumberOfMessages=1
        )["Messages"][0]
        sqs.delete_message(
            QueueUrl=local.endpoints.changes_queue_url, ReceiptHandle=deleted["ReceiptHandle"]
        )
    assert local.left is not None
    assert local.left.waiting == 23
    with LocalMode(options(tmp_path)) as again:
        assert again.endpoints is not None
        assert again.restored is not None
        assert again.restored.waiting == 23
        sqs, _ = clients(again)
        back = receive_all(sqs, again.endpoints.changes_queue_url)
    by_group: dict[str, list[str]] = {}
    for message in back:
        by_group.setdefault(message["Attributes"]["MessageGroupId"], []).append(
            message["MessageId"]
        )
    expected = {g: [m for m in ids if m != deleted["MessageId"]] for g, ids in sent.items()}
    assert by_group == expected


def test_a_message_the_redrive_policy_moved_stays_in_the_dead_letter_queue(
    tmp_path: Path,
) -> None:
    with LocalMode(options(tmp_path, max_receive_count=1)) as local:
        assert local.endpoints is not None
        sqs, _ = clients(local)
        sqs.send_message(
            QueueUrl=local.endpoints.changes_queue_url,
            MessageBody="never settled",
            MessageGroupId="g",
            MessageDeduplicationId="d1",
        )
        sqs.receive_message(QueueUrl=local.endpoints.changes_queue_url)  # not deleted
        time.sleep(1.2)
        assert not sqs.receive_message(QueueUrl=local.endpoints.changes_queue_url).get(
            "Messages"
        )  # moved: it had been received maxReceiveCount times
    assert local.left is not None
    assert (local.left.waiting, local.left.dead_letters) == (0, 1)
    with LocalMode(options(tmp_path)) as again:
        assert again.endpoints is not None
        sqs, _ = clients(again)
        letters = receive_all(sqs, again.endpoints.dead_letter_queue_url)
        assert receive_all(sqs, again.endpoints.changes_queue_url) == []
    assert [m["Body"] for m in letters] == ["never settled"]
    assert letters[0]["Attributes"]["ApproximateReceiveCount"] == "2"  # the count was kept


def test_the_ledger_is_kept_but_claims_of_the_stopped_run_and_expired_records_are_not(
    tmp_path: Path,
) -> None:
    now = int(time.time())
    records = {
        "done": {"status": "COMPLETED", "expiration": now + 3600},
        "claimed": {"status": "INPROGRESS", "expiration": now + 3600},
        "expired": {"status": "COMPLETED", "expiration": now - 10},
    }
    with LocalMode(options(tmp_path)) as local:
        assert local.endpoints is not None
        _, dynamodb = clients(local)
        for key, record in records.items():
            dynamodb.put_item(
                TableName=local.endpoints.idempotency_table,
                Item={
                    "id": {"S": key},
                    "status": {"S": record["status"]},
                    "expiration": {"N": str(record["expiration"])},
                },
            )
        dynamodb.update_item(
            TableName=local.endpoints.idempotency_table,
            Key={"id": {"S": "done"}},
            UpdateExpression="SET #d = :d",
            ExpressionAttributeNames={"#d": "data"},
            ExpressionAttributeValues={":d": {"S": json.dumps({"action": "replaced"})}},
        )
    with LocalMode(options(tmp_path)) as again:
        assert again.endpoints is not None
        assert again.restored is not None
        _, dynamodb = clients(again)
        items = dynamodb.scan(TableName=again.endpoints.idempotency_table)["Items"]
        assert (again.restored.ledger, again.restored.claims_released) == (1, 1)
    assert [(i["id"]["S"], i["data"]["S"]) for i in items] == [
        ("done", json.dumps({"action": "replaced"}))
    ]


def test_the_stand_ins_contacts_are_kept_and_reset_goes_back_to_the_seed(
    tmp_path: Path,
) -> None:

    with LocalMode(options(tmp_path)) as local:
        assert local.endpoints is not None
        url = f"{local.endpoints.qomon_url}/_standin/contacts/700103"
        contact = httpx.get(url).json()["contact"]
        seeded = contact["firstname"]
        record = {"id": 700103, "firstname": "Kept", "surname": contact["surname"]}
        httpx.put(url, json=record).raise_for_status()
    with LocalMode(options(tmp_path)) as again:
        assert again.endpoints is not None
        url = f"{again.endpoints.qomon_url}/_standin"
        assert httpx.get(f"{url}/contacts/700103").json()["contact"]["firstname"] == "Kept"
        httpx.post(f"{url}/reset").raise_for_status()
    with LocalMode(options(tmp_path)) as third:
        assert third.endpoints is not None
        url = f"{third.endpoints.qomon_url}/_standin/contacts/700103"
        assert httpx.get(url).json()["contact"]["firstname"] == seeded


def test_one_state_folder_serves_one_local_mode_at_a_time(tmp_path: Path) -> None:
    with LocalMode(options(tmp_path)), pytest.raises(StateInUse, match="another qomon-sync"):
        LocalMode(options(tmp_path)).start()


def test_fresh_forgets_what_was_kept(tmp_path: Path) -> None:
    with LocalMode(options(tmp_path)) as local:
        assert local.endpoints is not None
        sqs, _ = clients(local)
        sqs.send_message(
            QueueUrl=local.endpoints.changes_queue_url,
            MessageBody="old",
            MessageGroupId="g",
            MessageDeduplicationId="d",
        )
    with LocalMode(options(tmp_path, fresh=True)) as again:
        assert again.restored is not None
        assert again.restored.waiting == 0


class Killed(BaseException):
    """The consumer dies here (as in the soak): nothing after this point happens."""


def test_a_patch_that_landed_before_the_ledger_heard_of_it_is_not_applied_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between Qomon's answer and the ledger's `complete`: the next start
    releases the dead run's claim, and the event, tried again against the kept space,
    changes nothing."""
    from qomon_sync.adapters.ledger import EventLedger

    def die(*args: Any) -> None:
        raise Killed

    text = f"landed, never recorded {uuid.uuid4().hex[:6]}"
    event = {
        "event_id": f"window-{uuid.uuid4().hex[:8]}",
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": 700106},
        "notes": [{"data": text}],
    }

    def notes(local: LocalMode) -> list[str]:
        assert local.endpoints is not None
        url = f"{local.endpoints.qomon_url}/_standin/contacts/700106"
        return [n["data"] for n in httpx.get(url).json()["contact"]["notes"]]

    monkeypatch.setattr(EventLedger, "complete_all", die)
    with LocalMode(options(tmp_path, paused=False, visibility_timeout_s=30)) as local:
        assert local.endpoints is not None
        assert local.poller is not None
        sqs, _ = clients(local)
        sqs.send_message(
            QueueUrl=local.endpoints.changes_queue_url,
            MessageBody=json.dumps(event),
            MessageGroupId="id:700106",
            MessageDeduplicationId="window",
        )
        deadline = time.monotonic() + 30
        while not local.poller.errors and time.monotonic() < deadline:
            time.sleep(0.1)
        assert local.poller.errors  # died after the PATCH, before `complete`
        assert notes(local).count(text) == 1
    monkeypatch.undo()
    with LocalMode(options(tmp_path, paused=False)) as again:
        assert again.endpoints is not None
        assert again.restored is not None
        assert (again.restored.waiting, again.restored.claims_released) == (1, 1)
        sqs, _ = clients(again)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            attributes = sqs.get_queue_attributes(
                QueueUrl=again.endpoints.changes_queue_url, AttributeNames=["All"]
            )["Attributes"]
            busy = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
            if not busy:
                break
            time.sleep(0.1)
        assert notes(again).count(text) == 1
        calls = httpx.get(f"{again.endpoints.qomon_url}/_standin/stats").json()["calls"]
        assert "PATCH /contacts/{id}" not in calls  # found unchanged: nothing written again
