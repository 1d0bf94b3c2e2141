"""Flush markers: messages the sync function puts behind a group's staged events.

When a batch ends in the middle of a contact's backlog, its events are staged and deleted
from the queue without being applied: more of them are surely waiting. A marker, sent to
the changes queue in the contact's own message group, is what makes sure they are applied
even if nothing else ever arrives for that contact: FIFO order puts it behind every event
already waiting, and whoever receives it flushes the group (application.sync_batch).

A marker is known by its message attribute, which no sender can set (the ingest function
sets none), never by its body alone. Its body names the group and the marker; it holds
nothing of a person.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

KIND_ATTRIBUTE = "qomon_sync_kind"
MARKER_KIND = "flush-marker"


class FlushMarkers:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, group: str) -> str:
        """Queue a marker behind `group`'s waiting messages; returns its id."""
        marker = uuid.uuid4().hex
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps({"flush": group, "marker": marker}),
            MessageGroupId=group,
            MessageDeduplicationId=f"flush-{marker}",
            MessageAttributes={KIND_ATTRIBUTE: {"DataType": "String", "StringValue": MARKER_KIND}},
        )
        return marker

    def hold(self, receipt_handle: str, seconds: int) -> None:
        """Keep a received marker hidden on the queue for `seconds`, from now (it is then
        reported as a batch item failure, so the event source mapping leaves it there)."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
        )


def marker_of(message_attributes: dict[str, Any], body: str) -> str | None:
    """The marker id of a received record (Lambda's event shape), or None for an event."""
    kind = (message_attributes or {}).get(KIND_ATTRIBUTE) or {}
    if kind.get("stringValue") != MARKER_KIND:
        return None
    try:
        marker = json.loads(body).get("marker")
    except (ValueError, AttributeError):
        marker = None
    return str(marker) if marker else "unnamed"
