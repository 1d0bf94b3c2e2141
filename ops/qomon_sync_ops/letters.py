"""Reading the dead-letter queue without consuming it, and moving letters out of it.

A letter is read by receiving it with a short visibility timeout, and given back by
setting its visibility to 0 (`held`): nothing is deleted by looking. SQS FIFO hands out
at most what one receive of a message group can hold while the group's earlier letters
are being read (10 of one contact): a contact's later letters show once the first ones
are moved or dropped, and a read says how many it could not see.

A letter is moved back to the changes queue by sending it (same message group, a
deduplication id derived from its message id) and only then deleting it: a failure in
between leaves it in both queues, never in neither, and the idempotency ledger keeps a
copy from being applied twice. A contact's flush marker (the sync function's message
that makes a contact's staged events apply) keeps its kind attribute when moved back, or
it would come back as a message that is not a change event.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qomon_sync.adapters.changes_queue import QueueRefused, QueueUnavailable, send
from qomon_sync.adapters.flush_markers import KIND_ATTRIBUTE, MARKER_KIND
from qomon_sync.domain.privacy import redact_text
from qomon_sync.domain.refusal import EXPLAINED, Code

RETRIES_EXHAUSTED = "retries_exhausted"
"""The code shown for a letter without `error_code`: the changes queue's redrive policy
moved it after maxReceiveCount deliveries that never returned (crashes, timeouts)."""
RETRIES_EXHAUSTED_EXPLAINED = (
    "it came back on every delivery without the sync function settling it, so the queue's "
    "redrive policy moved it here without a reason: the function crashed or timed out on it "
    "each time, had too little time left to start it, or could not stage it or write its "
    "letter (DynamoDB or SQS failing)",
    "look in the sync function's logs for ERROR, 'Task timed out' and 'events left for "
    "redelivery' with its message id (the sync errors alarm says so too), and check that "
    "Qomon answers (status); once the cause is gone, redrive: it is safe, the contact's "
    "events are applied once",
)
FLUSH_MARKER = "flush_marker"
"""The code shown for a contact's flush marker moved here by the redrive policy."""
FLUSH_MARKER_EXPLAINED = (
    "a contact's flush marker, not an event: the sync function failed on it on every "
    "delivery, so the contact's waiting events stay in the staging table, unapplied",
    "check that Qomon answers (status, the sync function's logs), then redrive it: the "
    "contact's waiting events are then applied (a later event for the contact does it too)",
)
PEEK_VISIBILITY_S = 60
"""How long a read hides the letters from others before giving them back (it gives them
back at once when done; this bounds a read that is killed)."""
MAX_LETTERS = 10_000


@dataclass(frozen=True)
class Letter:
    message_id: str
    receipt_handle: str
    body: str
    group_id: str
    sent_at: datetime | None
    code: str | None
    detail: str
    fields: tuple[str, ...]
    http_status: int | None
    attempts: int | None
    failed_at: datetime | None
    event_id: str
    source: str
    kind: str = ""
    """The `qomon_sync_kind` attribute: `flush-marker` for a flush marker, else empty."""

    @property
    def is_flush_marker(self) -> bool:
        return self.kind == MARKER_KIND

    @property
    def code_label(self) -> str:
        if self.code is None and self.is_flush_marker:
            return FLUSH_MARKER
        return self.code or RETRIES_EXHAUSTED

    @property
    def when(self) -> datetime | None:
        return self.failed_at or self.sent_at

    def age_s(self, now: datetime) -> float | None:
        when = self.when
        return None if when is None else max(0.0, (now - when).total_seconds())

    def explained(self) -> tuple[str, str]:
        """What the code means and what to do (refusal.EXPLAINED)."""
        if self.code is None:
            return FLUSH_MARKER_EXPLAINED if self.is_flush_marker else RETRIES_EXHAUSTED_EXPLAINED
        try:
            return EXPLAINED[Code(self.code)]
        except ValueError:
            return ("a code this version of qomon-sync does not know", "update qomon-sync")

    def matches(self, wanted: str) -> bool:
        return wanted in {self.event_id, self.message_id}

    def as_json(self, now: datetime) -> dict[str, Any]:
        """Everything but the body and the receipt: nothing personal."""
        return {
            "event_id": self.event_id,
            "source": self.source,
            "code": self.code_label,
            "fields": list(self.fields),
            "detail": self.detail,
            "http_status": self.http_status,
            "attempts": self.attempts,
            "failed_at": self.when.isoformat() if self.when else None,
            "age_s": self.age_s(now),
            "contact": self.group_id,
            "message_id": self.message_id,
        }


def letter_from(message: dict[str, Any]) -> Letter:
    attributes = {
        name: str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    system = message.get("Attributes") or {}
    body = str(message.get("Body", ""))
    event_id, source = _event_of(body)
    fields = attributes.get("error_fields", "")
    return Letter(
        message_id=str(message["MessageId"]),
        receipt_handle=str(message["ReceiptHandle"]),
        body=body,
        group_id=str(system.get("MessageGroupId") or ""),
        sent_at=_from_millis(system.get("SentTimestamp")),
        code=attributes.get("error_code") or None,
        detail=redact_text(attributes.get("error_detail", "")),
        fields=tuple(f.strip() for f in fields.split(",") if f.strip()),
        http_status=_int(attributes.get("http_status")),
        attempts=_int(attributes.get("attempts") or system.get("ApproximateReceiveCount")),
        failed_at=_from_iso(attributes.get("failed_at")),
        event_id=attributes.get("event_id") or event_id or str(message["MessageId"]),
        source=source or "?",
        kind=attributes.get(KIND_ATTRIBUTE, ""),
    )


def _event_of(body: str) -> tuple[str, str]:
    """The event id and source the body names, if it is a JSON object that names them."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    event_id, source = data.get("event_id"), data.get("source")
    return (
        event_id if isinstance(event_id, str) else "",
        source if isinstance(source, str) else "",
    )


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _from_millis(value: object) -> datetime | None:
    number = _int(value)
    return None if number is None else datetime.fromtimestamp(number / 1000, UTC)


def _from_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Read:
    """What one read of the dead-letter queue saw."""

    letters: list[Letter]
    waiting: int
    """How many letters SQS said the queue held before the read."""
    removed: set[str] = field(default_factory=set)
    """Message ids deleted since: not given back."""

    @property
    def unseen(self) -> int:
        """Letters the read could not see (held behind a contact's first 10, or arriving)."""
        return max(0, self.waiting - len(self.letters))


def count(sqs: Any, queue_url: str) -> int:
    answer = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(answer.get("ApproximateNumberOfMessages", 0)) + int(
        answer.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def read(sqs: Any, queue_url: str, *, visibility_s: int = PEEK_VISIBILITY_S) -> Read:
    """Receive every letter the queue hands out, keeping them hidden (see `held`)."""
    waiting = count(sqs, queue_url)
    letters: dict[str, Letter] = {}
    started = time.monotonic()
    while len(letters) < MAX_LETTERS and time.monotonic() - started < visibility_s / 2:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_s,
            # A short wait, not none: a short poll may sample servers holding nothing.
            WaitTimeSeconds=1 if waiting else 0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages") or []
        if not messages:
            break
        for message in messages:
            letter = letter_from(message)
            letters[letter.message_id] = letter
    return Read(list(letters.values()), waiting)


def give_back(sqs: Any, queue_url: str, letters: Iterable[Letter]) -> None:
    """Make letters visible again at once."""
    pending = list(letters)
    for start in range(0, len(pending), 10):
        chunk = pending[start : start + 10]
        with contextlib.suppress(Exception):  # they come back by themselves after the timeout
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                    for i, letter in enumerate(chunk)
                ],
            )


@contextlib.contextmanager
def held(sqs: Any, queue_url: str) -> Iterator[Read]:
    """Every letter, hidden while the caller decides; those it did not delete are given
    back when it is done, whatever happens (an error, Ctrl-C)."""
    seen = read(sqs, queue_url)
    try:
        yield seen
    finally:
        give_back(sqs, queue_url, [m for m in seen.letters if m.message_id not in seen.removed])


def redrive_deduplication_id(letter: Letter) -> str:
    """Fresh (a letter dead-lettered again has a new message id) and stable (a retried
    redrive of the same letter is the same message to SQS)."""
    return hashlib.sha256(f"redrive\n{letter.message_id}".encode()).hexdigest()


@dataclass
class Moved:
    moved: list[Letter]
    not_removed: list[Letter]
    """Sent back, but still in the dead-letter queue as well: safe to drop."""
    not_sent: list[Letter]
    error: str | None = None


def move_back(
    sqs: Any,
    seen: Read,
    dead_letter_queue_url: str,
    changes_queue_url: str,
    letters: Sequence[Letter],
) -> Moved:
    """Send each letter to the changes queue, then delete it from the dead-letter queue."""
    result = Moved([], [], [])
    for start in range(0, len(letters), 10):
        chunk = list(letters[start : start + 10])
        entries = [_entry(i, letter) for i, letter in enumerate(chunk)]
        try:
            send(sqs, changes_queue_url, entries)
        except (QueueRefused, QueueUnavailable) as error:
            # Part of the chunk may be on the changes queue: all of it stays here too.
            result.not_sent.extend(letters[start:])
            result.error = f"the changes queue did not take them ({error})"
            return result
        gone = delete(sqs, seen, dead_letter_queue_url, chunk)
        result.moved.extend(chunk)
        result.not_removed.extend(letter for letter in chunk if letter.message_id not in gone)
    return result


def _entry(index: int, letter: Letter) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Id": str(index),
        "MessageBody": letter.body,
        "MessageGroupId": letter.group_id or letter.message_id,
        "MessageDeduplicationId": redrive_deduplication_id(letter),
    }
    if letter.is_flush_marker:
        entry["MessageAttributes"] = {
            KIND_ATTRIBUTE: {"DataType": "String", "StringValue": MARKER_KIND}
        }
    return entry


def delete(sqs: Any, seen: Read, queue_url: str, letters: Sequence[Letter]) -> set[str]:
    """Delete letters held by `seen`; returns the message ids deleted."""
    gone: set[str] = set()
    for start in range(0, len(letters), 10):
        chunk = list(letters[start : start + 10])
        answer = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle}
                for i, letter in enumerate(chunk)
            ],
        )
        for success in answer.get("Successful") or []:
            gone.add(chunk[int(success["Id"])].message_id)
    seen.removed.update(gone)
    return gone
