"""What the ingest makes of one delivery: the change events it queues, or why it refuses.

One path for the ingest Lambda and `qomon-sync preview-webhook`, so that what a preview
prints is what the ingest would queue, to the byte:

1. authenticate the delivery by its source's scheme (fail closed);
2. map it into change events, each carrying the name of the source that authenticated it
   (never a name its body chose);
3. write each event as the queue message it becomes, with a deduplication id stable
   across the sender's retries, checked against what SQS refuses for good, naming the
   field at fault (`changes_queue.as_entries`: the body keeps an explicit `null`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qomon_sync.adapters.changes_queue import Unsendable, as_entries
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.sources.base import (
    BadPayload,
    Source,
    Unauthenticated,
    WebhookError,
    WebhookRequest,
)

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
    ids = [
        _deduplication_id(request.source, delivery_id, index, request.body)
        for index in range(len(events))
    ]
    try:
        messages = as_entries(events, ids, pseudonyms=pseudonyms, max_bytes=max_bytes)
    except Unsendable as error:
        refusal = TooLarge if error.too_large else BadPayload
        raise refusal(error.detail, field=error.field) from None
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
