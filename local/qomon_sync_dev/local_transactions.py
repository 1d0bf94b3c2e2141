"""DynamoDB's TransactWriteItems played at local mode's door, through moto's single-item calls.

moto 5.2.5 answers a transaction by first deep-copying every table it touches, to roll
back if a condition fails. The ledger claims a contact's events in one transaction, and
its table holds every event applied so far: each claim copied the whole table, so a
3,000-event backlog spent most of its time copying (a run bound by CPU took 167 s, 46 s
without the copy), and the benchmark measured moto instead of Qomon's token bucket.

Played here instead, one transaction at a time (the caller holds local mode's DynamoDB
lock, so no other request sees it half done):

1. an item named twice, or more than 100 items, is refused as DynamoDB refuses it
   (ValidationException), before anything is written;
2. each item's current image is read (GetItem, consistent), then the operation is made
   with its own condition by moto (PutItem, UpdateItem, DeleteItem; a ConditionCheck is
   a write of the item as it is, under the condition, so it changes nothing);
3. if any condition failed, every item written is put back as it was read, and the
   answer is TransactionCanceledException with one reason per item, in order, as
   DynamoDB gives them (`None`, or `ConditionalCheckFailed` with the old item when
   `ReturnValuesOnConditionCheckFailure` is `ALL_OLD`); any other refusal is put back the
   same way and answered as moto answered it.

The outcome is DynamoDB's documented one for transactions that touch each item once
(the only kind DynamoDB accepts); only the cost changes, to a few calls per item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

Call = Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]
"""One DynamoDB call to moto: (action, request) -> (HTTP status line, answer)."""
Answer = tuple[str, dict[str, Any]]

MAX_ITEMS = 100
PREFIX = "com.amazonaws.dynamodb.v20120810#"
CANCELLED = "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]"
_ALL_OLD = "ReturnValuesOnConditionCheckFailure"
_CONDITION_KEYS = (
    "ConditionExpression",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
)


class Transaction:
    """One TransactWriteItems request, played through `call`."""

    def __init__(self, call: Call, key_names: Callable[[str], tuple[str, ...]]) -> None:
        self._call = call
        self._key_names = key_names
        self._before: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        """(table, key, the item before) of every item written so far."""

    def play(self, request: dict[str, Any]) -> Answer:
        entries = request.get("TransactItems") or []
        refused = self._refusal(entries)
        if refused is not None:
            return refused
        reasons: list[dict[str, Any]] = []
        for entry in entries:
            (kind, operation), *_ = entry.items()
            status, answer = self._one(kind, operation)
            if status.startswith("200"):
                reasons.append({"Code": "None"})
            elif answer.get("__type", "").endswith("ConditionalCheckFailedException"):
                reason = {"Code": "ConditionalCheckFailed", "Message": answer.get("message", "")}
                if "Item" in answer:
                    reason["Item"] = answer["Item"]
                reasons.append(reason)
            else:
                self._put_back()
                return status, answer
        if all(reason["Code"] == "None" for reason in reasons):
            return "200 OK", {}
        self._put_back()
        message = CANCELLED.format(", ".join(reason["Code"] for reason in reasons))
        return "400 Bad Request", {
            "__type": PREFIX + "TransactionCanceledException",
            "Message": message,
            "CancellationReasons": reasons,
        }

    def _refusal(self, entries: list[dict[str, Any]]) -> Answer | None:
        if not entries:
            return _invalid("TransactItems must hold at least 1 item (transactItems)")
        if len(entries) > MAX_ITEMS:
            return _invalid(
                f"Member must have length less than or equal to {MAX_ITEMS} (transactItems)"
            )
        seen: set[str] = set()
        for entry in entries:
            if len(entry) != 1 or next(iter(entry)) not in OPERATIONS:
                return _invalid("A transaction item holds one of Check, Put, Update or Delete")
            (_, operation), *_ = entry.items()
            table = operation.get("TableName", "")
            name = json.dumps([table, self._key(table, operation)], sort_keys=True)
            if name in seen:
                return _invalid(
                    "Transaction request cannot include multiple operations on one item"
                )
            seen.add(name)
        return None

    def _key(self, table: str, operation: dict[str, Any]) -> dict[str, Any]:
        return key_of(operation, self._key_names(table))

    def _one(self, kind: str, operation: dict[str, Any]) -> Answer:
        table = operation["TableName"]
        key = self._key(table, operation)
        status, current = self._call(
            "GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}
        )
        if not status.startswith("200"):
            return status, current
        before = current.get("Item")
        condition = {k: operation[k] for k in _CONDITION_KEYS if k in operation}
        if kind == "Put":
            action, request = "PutItem", {"Item": operation["Item"]}
        elif kind == "Update":
            action = "UpdateItem"
            request = {"Key": key, "UpdateExpression": operation["UpdateExpression"]}
        elif kind == "Delete" or before is None:  # a check of an absent item: delete nothing
            action, request = "DeleteItem", {"Key": key}
        else:  # ConditionCheck of a present item: write it back as it is
            action, request = "PutItem", {"Item": before}
        status, answer = self._call(action, {"TableName": table, **request, **condition})
        if status.startswith("200") and kind != "ConditionCheck":
            self._before.append((table, key, before))
        failed = answer.get("__type", "").endswith("ConditionalCheckFailedException")
        if failed and before is not None and operation.get(_ALL_OLD) == "ALL_OLD":
            answer = {**answer, "Item": before}
        return status, answer

    def _put_back(self) -> None:
        for table, key, before in reversed(self._before):
            if before is None:
                self._call("DeleteItem", {"TableName": table, "Key": key})
            else:
                self._call("PutItem", {"TableName": table, "Item": before})
        self._before.clear()


OPERATIONS = frozenset({"ConditionCheck", "Put", "Update", "Delete"})


def key_of(operation: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The key of the item a write operation names (its `Key`, or its `Item`'s key)."""
    source = operation.get("Key") or operation.get("Item") or {}
    return {name: source.get(name) for name in names}


def _invalid(message: str) -> Answer:
    return "400 Bad Request", {"__type": PREFIX + "ValidationException", "message": message}
