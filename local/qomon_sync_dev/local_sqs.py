"""Local mode's SQS: the changes queue and its dead-letter queue, FIFO, in one SQLite file.

moto's SQS served local mode until it had to be rewritten five ways to behave as SQS does
and to keep what it took: it redelivered a message group out of order after a visibility
timeout, filled a batch across groups instead of with "as many messages with the same
message group ID as possible", drew sequence numbers at random where SQS's grow, was not
thread-safe (two consumers once shared a group), its work per message grew with the
backlog (a 3,000-event benchmark took 629 s), and it kept nothing across a stop or a kill.
So local mode answers SQS's JSON protocol itself, for the calls qomon-sync and its tools
make, with SQS's documented FIFO rules:

- a message group is delivered in order, and not at all while one of its messages is in
  flight; a receive takes the oldest available group's messages first, then the next;
- a message whose visibility timeout passes comes back with its receive count; one
  received `maxReceiveCount` times moves to the dead-letter queue on the next receive,
  with its id and count (the redrive policy);
- sequence numbers grow (microseconds since the epoch, kept growing across restarts);
- a deduplication id already held by a message still in the queue within 5 minutes is
  taken and dropped (what moto did, which the figures of the soak and the probe count).

Every call is one SQLite transaction, under one lock: when the state folder is a file,
a message is on disk (`synchronous=FULL`) before SendMessage is answered, and gone from
it when it is deleted, so a kill loses nothing SQS said it took. Without a folder it is
an in-memory database, as fast. Not for AWS: the Lambda bundle never imports it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

DEDUPLICATION_S = 300
SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    group_id TEXT NOT NULL,
    deduplication_id TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    sent_ms INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_ms INTEGER,
    visible_at_ms INTEGER NOT NULL DEFAULT 0,
    group_first INTEGER
);
CREATE INDEX IF NOT EXISTS queue_groups ON queue_messages (queue, group_id, seq);
CREATE INDEX IF NOT EXISTS queue_dedup ON queue_messages (queue, deduplication_id);
"""
SYSTEM = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
)


class SqsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class QueueConfig:
    name: str
    url: str
    arn: str
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def visibility_s(self) -> int:
        return int(self.attributes.get("VisibilityTimeout", "30"))

    def redrive(self) -> tuple[str, int] | None:
        raw = self.attributes.get("RedrivePolicy")
        if not raw:
            return None
        policy = json.loads(raw)
        return str(policy["deadLetterTargetArn"]).rsplit(":", 1)[-1], int(policy["maxReceiveCount"])


def md5_of_attributes(attributes: dict[str, Any]) -> str:
    """SQS's MD5OfMessageAttributes: each attribute's name, type and value, sorted by name."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        kind = str(attribute["DataType"])
        binary = "BinaryValue" in attribute and not kind.startswith(("String", "Number"))
        value = (
            base64.b64decode(attribute["BinaryValue"])
            if binary
            else str(attribute["StringValue"]).encode()
        )
        for part in (name.encode(), kind.encode()):
            digest.update(struct.pack(">I", len(part)) + part)
        digest.update(bytes([2 if binary else 1]) + struct.pack(">I", len(value)) + value)
    return digest.hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def _receipt(message_id: str, receives: int) -> str:
    """A receipt handle names its message and its receive: any handle the message had
    still deletes it, but only the latest changes its visibility (SQS asks for the most
    recently received handle for both)."""
    text = f"{message_id}:{receives}:{uuid.uuid4().hex}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def _receive_of(receipt: str) -> int:
    """The receive a handle was given at (0 when it does not say)."""
    parts = base64.urlsafe_b64decode(receipt.encode()).decode().split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


def _message_of(receipt: str) -> str:
    try:
        return base64.urlsafe_b64decode(receipt.encode()).decode().split(":", 1)[0]
    except (ValueError, UnicodeError):
        raise SqsError("ReceiptHandleIsInvalid", "The receipt handle is not valid") from None


class LocalQueues:
    """FIFO queues in one SQLite database (a file, or memory when `path` is None)."""

    def __init__(self, path: str | None, endpoint: Callable[[], str], account: str, region: str):
        self._db = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None, timeout=30
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Condition(threading.RLock())
        self._endpoint, self._account, self._region = endpoint, account, region
        self.queues: dict[str, QueueConfig] = {}
        (top,) = self._db.execute(
            "SELECT COALESCE(MAX(CAST(sequence_number AS INTEGER)), 0) FROM queue_messages"
        ).fetchone()
        self._sequence = int(top)
        # What a stopped or killed run held in flight is visible again: its consumer is gone.
        self._db.execute("UPDATE queue_messages SET visible_at_ms = 0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- what local mode asks in-process ----------------------------------------------------

    def count(self, name: str) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM queue_messages WHERE queue = ?", (name,)
            ).fetchone()
        return int(n)

    def messages(self, name: str) -> list[tuple[str, str]]:
        """(group, body) of every message of a queue, waiting or in flight, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT group_id, body FROM queue_messages WHERE queue = ? ORDER BY seq", (name,)
            ).fetchall()
        return [(str(group), str(body)) for group, body in rows]

    # -- the JSON protocol ------------------------------------------------------------------

    def call(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"_{action}", None)
        if handler is None:
            raise SqsError("UnsupportedOperation", f"local mode's SQS does not serve {action}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                answer: dict[str, Any] = handler(request)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._lock.notify_all()
        return answer

    def _queue(self, request: dict[str, Any]) -> QueueConfig:
        name = str(request.get("QueueUrl") or request.get("QueueName") or "").rsplit("/", 1)[-1]
        queue = self.queues.get(name)
        if queue is None:
            raise SqsError("QueueDoesNotExist", "The specified queue does not exist.")
        return queue

    def _CreateQueue(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request["QueueName"])
        queue = self.queues.get(name) or QueueConfig(
            name,
            f"{self._endpoint()}/{self._account}/{name}",
            f"arn:aws:sqs:{self._region}:{self._account}:{name}",
        )
        queue.attributes.update(request.get("Attributes") or {})
        self.queues[name] = queue
        return {"QueueUrl": queue.url}

    def _GetQueueAttributes(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(request)
        now = _now_ms()
        (visible, hidden) = self._db.execute(
            """SELECT COALESCE(SUM(visible_at_ms <= ?), 0), COALESCE(SUM(visible_at_ms > ?), 0)
               FROM queue_messages WHERE queue = ?""",
            (now, now, queue.name),
        ).fetchone()
        values = {
            "QueueArn": queue.arn,
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(hidden),
            "ApproximateNumberOfMessagesDelayed": "0",
            "VisibilityTimeout": str(queue.visibility_s),
            "DelaySeconds": "0",
            "MaximumMessageSize": "262144",
            "MessageRetentionPeriod": "345600",
            "ReceiveMessageWaitTimeSeconds": "0",
            "ContentBasedDeduplication": "false",
            **queue.attributes,
        }
        wanted = request.get("AttributeNames") or ["All"]
        return {"Attributes": {k: v for k, v in values.items() if "All" in wanted or k in wanted}}

    # -- sending ------------------------------------------------------------------------------

    def _SendMessage(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._send(self._queue(request), request)

    def _SendMessageBatch(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(request)
        entries = request.get("Entries") or []
        _check_batch(entries)
        done = []
        for entry in entries:
            done.append({"Id": entry["Id"], **self._send(queue, entry)})
        return {"Successful": done, "Failed": []}

    def _send(self, queue: QueueConfig, entry: dict[str, Any]) -> dict[str, Any]:
        group, dedup = entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
        if not group:
            raise SqsError("MissingParameter", "The request must contain MessageGroupId.")
        if not dedup:
            raise SqsError(
                "InvalidParameterValue",
                "The queue should either have "
                "ContentBasedDeduplication enabled or MessageDeduplicationId provided",
            )
        body, attributes = str(entry["MessageBody"]), entry.get("MessageAttributes") or {}
        now = _now_ms()
        self._sequence = max(self._sequence + 1, time.time_ns() // 1000)
        answer = {
            "MessageId": str(uuid.uuid4()),
            "MD5OfMessageBody": _md5(body),
            "SequenceNumber": str(self._sequence).rjust(20, "0"),
        }
        if attributes:
            answer["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
        held = self._db.execute(
            "SELECT 1 FROM queue_messages WHERE queue = ? AND deduplication_id = ? AND sent_ms > ?",
            (queue.name, dedup, now - DEDUPLICATION_S * 1000),
        ).fetchone()
        if held is None:
            seq = self._db.execute(
                """INSERT INTO queue_messages (queue, message_id, body, group_id,
                       deduplication_id, sequence_number, sent_ms, attributes)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    queue.name,
                    answer["MessageId"],
                    body,
                    group,
                    dedup,
                    answer["SequenceNumber"],
                    now,
                    json.dumps(attributes),
                ),
            ).lastrowid
            self._join_group(queue.name, group, seq)
        return answer

    def _join_group(self, queue: str, group: str, seq: int | None) -> None:
        """A group keeps its place among the others while it has messages in the queue
        (the place of its oldest message then), as SQS's receive takes groups in turn."""
        self._db.execute(
            """UPDATE queue_messages SET group_first = COALESCE((SELECT MIN(group_first)
                   FROM queue_messages WHERE queue = ? AND group_id = ? AND seq != ?), seq)
               WHERE seq = ?""",
            (queue, group, seq, seq),
        )

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, request: dict[str, Any]) -> dict[str, Any]:
        """ReceiveMessage, waiting up to WaitTimeSeconds for a message (outside the lock
        between looks, so that senders are not held up)."""
        deadline = time.monotonic() + float(request.get("WaitTimeSeconds") or 0)
        while True:
            answer = self.call("ReceiveMessage", request)
            left = deadline - time.monotonic()
            if answer.get("Messages") or left <= 0:
                return answer
            with self._lock:
                self._lock.wait(min(left, 0.1))

    def _ReceiveMessage(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(request)
        wanted = int(request.get("MaxNumberOfMessages") or 1)
        visibility = request.get("VisibilityTimeout")
        hide_ms = 1000 * int(queue.visibility_s if visibility is None else visibility)
        now = _now_ms()
        redrive = queue.redrive()
        taken: list[tuple[Any, ...]] = []
        # The oldest group first, each group in order, none with a message in flight.
        for row in self._db.execute(
            """SELECT seq, message_id, body, group_id, deduplication_id, sequence_number,
                      sent_ms, attributes, receive_count, first_receive_ms FROM queue_messages m
                JOIN (SELECT group_id, MIN(group_first) AS first FROM queue_messages WHERE queue = ?
                      GROUP BY group_id HAVING MAX(visible_at_ms) <= ?) g USING (group_id)
                WHERE m.queue = ? ORDER BY g.first, m.seq""",
            (queue.name, now, queue.name),
        ).fetchall():
            if redrive is not None and row[8] >= redrive[1]:
                self._db.execute(
                    "UPDATE queue_messages SET queue = ? WHERE seq = ?", (redrive[0], row[0])
                )
                self._join_group(redrive[0], row[3], row[0])
                continue
            taken.append(row)
            if len(taken) >= wanted:
                break
        messages = []
        for row in taken:
            count, first = row[8] + 1, row[9] or now
            self._db.execute(
                """UPDATE queue_messages SET receive_count = ?, first_receive_ms = ?,
                       visible_at_ms = ? WHERE seq = ?""",
                (count, first, now + hide_ms, row[0]),
            )
            messages.append(_shown(row, count, first, request))
        return {"Messages": messages} if messages else {}

    # -- settling -------------------------------------------------------------------------------

    def _DeleteMessage(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(request)
        message_id = _message_of(str(request["ReceiptHandle"]))
        self._db.execute(
            "DELETE FROM queue_messages WHERE queue = ? AND message_id = ?",
            (queue.name, message_id),
        )
        return {}

    def _DeleteMessageBatch(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._batch(request, self._DeleteMessage)

    def _ChangeMessageVisibility(self, request: dict[str, Any]) -> dict[str, Any]:
        queue = self._queue(request)
        receipt = str(request["ReceiptHandle"])
        message_id = _message_of(receipt)
        changed = self._db.execute(
            """UPDATE queue_messages SET visible_at_ms = ? WHERE queue = ? AND message_id = ?
                   AND receive_count = ? AND visible_at_ms > ?""",
            (
                _now_ms() + 1000 * int(request["VisibilityTimeout"]),
                queue.name,
                message_id,
                _receive_of(receipt),
                _now_ms(),
            ),
        ).rowcount
        if not changed:
            raise SqsError(
                "InvalidParameterValue",
                f"Value {receipt} for parameter ReceiptHandle is invalid. Reason: Message does "
                "not exist or is not available for visibility timeout change.",
            )
        return {}

    def _ChangeMessageVisibilityBatch(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._batch(request, self._ChangeMessageVisibility)

    def _batch(
        self, request: dict[str, Any], one: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        entries = request.get("Entries") or []
        _check_batch(entries)
        done, failed = [], []
        for entry in entries:
            try:
                one({"QueueUrl": request["QueueUrl"], **entry})
                done.append({"Id": entry["Id"]})
            except SqsError as error:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": error.code,
                        "Message": error.message,
                    }
                )
        return {"Successful": done, "Failed": failed}


def _check_batch(entries: Iterable[dict[str, Any]]) -> None:
    ids = [entry.get("Id") for entry in entries]
    if not ids:
        raise SqsError("EmptyBatchRequest", "There should be at least one entry in the request.")
    if len(ids) > 10:
        raise SqsError("TooManyEntriesInBatchRequest", "Maximum number of entries is 10.")
    if len(set(ids)) != len(ids):
        raise SqsError("BatchEntryIdsNotDistinct", "Two or more batch entries share an Id.")


def _shown(row: tuple[Any, ...], count: int, first: int, request: dict[str, Any]) -> dict[str, Any]:
    """One received message, with the system and message attributes the request names."""
    _, message_id, body, group, dedup, sequence, sent, attributes, _, _ = row
    system = dict(
        zip(
            SYSTEM,
            ("AIDALOCALMODE", str(sent), str(count), str(first), group, dedup, sequence),
            strict=True,
        )
    )
    names = {
        *(request.get("AttributeNames") or []),
        *(request.get("MessageSystemAttributeNames") or []),
    }
    shown: dict[str, Any] = {
        "MessageId": message_id,
        "ReceiptHandle": _receipt(message_id, count),
        "MD5OfBody": _md5(body),
        "Body": body,
    }
    if names:
        shown["Attributes"] = {k: v for k, v in system.items() if "All" in names or k in names}
    stored: dict[str, Any] = json.loads(attributes)
    patterns = request.get("MessageAttributeNames") or []
    picked = {
        name: value
        for name, value in stored.items()
        if any(
            p in ("All", ".*") or p == name or (p.endswith(".*") and name.startswith(p[:-1]))
            for p in patterns
        )
    }
    if picked:
        shown["MessageAttributes"] = picked
        shown["MD5OfMessageAttributes"] = md5_of_attributes(picked)
    return shown


def _now_ms() -> int:
    return int(time.time() * 1000)
