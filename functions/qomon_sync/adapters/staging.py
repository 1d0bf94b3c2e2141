"""Where a contact's waiting events gather until one flush applies them all: DynamoDB.

A FIFO queue hands over at most 10 messages at a time and shows a contact's next
messages only once the earlier ones are deleted, so a contact with 300 waiting events
used to cost 30 reads and 30 writes. Each batch's events are now staged here, under the
contact's message group and their SQS sequence number, and deleted from the queue; the
flush (application.flush) reads the whole group back in queue order and applies it in
one GET and at most one PATCH.

The table (the template's `StagingTable`; every key shape in adapters.table) holds, for
each message group:

- one item per staged event, keyed by its SQS sequence number, with the message's body,
  id and receive count. Writing it again (a redelivery) writes the same item, so
  staging is idempotent; a second copy of an event under another sequence number (a
  sender's retry) is settled as a duplicate by the flush, through the ledger;
- its head: the flush marker waiting on the queue for this group, if any, and since when
  events have been waiting (see application.sync_batch).

Other items hold what every instance shares: the token bucket (adapters.shared_bucket),
the forms and the e-mails already looked up (adapters.space_cache), and the lease that
keeps one Qomon contact to one writer across message groups (adapters.contact_lease).

Every item has an `expires_at` (DynamoDB TTL). A staged event holds a person's data: it is
deleted as soon as its event is settled, and its TTL (the ledger's retention) only ends
what something forgot, never what is still waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from qomon_sync.adapters.table import (
    HEAD,
    event_seq,
    group_head_key,
    group_of_partition,
    group_partition,
    staged_event_key,
)

WRITE_BATCH = 25
"""BatchWriteItem's limit."""
UNPROCESSED_RETRIES = 8


@dataclass(frozen=True)
class Staged:
    """One event as it waits: its place in the group, and the message it came in."""

    seq: str
    """Its sort key after `event#`: the SQS sequence number, zero-padded to sort."""
    body: str
    message_id: str
    receive_count: int = 1


@dataclass(frozen=True)
class Head:
    marker: str | None = None
    """The flush marker this group expects on the queue (None: none was sent)."""
    since: float | None = None
    """When the group's oldest unflushed event was staged without a flush (Unix s)."""


class StagingTable:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        retention_s: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = dynamodb
        self.table = table
        self._retention_s = retention_s
        self._clock = clock
        self._sleep = sleep

    def stage(self, group: str, events: Sequence[Staged]) -> None:
        """Write the events (again, for a redelivery: the same items)."""
        now = self._clock()
        expires = str(int(now + self._retention_s))
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        **staged_event_key(group, event.seq),
                        "body": {"S": event.body},
                        "message_id": {"S": event.message_id},
                        "receive_count": {"N": str(event.receive_count)},
                        "staged_at": {"N": f"{now:.3f}"},
                        "expires_at": {"N": expires},
                    }
                }
            }
            for event in _unique(events)
        ]
        self._write(requests)

    def load(self, group: str) -> tuple[Head, list[Staged]]:
        """The group's head and every staged event, in queue order."""
        head = Head()
        staged: list[Staged] = []
        for item in self._query(group):
            sk = item["sk"]["S"]
            if sk == HEAD:
                head = _head(item)
            elif (seq := event_seq(sk)) is not None:
                staged.append(
                    Staged(
                        seq=seq,
                        body=item["body"]["S"],
                        message_id=item["message_id"]["S"],
                        receive_count=int(item.get("receive_count", {}).get("N", "1")),
                    )
                )
        return head, staged

    def first(self, group: str) -> Staged | None:
        """The group's oldest staged event, if any (one small read: events sort first)."""
        answer = self._db.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": group_partition(group)},
            ConsistentRead=True,
            Limit=1,
        )
        for item in answer.get("Items", []):
            seq = event_seq(item["sk"]["S"])
            if seq is not None:
                return Staged(seq=seq, body=item["body"]["S"], message_id=item["message_id"]["S"])
        return None

    def head(self, group: str) -> Head:
        answer = self._db.get_item(
            TableName=self.table, Key=group_head_key(group), ConsistentRead=True
        )
        return _head(answer["Item"]) if "Item" in answer else Head()

    def expect_marker(
        self, group: str, marker: str, since: float, *, requeued_for: float | None = None
    ) -> None:
        """Remember the marker just queued for this group (keeping the first `since`);
        `requeued_for`: the pause (its `since`) it was queued again after."""
        expression = "SET marker = :marker, since = if_not_exists(since, :since), "
        expression += "expires_at = :expires"
        values = {
            ":marker": {"S": marker},
            ":since": {"N": f"{since:.3f}"},
            ":expires": {"N": str(int(self._clock() + self._retention_s))},
        }
        if requeued_for is not None:
            expression += ", requeued_for = :pause"
            values[":pause"] = {"N": f"{requeued_for:.6f}"}
        self._db.update_item(
            TableName=self.table,
            Key=group_head_key(group),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )

    def waiting_groups(self, *, requeued_for: float | None = None) -> list[str]:
        """Every group with a head: events staged, a flush marker expected (a Scan of the
        keys only; the pause probe's, after a pause long enough for SQS to have deleted
        markers), but those already given a marker again after the pause `requeued_for`."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "ProjectionExpression": "pk",
            "FilterExpression": "sk = :head",
            "ExpressionAttributeValues": {":head": {"S": HEAD}},
        }
        if requeued_for is not None:
            request["FilterExpression"] += " AND (NOT requeued_for = :pause)"
            request["ExpressionAttributeValues"][":pause"] = {"N": f"{requeued_for:.6f}"}
        groups: list[str] = []
        while True:
            answer = self._db.scan(**request)
            for item in answer.get("Items") or []:
                group = group_of_partition(item["pk"]["S"])
                if group is not None:
                    groups.append(group)
            if "LastEvaluatedKey" not in answer:
                return groups
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def forget(self, group: str, seqs: Iterable[str], *, head: bool = False) -> None:
        """Delete settled events (and the head, when the group is left with nothing)."""
        keys = [staged_event_key(group, seq) for seq in dict.fromkeys(seqs)]
        if head:
            keys.append(group_head_key(group))
        self._write([{"DeleteRequest": {"Key": key}} for key in keys])

    def _query(self, group: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": group_partition(group)},
            "ConsistentRead": True,
        }
        while True:
            answer = self._db.query(**request)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), WRITE_BATCH):
            pending = requests[start : start + WRITE_BATCH]
            for attempt in range(UNPROCESSED_RETRIES):
                answer = self._db.batch_write_item(RequestItems={self.table: pending})
                pending = answer.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
                self._sleep(min(1.0, 0.05 * 2**attempt))  # DynamoDB throttled part of it
            else:
                raise RuntimeError(f"DynamoDB left {len(pending)} staging writes unprocessed")


def _head(item: dict[str, Any]) -> Head:
    marker = item.get("marker", {}).get("S")
    since = item.get("since", {}).get("N")
    return Head(marker=marker, since=float(since) if since is not None else None)


def _unique(events: Sequence[Staged]) -> list[Staged]:
    """One write per item: BatchWriteItem refuses a key twice in one call."""
    return list({event.seq: event for event in events}.values())
