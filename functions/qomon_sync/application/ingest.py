"""What the ingest makes of one delivery: the change events it queues, or why it refuses.

One path for the ingest Lambda and `qomon-sync preview-webhook`, so that what a preview
prints is what the ingest would queue, to the byte:

1. authenticate the delivery by its source's scheme (fail closed);
2. map it into change events, each carrying the name of the source that authenticated it
   (never a name its body chose);
3. write each event as the queue message it becomes (`changes_queue.queue_entry`: the body
   keeps an explicit `null`), with a deduplication id stable across the sender's retries;
4. check every message against what SQS refuses for good, naming the field at fault.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qomon_sync.adapters.changes_queue import message_bytes, queue_entry, refused_character
from qomon_sync.domain.change_event import ChangeEvent, character_name
from qomon_sync.sources.base import (
    BadPayload,
    Source,
    Unauthenticated,
    WebhookError,
    WebhookRequest,
)
from qomon_sync.sources.payload import at

Warn = Callable[..., None]


class TooLarge(WebhookError):
    """A change event larger than the queue's message size."""

    status = 413
    title = "Payload too large"


@dataclass(frozen=True)
class Accepted:
    events: list[ChangeEvent]
    messages: list[dict[str, Any]]
    """SendMessageBatch entries, in the events' order."""

    def bodies(self) -> list[Any]:
        """The message bodies as the sync will read them (JSON values)."""
        return [json.loads(message["MessageBody"]) for message in self.messages]


def accept(
    source: Source,
    request: WebhookRequest,
    secret: str | None,
    *,
    pseudonyms: Callable[[str], str],
    max_bytes: int,
    warn: Warn | None = None,
    authenticate: bool = True,
) -> Accepted:
    """The messages `request` becomes, or a WebhookError saying why it is refused.

    `authenticate=False` is for the preview only, which checks a signature on request."""
    if authenticate:
        authenticate_delivery(source, request, secret, warn)
    events = [_as_from(event, request.source) for event in source.change_events(request)]
    delivery_id = source.delivery_id(request)
    messages = [
        queue_entry(
            event,
            _deduplication_id(request.source, delivery_id, index, request.body),
            str(index),
            pseudonyms=pseudonyms,
        )
        for index, event in enumerate(events)
    ]
    # Everything SQS would refuse is found before anything is sent: moto (local mode)
    # takes all of it, and SQS's refusals would leave part of a delivery queued.
    for event, message in zip(events, messages, strict=True):
        _check_sendable(event, message)
    if any(message_bytes(message) > max_bytes for message in messages):
        raise TooLarge("a change event exceeds the queue's message size")
    return Accepted(events, messages)


def authenticate_delivery(
    source: Source, request: WebhookRequest, secret: str | None, warn: Warn | None = None
) -> None:
    """Fail closed: whatever goes wrong while checking a delivery's credentials, it is not
    authenticated. An unauthenticated caller never gets a 5xx (which tells it to retry) nor
    a traceback in the logs (whose message could quote what it sent)."""
    if secret is None:
        raise Unauthenticated("no secret is configured for this source, so nothing can pass")
    try:
        source.authenticate(request, secret)
    except WebhookError:
        raise
    except Exception as exc:
        if warn is not None:
            warn(
                "authentication failed unexpectedly: refused",
                extra={"source": request.source, "error": type(exc).__name__},
            )
        raise Unauthenticated("the delivery's credentials could not be checked") from None


def _as_from(event: ChangeEvent, name: str) -> ChangeEvent:
    """The event as from `name`, the source whose secret verified the delivery.

    The sync's idempotency key is `<source>:<event_id>`: a `source` the body chose would
    let one sender speak for another (a generic event `tally-<id>` claiming `tally` made
    the real Tally delivery a duplicate). The generic source takes change events as they
    are, so its body may name any source: that name is replaced, not refused, as it is a
    label no sender can be trusted with and changes nothing else. `name` is a source name
    (mapping.SOURCE_NAME), which ChangeEvent's `source` takes."""
    return event if event.source == name else event.model_copy(update={"source": name})


def _deduplication_id(source: str, delivery_id: str | None, index: int, body: bytes) -> str:
    origin = delivery_id or hashlib.sha256(body).hexdigest()
    return hashlib.sha256(f"{source}\n{origin}\n{index}".encode()).hexdigest()


def _check_sendable(event: ChangeEvent, message: Mapping[str, Any]) -> None:
    """A change event's texts are checked as it is built (ChangeEvent, payload.as_text);
    this is the last look at what is actually sent, naming the field if one slipped by."""
    char = refused_character(message["MessageBody"])
    if char is None:
        return
    where = _path_of(event.model_dump(mode="json", exclude_unset=True), char) or "body"
    raise BadPayload(
        f"`{where}` of change event `{event.event_id}` holds {character_name(char)}, "
        "which the queue refuses",
        field=where,
    )


def _path_of(value: Any, char: str, path: str = "") -> str | None:
    """Where in `value` a text holds `char`."""
    if isinstance(value, str):
        return path if char in value else None
    if not isinstance(value, dict | list):
        return None
    items: Sequence[tuple[Any, Any]] = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    )
    for key, item in items:
        found = _path_of(item, char, at(path, key))
        if found is not None:
            return found
    return None
