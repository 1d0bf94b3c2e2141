"""moto made fast enough that a backlog measures qomon-sync, not moto (dev-only).

A 3,000-event benchmark took 629 s, most of it inside moto 5.2.5: its work per message
grows with the backlog, so a long queue cost quadratic time and the harness, not Qomon's
token bucket, set the pace. What it did, and what these patches do instead (behaviour
unchanged, only the cost):

- `unix_time` and `unix_time_millis` build a datetime for each call, and SQS calls them
  once per message in every scan (is it visible? delayed?): plain `time.time()`;
- every receive asks `get_queue_attributes` for the retention period of each message it
  returns, and every send asks the queue's attributes three times whether content-based
  deduplication is on; each time, every attribute is computed, the message counts with a
  scan of the queue each: the retention period and the flag are read from the queue, and
  the three counts come from one scan;
- a delete scans every message's receipt handles, building a list for each: a map from
  receipt handle to message, rebuilt only when a handle is missing from it;
- every request lists moto's package folder (a stat per entry, some 150) to tell which
  service a host names, a seventh of the time of a DynamoDB call: listed once;
- a DynamoDB transaction deep-copies every table it touches before it starts, to roll
  back: conditions are checked first and the writes made only if all hold, which is the
  same outcome for transactions that touch each item once (moto refuses any other).

And one that is about correctness, not speed (`serialize_moto`): moto's server answers
each request in a thread of its own, and neither its SQS nor its DynamoDB takes a lock.
Two consumers receiving at once could both find a message group free and both take
messages of it (FIFO's one-consumer-per-group rule broken: with 10 consumer processes,
one contact's events were once applied out of order), and a delete racing a receive could
fail with "set changed size during iteration". Two conditional updates of one item could
both read it before either wrote: two instances booking on the shared token bucket at
once could both succeed on the same `tat`, one booking lost, and Qomon answered 429 (once
in a 10-consumer run). One lock around every SQS operation, and one around every
DynamoDB write, give SQS's and DynamoDB's own guarantees back.

Never imported by the Lambda bundle: only local mode, the benchmark and the soak run it.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from typing import Any

import moto.sqs.models as sqs_models
from moto import backends as moto_backends
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

_original_unix_time = sqs_models.unix_time  # type: ignore[attr-defined]
_receipts_lock = threading.Lock()


def speed_up_moto() -> None:
    """Install the patches (once per process)."""
    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "_qomon_fast", False):
        return
    patches: tuple[tuple[Any, str, Any], ...] = (
        (sqs_models, "unix_time", _unix_time),
        (sqs_models, "unix_time_millis", _unix_time_millis),
        (SQSBackend, "is_message_valid_based_on_retention_period", _retention),
        (Queue, "attributes", property(_attributes)),
        (Queue, "add_message", _add_message),
        (Queue, "delete_message", _delete_message),
        (DynamoDBBackend, "transact_write_items", _transact_write_items),
    )
    _mark(_retention)
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules


_SQS_LOCK = threading.RLock()
_DYNAMODB_LOCK = threading.RLock()
_SQS_SERIALIZED = (
    "receive_message",
    "delete_message",
    "delete_message_batch",
    "send_message",
    "send_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "get_queue_attributes",
    "purge_queue",
)
_DYNAMODB_SERIALIZED = (
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
    "execute_transaction",
    "get_item",
    "batch_get_item",
    "query",
    "scan",
)
"""Reads too: a read in the middle of a write could see half of it."""


def serialize_moto() -> None:
    """One SQS operation, and one DynamoDB operation, at a time (install last: outside
    every other wrapper)."""
    for backend, names, lock in (
        (SQSBackend, _SQS_SERIALIZED, _SQS_LOCK),
        (DynamoDBBackend, _DYNAMODB_SERIALIZED, _DYNAMODB_LOCK),
    ):
        for name in names:
            original = getattr(backend, name, None)
            if original is None or getattr(original, "_qomon_serialized", False):
                continue
            setattr(backend, name, _serialized(original, lock))


def _serialized(original: Any, lock: threading.RLock) -> Any:
    @functools.wraps(original)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(*args, **kwargs)

    locked._qomon_serialized = True  # type: ignore[attr-defined]
    return locked


def _mark(function: Any) -> None:
    function._qomon_fast = True


def _unix_time(dt: Any = None) -> float:
    return time.time() if dt is None else float(_original_unix_time(dt))


def _unix_time_millis(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else float(_original_unix_time(dt)) * 1000.0


def _retention(backend: SQSBackend, queue_name: str, message: Message) -> bool:
    queue = backend.get_queue(queue_name)
    period = int(getattr(queue, "message_retention_period", 345600))
    return period + (message.sent_timestamp or 0) / 1000 > time.time()


_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)
_NAMES: dict[str, str] = {}


def _attributes(queue: Queue) -> dict[str, Any]:
    """moto's Queue.attributes, the three message counts taken in one scan."""
    now = time.time() * 1000.0
    visible = delayed = hidden = 0
    for message in queue._messages:
        is_delayed = now < message.delayed_until
        is_visible = now > message.visible_at
        delayed += is_delayed
        hidden += not is_visible
        visible += is_visible and not is_delayed
    counts = dict(zip(_COUNTS, (visible, delayed, hidden), strict=True))
    names = list(queue.BASE_ATTRIBUTES)
    if queue.fifo_queue:
        names += queue.FIFO_ATTRIBUTES
    if getattr(queue, "kms_master_key_id", None):
        names += queue.KMS_ATTRIBUTES
    result: dict[str, Any] = {}
    for name in names:
        if name in counts:
            result[name] = counts[name]
            continue
        attribute = _NAMES.get(name) or _NAMES.setdefault(name, camelcase_to_underscores(name))
        result[name] = getattr(queue, attribute)
    if queue.policy:
        result["Policy"] = queue.policy
    if queue.redrive_policy:
        result["RedrivePolicy"] = json.dumps(queue.redrive_policy)
    return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}


def _add_message(queue: Queue, message: Message) -> None:
    """moto's, less the attribute computation (and its event source mappings: none)."""
    if queue.fifo_queue and (
        getattr(queue, "content_based_deduplication", False) or message.deduplication_id
    ):
        for kept in queue._messages:
            if kept.deduplication_id == message.deduplication_id:
                diff = (message.sent_timestamp or 0) - (kept.sent_timestamp or 0)
                if diff / 1000 < sqs_models.DEDUPLICATION_TIME_IN_SECONDS:
                    return
    with queue._messages_lock:
        queue._messages.append(message)
        queue._messages_lock.notify_all()


def _delete_message(queue: Queue, receipt_handle: str) -> None:
    if receipt_handle in queue.deleted_messages:
        return  # already deleted: SQS answers success again
    message = _by_receipt(queue, receipt_handle)
    if message is None:
        raise ReceiptHandleIsInvalid()
    queue.pending_messages.discard(message)
    queue.deleted_messages.update(h for h in message.all_receipt_handles if h)
    with queue._messages_lock:
        queue._messages = [m for m in queue._messages if m is not message]


def _by_receipt(queue: Queue, receipt_handle: str) -> Message | None:
    with _receipts_lock:
        index: dict[str, Message] = getattr(queue, "_qomon_receipts", {})
        found = index.get(receipt_handle)
        if found is None or not any(m is found for m in queue._messages):
            index = {
                handle: m for m in queue._messages for handle in m.all_receipt_handles if handle
            }
            queue._qomon_receipts = index  # type: ignore[attr-defined]
            found = index.get(receipt_handle)
        return found


def _transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """Check every condition, then write: all or nothing, without copying the tables."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    targets: set[tuple[str, str]] = set()
    errors: list[Any] = []
    operations = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        kind, op = next(iter(entry.items()))
        table = backend.get_table(op["TableName"])
        if kind == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        target = (op["TableName"], str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        errors.append(_condition_error(backend, op, key))
        operations.append((kind, op, key))
    if any(error[0] is not None for error in errors):
        raise TransactionCanceledException(errors)
    for kind, op, key in operations:
        if kind == "Put":
            backend.put_item(op["TableName"], op["Item"])
        elif kind == "Delete":
            backend.delete_item(op["TableName"], key)
        elif kind == "Update":
            backend.update_item(
                op["TableName"],
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=op.get("ExpressionAttributeNames"),
                expression_attribute_values=op.get("ExpressionAttributeValues"),
            )


def _condition_error(
    backend: DynamoDBBackend, op: dict[str, Any], key: dict[str, Any]
) -> tuple[Any, Any, Any]:
    from moto.dynamodb.comparisons import get_filter_expression

    condition = op.get("ConditionExpression")
    if condition is None:
        return (None, None, None)
    current = backend.get_item(op["TableName"], key)
    check = get_filter_expression(
        condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    )
    if check.expr(current):
        return (None, None, None)
    old = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old = current.to_json()["Attributes"]
    failed = ConditionalCheckFailed(item=old)
    return ("ConditionalCheckFailed", str(failed.message), old)
