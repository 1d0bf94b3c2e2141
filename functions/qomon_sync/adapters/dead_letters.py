"""Permanent failures go to the FIFO dead-letter queue at once, body intact, with why.

Attributes say what a person needs to decide: a stable error code (also the metric
dimension), a detail with contact data masked, the fields at fault, Qomon's HTTP status
when there was one, how many times SQS had delivered the message, and when it failed.
The letter comes redacted (privacy.redact_refusal, applied once, where the sync builds
every letter: application.invocation); this adapter only bounds the attributes' size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DETAIL_LIMIT = 1000


@dataclass(frozen=True)
class DeadLetter:
    body: str
    group_id: str
    deduplication_id: str
    code: str
    detail: str
    fields: tuple[str, ...] = ()
    http_status: int | None = None
    attempts: int = 1
    event_id: str | None = None


class DeadLetterQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, letter: DeadLetter) -> None:
        attributes: dict[str, dict[str, str]] = {
            "error_code": {"DataType": "String", "StringValue": letter.code},
            "error_detail": {
                "DataType": "String",
                "StringValue": letter.detail[:DETAIL_LIMIT] or "-",
            },
            "attempts": {"DataType": "Number", "StringValue": str(letter.attempts)},
            "failed_at": {
                "DataType": "String",
                "StringValue": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
        }
        if letter.fields:
            fields = ", ".join(letter.fields)
            attributes["error_fields"] = {
                "DataType": "String",
                "StringValue": fields[:DETAIL_LIMIT],
            }
        if letter.http_status is not None:
            attributes["http_status"] = {
                "DataType": "Number",
                "StringValue": str(letter.http_status),
            }
        if letter.event_id:
            attributes["event_id"] = {"DataType": "String", "StringValue": letter.event_id[:256]}
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=letter.body,
            MessageGroupId=letter.group_id,
            MessageDeduplicationId=letter.deduplication_id,
            MessageAttributes=attributes,
        )
