"""A contact that crashes the sync function costs only itself.

Lambda deletes a batch's messages when the invocation returns; a crash (or a timeout, or
out of memory) brings every message of the batch back, one receive closer to the redrive
policy. Settled contacts' messages are deleted before the next contact's flush, and on a
redelivery a contact whose flush stopped before runs last: a poison contact reaches the
dead-letter queue alone, and its letters, redriven once the cause is gone, apply once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from qomon_sync.adapters.flush_markers import FlushMarkers
from qomon_sync.adapters.ledger import EventLedger
from qomon_sync.adapters.qomon.client import QomonClient
from qomon_sync.adapters.qomon.errors import QomonRateLimited
from qomon_sync.adapters.staging import Staged, StagingTable
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_ops.cli import main
from tests.integration.sync_harness import (
    Killed,
    change_body,
    clients,
    dead_letters,
    drain,
    expire_claims,
    invoke,
    queued,
    send,
    staged,
    standin,
)

pytestmark = pytest.mark.integration

BEFORE, POISON, AFTER = 700118, 700121, 700124
PATCH = "PATCH /contacts/{id}"
VISIBILITY_S = 2
COME_BACK_S = VISIBILITY_S + 0.6
"""Long enough for what a crash left in flight to be visible again."""


@pytest.fixture
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions(visibility_timeout_s=VISIBILITY_S, max_receive_count=3)) as running:
        assert running.poller is not None
        running.poller.pause()
        yield running


def receive(local: LocalMode, count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
    """What Lambda's poller would hand over: `count` messages, in flight from now on."""
    assert local.endpoints is not None
    sqs, _ = clients(local)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=local.endpoints.changes_queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        found += answer.get("Messages", [])
        if len(found) < count:
            time.sleep(0.2)
    assert len(found) == count, found
    return found


def group(message: dict[str, Any]) -> str:
    return str(message["Attributes"]["MessageGroupId"])


def fail_for(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    contact_id: int,
    error: Callable[[], BaseException],
) -> list[int]:
    """Every call of `QomonClient.<name>` for `contact_id` raises `error()`; returns a list
    that grows by one at each."""
    original: Callable[..., Any] = getattr(QomonClient, name)
    failures: list[int] = []

    def failing(client: QomonClient, cid: int | str, *args: Any, **kwargs: Any) -> Any:
        if str(cid) == str(contact_id):
            failures.append(1)
            raise error()
        return original(client, cid, *args, **kwargs)

    monkeypatch.setattr(QomonClient, name, failing)
    return failures


def crash_on(monkeypatch: pytest.MonkeyPatch, contact_id: int) -> list[int]:
    """Every PATCH of `contact_id` kills the function (a poison event); returns the count."""
    return fail_for(monkeypatch, "replace_contact", contact_id, Killed)


def crashed_delivery(local: LocalMode, count: int) -> None:
    """Hand `count` messages to the function, which crashes; then what AWS does after: the
    claims expire with the invocation, and the messages come back."""
    with pytest.raises(Killed):
        invoke(receive(local, count))
    expire_claims(local)
    time.sleep(COME_BACK_S)


def firstname(local: LocalMode, contact_id: int) -> str:
    return str(standin(local, f"contacts/{contact_id}")["contact"]["firstname"])


def test_a_crash_brings_back_only_the_crashed_contact_and_those_after_it(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    for contact_id in (BEFORE, POISON, AFTER):
        send(local, contact_id, set={"firstname": f"Avant crash {contact_id}"})
    batch = receive(local, 3)
    assert [group(m) for m in batch] == [f"id:{c}" for c in (BEFORE, POISON, AFTER)]
    crash_on(monkeypatch, POISON)
    with pytest.raises(Killed):
        invoke(batch)
    assert firstname(local, BEFORE) == f"Avant crash {BEFORE}"
    time.sleep(COME_BACK_S)  # the visibility timeout: what the crash left comes back
    back = queued(local)
    # The contact settled before the crash was deleted before the poison's flush began.
    assert sorted(group(m) for m in back) == [f"id:{POISON}", f"id:{AFTER}"]


def test_on_redelivery_the_contact_whose_flush_stopped_runs_last(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    for contact_id in (POISON, AFTER):
        send(local, contact_id, set={"firstname": f"Deuxième {contact_id}"})
    kills = crash_on(monkeypatch, POISON)
    with pytest.raises(Killed):
        invoke(receive(local, 2))
    assert firstname(local, AFTER) != f"Deuxième {AFTER}"  # it came after the crash
    time.sleep(COME_BACK_S)
    again = receive(local, 2)
    assert [group(m) for m in again] == [f"id:{POISON}", f"id:{AFTER}"]  # FIFO's order
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "2" for m in again)
    # What the visibility timeout does on AWS: the crashed invocation's claims have expired,
    # and the ledger still shows them in progress.
    assert expire_claims(local) == 1
    with pytest.raises(Killed):
        invoke(again)
    assert len(kills) == 2
    # The poison ran last: the other contact was applied and deleted before it.
    assert firstname(local, AFTER) == f"Deuxième {AFTER}"
    time.sleep(COME_BACK_S)
    assert [group(m) for m in queued(local)] == [f"id:{POISON}"]


def test_a_ledger_that_cannot_be_read_leaves_the_order_as_it_was(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which contact goes last is an order, not a condition: if the ledger cannot say,
    the batch runs in its own order (and the flushes find out for themselves)."""
    for contact_id in (POISON, AFTER):
        send(local, contact_id, set={"firstname": f"Sans registre {contact_id}"})
    crash_on(monkeypatch, POISON)
    crashed_delivery(local, 2)

    def unreadable(*_: Any, **__: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Get")

    monkeypatch.setattr(EventLedger, "in_progress", unreadable)
    with pytest.raises(Killed):  # the poison first again, as the batch came
        invoke(receive(local, 2))
    assert firstname(local, AFTER) != f"Sans registre {AFTER}"


def test_a_contact_driven_by_its_flush_marker_that_stopped_runs_last_too(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog's flush is often driven by its marker alone: the events it applies were
    staged, and their messages deleted, by earlier batches. A marker comes back only when
    its flush did not finish."""
    assert local.endpoints is not None
    sqs, dynamodb = clients(local)
    poison = f"id:{POISON}"
    body = change_body(POISON, set={"firstname": "Mise en attente"})
    staging = StagingTable(dynamodb, local.endpoints.staging_table, retention_s=3600)
    staging.stage(poison, [Staged("7".rjust(40, "0"), body, "m-staged-earlier")])
    marker = FlushMarkers(sqs, local.endpoints.changes_queue_url).send(poison)
    staging.expect_marker(poison, marker, since=time.time())
    send(local, AFTER, set={"firstname": f"Derrière le marqueur {AFTER}"})
    crash_on(monkeypatch, POISON)
    crashed_delivery(local, 2)
    again = receive(local, 2)
    assert [group(m) for m in again] == [poison, f"id:{AFTER}"]
    with pytest.raises(Killed):
        invoke(again)
    assert firstname(local, AFTER) == f"Derrière le marqueur {AFTER}"
    time.sleep(COME_BACK_S)
    assert [group(m) for m in queued(local)] == [poison]


def test_a_contact_left_for_redelivery_is_not_deleted_with_the_settled(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only settled contacts' messages are deleted early: one whose flush met a failure
    that may pass (here a 429) stays on the queue for its redelivery."""
    for contact_id in (POISON, BEFORE, AFTER):
        send(local, contact_id, set={"firstname": f"Réessai {contact_id}"})
    fail_for(
        monkeypatch,
        "get_contact",
        POISON,
        lambda: QomonRateLimited("the space's bucket is empty", retry_after=None),
    )
    batch = receive(local, 3)
    answer = invoke(batch)
    poison_ids = [m["MessageId"] for m in batch if group(m) == f"id:{POISON}"]
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == poison_ids
    assert firstname(local, BEFORE) == f"Réessai {BEFORE}"
    time.sleep(COME_BACK_S)
    # BEFORE was deleted before AFTER's flush; nobody deleted AFTER's, the last contact,
    # as Lambda would on the report: the poison's came back, for its redelivery.
    assert sorted(group(m) for m in queued(local)) == [f"id:{POISON}", f"id:{AFTER}"]


def test_a_poison_contact_reaches_the_dead_letter_queue_alone_and_redrives_once(
    local: LocalMode,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert local.endpoints is not None
    poisoned = [send(local, POISON, set={"firstname": f"Poison {n}"}) for n in range(2)]
    for contact_id in (BEFORE, AFTER):
        send(local, contact_id, set={"firstname": f"Voisin {contact_id}"})
    kills = crash_on(monkeypatch, POISON)
    # Only the first crash costs the neighbours a delivery (the poison ran first). From
    # the second on it runs last, after they are applied and deleted.
    for delivery, size in ((1, 4), (2, 4), (3, 2)):  # 3: the redrive policy's limit here
        batch = receive(local, size)
        assert {m["Attributes"]["ApproximateReceiveCount"] for m in batch} == {str(delivery)}
        with pytest.raises(Killed):
            invoke(batch)
        expire_claims(local)
        time.sleep(COME_BACK_S)
    assert len(kills) == 3
    assert firstname(local, BEFORE) == f"Voisin {BEFORE}"
    assert firstname(local, AFTER) == f"Voisin {AFTER}"
    assert queued(local) == []  # the next receive finds the poison over its limit
    # The redrive policy moved the poison's messages without a reason: nothing runs after
    # a crash to give one.
    letters = dead_letters(local)
    assert sorted(json.loads(letter["body"])["event_id"] for letter in letters) == sorted(poisoned)
    assert all("error_code" not in letter for letter in letters)
    assert len(staged(local)) == 2  # staged, never applied: they wait for the letters

    # The operator reads them, and redrives them once the cause is gone.
    sqs, _ = clients(local)
    for letter in letters:
        sqs.send_message(
            QueueUrl=local.endpoints.dead_letter_queue_url,
            MessageBody=letter["body"],
            MessageGroupId=f"id:{POISON}",
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps(asdict(local.endpoints)), encoding="utf-8")
    capsys.readouterr()
    assert main(["dlq", "list", "--endpoints-file", str(endpoints)]) == 0
    listed = capsys.readouterr().out
    assert "retries_exhausted" in listed
    assert main(["dlq", "show", "--endpoints-file", str(endpoints), poisoned[0]]) == 0
    assert "crashed or timed out" in capsys.readouterr().out
    monkeypatch.undo()
    patches = int(standin(local, "stats")["calls"].get(PATCH, 0))
    assert main(["dlq", "redrive", "--endpoints-file", str(endpoints), "--all"]) == 0
    drain(local)
    assert firstname(local, POISON) == "Poison 1"
    assert int(standin(local, "stats")["calls"].get(PATCH, 0)) == patches + 1  # one write
    assert staged(local) == []  # the older staged copies were settled as duplicates
    assert dead_letters(local) == []
