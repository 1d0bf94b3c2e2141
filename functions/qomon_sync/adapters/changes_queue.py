"""Putting change events on the FIFO queue, and sorting what SQS answers into "may pass
later" and "never will".

SQS takes at most 10 entries and 256 KiB in one SendMessageBatch, and refuses a message
holding a character outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
#x10000-#x10FFFF. `as_entries` writes change events as the messages they become and checks
them against those rules before anything is sent, naming the field at fault: moto, which
local mode runs on, takes all of it, so SQS's refusals must never be what finds them, and
they would leave part of a batch queued. `send` cuts batches by count and by size. The
ingest, the backfill and the redrive all send through here.

What SQS still refuses is told apart from what fails:
- QueueRefused: the content, which a retry would send again unchanged (an entry failed
  with `SenderFault`, or a request refused as too long or invalid);
- QueueUnavailable: anything that may pass later (throttling, an outage, a network
  error, a queue or a permission an operator restores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from qomon_sync.domain.change_event import NOT_TEXT, ChangeEvent, character_name
from qomon_sync.domain.validation import Location, location

MAX_BATCH_ENTRIES = 10
MAX_MESSAGE_BYTES = 262_144
"""SQS's largest message and largest batch (256 KiB)."""
RETRIES = 1
"""Entries SQS failed on its side are sent once more before the delivery is given up."""

_TOO_LARGE = frozenset({"BatchRequestTooLong", "MessageTooLong"})
_INVALID = frozenset(
    {
        "InvalidMessageContents",
        "InvalidParameterValue",
        "InvalidAttributeName",
        "InvalidAttributeValue",
        "BatchEntryIdsNotDistinct",
        "InvalidBatchEntryId",
        "TooManyEntriesInBatchRequest",
        "EmptyBatchRequest",
        "UnsupportedOperation",
    }
)


class QueueUnavailable(Exception):
    """The events were not queued, and may be later: the sender should retry."""


class QueueRefused(Exception):
    """SQS refused the events themselves: the same delivery would be refused again."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.too_large = code in _TOO_LARGE
        super().__init__(code)


class Unsendable(Exception):
    """A change event SQS would refuse for good, found before anything is sent. `detail`
    says where and why (the field, the character's code point), never what it holds."""

    def __init__(self, detail: str, *, field: str | None = None, too_large: bool = False) -> None:
        self.detail = detail
        self.field = field
        self.too_large = too_large
        super().__init__(detail)


def message_body(event: ChangeEvent) -> str:
    """The one way a change event is written as a message body: every field its maker set,
    and only those, so that it is read back with the same meaning. An explicit `null`
    (`"set": {"phone": null}`, clear the phone) stays a `null`, and a field left out stays
    out (untouched): dropping the nulls would turn a clear into nothing at all."""
    return event.model_dump_json(exclude_unset=True)


def queue_entry(
    event: ChangeEvent,
    deduplication_id: str,
    entry_id: str = "0",
    *,
    pseudonyms: Callable[[str], str],
) -> dict[str, Any]:
    """One change event as a SendMessageBatch entry: the message group is the contact
    (`ContactRef.group`, an e-mail keyed by the deployment's `pseudonyms`), so one
    person's changes are applied in order."""
    return {
        "Id": entry_id,
        "MessageBody": message_body(event),
        "MessageGroupId": event.contact.group(pseudonyms),
        "MessageDeduplicationId": deduplication_id,
    }


def as_entries(
    events: Sequence[ChangeEvent],
    deduplication_ids: Sequence[str],
    *,
    pseudonyms: Callable[[str], str],
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[dict[str, Any]]:
    """The events as SendMessageBatch entries, in order (`Id` is the index), each with the
    caller's deduplication id; or Unsendable if SQS would refuse one of them for good
    (every character is looked at before any size)."""
    built = [
        queue_entry(event, deduplication_id, str(index), pseudonyms=pseudonyms)
        for index, (event, deduplication_id) in enumerate(
            zip(events, deduplication_ids, strict=True)
        )
    ]
    for event, entry in zip(events, built, strict=True):
        _check_text(event, entry)
    if any(message_bytes(entry) > max_bytes for entry in built):
        raise Unsendable("a change event exceeds the queue's message size", too_large=True)
    return built


def _check_text(event: ChangeEvent, entry: dict[str, Any]) -> None:
    """A change event's texts are checked as it is built (ChangeEvent, payload.as_text);
    this is the last look at what is actually sent, naming the field if one slipped by."""
    char = refused_character(entry["MessageBody"])
    if char is None:
        return
    found = _location_of(event.model_dump(mode="json", exclude_unset=True), char)
    where = location(found) if found else "body"
    raise Unsendable(
        f"`{where}` of change event `{event.event_id}` holds {character_name(char)}, "
        "which the queue refuses",
        field=where,
    )


def _location_of(value: Any, char: str, loc: Location = ()) -> Location | None:
    """Where in `value` a text holds `char`."""
    if isinstance(value, str):
        return loc if char in value else None
    if not isinstance(value, dict | list):
        return None
    items: Sequence[tuple[Any, Any]] = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    )
    for key, item in items:
        found = _location_of(item, char, (*loc, key))
        if found is not None:
            return found
    return None


def refused_character(text: str) -> str | None:
    """The first character of `text` SQS refuses, or None."""
    found = NOT_TEXT.search(text)
    return found.group() if found else None


def message_bytes(entry: dict[str, Any]) -> int:
    """An entry's size as SQS counts it: the body, and each attribute's name, type and value."""
    size = len(entry["MessageBody"].encode("utf-8", "surrogatepass"))
    for name, attribute in (entry.get("MessageAttributes") or {}).items():
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
        size += len(name.encode()) + len(attribute.get("DataType", "").encode())
        size += len(value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value)
    return size


def batches(entries: Sequence[dict[str, Any]], max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive entries, at most 10 and `max_bytes` in all per batch (order kept, as the
    FIFO queue keeps it within each message group)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = message_bytes(entry)
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + entry_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


def send(
    sqs: Any,
    queue_url: str,
    entries: Sequence[dict[str, Any]],
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> None:
    """Queue every entry, in order, or raise QueueRefused / QueueUnavailable."""
    for batch in batches(entries, max_bytes):
        pending = batch
        for _ in range(1 + RETRIES):
            answer = _send_batch(sqs, queue_url, pending)
            failures = answer.get("Failed") or []
            for failure in failures:
                if failure.get("SenderFault"):
                    raise QueueRefused(_plain(str(failure.get("Code") or "SenderFault")))
            failed = {failure["Id"] for failure in failures}
            pending = [entry for entry in pending if entry["Id"] in failed]
            if not pending:
                break
        if pending:
            raise QueueUnavailable(f"{len(pending)} events not taken by SQS")


def _send_batch(sqs: Any, queue_url: str, entries: list[dict[str, Any]]) -> Any:
    try:
        return sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except ClientError as exc:
        code = _plain(str(exc.response.get("Error", {}).get("Code") or "ClientError"))
        if code in _TOO_LARGE or code in _INVALID:
            raise QueueRefused(code) from None
        raise QueueUnavailable(code) from None
    except UnicodeError:  # botocore cannot even encode it (a lone surrogate)
        raise QueueRefused("InvalidMessageContents") from None
    except Exception as exc:  # botocore's connection and credential errors
        raise QueueUnavailable(type(exc).__name__) from None


def _plain(code: str) -> str:
    """`AWS.SimpleQueueService.BatchRequestTooLong` (the query-compatible form) as
    `BatchRequestTooLong`."""
    return code.removeprefix("AWS.SimpleQueueService.")
