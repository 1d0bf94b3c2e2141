"""The ingest handler on local AWS (moto): a FIFO queue, the webhook secrets, the bundled
mapping; and the requests API Gateway's HTTP API hands it."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from qomon_sync.adapters.secrets import webhook_secret
from qomon_sync.application.ingest import Ingest
from qomon_sync.sources.base import Source
from qomon_sync_dev.signing import deployment_sources, local_webhook_secrets, signed_request
from tests.conftest import PSEUDONYMS
from tests.unit.fakes import offline_aws

SOURCES: dict[str, Source] = deployment_sources()
"""The deployment's sources (functions/sources.yaml through the registry)."""
SECRETS = local_webhook_secrets()
GENERIC_SECRET = SECRETS["generic"]


@contextmanager
def local_ingest() -> Iterator[Ingest]:
    from aws_lambda_powertools.utilities import parameters

    with offline_aws():
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="changes.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"
        ]
        boto3.client("secretsmanager").create_secret(
            Name="webhooks", SecretString=json.dumps(SECRETS)
        )
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        yield Ingest(
            sources=SOURCES,
            secret=lambda source: webhook_secret("webhooks", source),
            pseudonyms=PSEUDONYMS,
            sqs=sqs,
            queue_url=queue,
        )
        parameters.clear_caches()  # type: ignore[no-untyped-call]


def api_event(
    source: Any,
    method: str,
    headers: Any,
    body: Any,
    base64_encoded: Any = False,
    query: str = "",
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": f"/webhooks/{source}",
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": dict(urllib.parse.parse_qsl(query)) or None,
        "pathParameters": {"source": source} if isinstance(source, str) and source else None,
        "requestContext": {"http": {"method": method}, "domainName": "hooks.example.org"},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def signed_event(
    source: str, body: bytes, *, msg_id: str | None = None, method: str = "POST"
) -> dict[str, Any]:
    """A request of `body` to `source`, signed as its sender signs it, now."""
    sender = SOURCES[source]
    request = signed_request(
        sender,
        SECRETS[source],
        body,
        url=f"https://hooks.example.org/webhooks/{source}",
        method=method,
        headers={"webhook-id": msg_id} if msg_id else None,
        at=datetime.now(UTC),
    )
    content_type = "application/x-www-form-urlencoded" if _is_form(sender) else "application/json"
    return api_event(
        source,
        method,
        {"content-type": content_type, "host": "hooks.example.org", **request.headers},
        request.body.decode("utf-8"),
        query=urllib.parse.urlencode(dict(request.query)),
    )


def _is_form(source: Source) -> bool:
    config = getattr(source, "config", None)
    return getattr(config, "body", "json") == "form"


def queued(ingest: Ingest) -> list[dict[str, Any]]:
    """Every message on the queue, taken off it (body parsed, plus the SQS attributes)."""
    found: list[dict[str, Any]] = []
    while True:
        answer = ingest.sqs.receive_message(
            QueueUrl=ingest.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append({"body": json.loads(message["Body"]), **message})
            ingest.sqs.delete_message(
                QueueUrl=ingest.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


SQS_REFUSES = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What SQS refuses in a message (its documented set: #x9 | #xA | #xD | #x20 to #xD7FF |
#xE000 to #xFFFD | #x10000 to #x10FFFF), written here independently of the code under test."""
SQS_MAX_BYTES = 262_144


class StrictQueue:
    """moto's SQS client with the checks SQS makes and moto does not: moto takes U+FFFF and
    messages or batches of any size. Per entry, a character SQS refuses fails that entry
    (`SenderFault`); a batch over 256 KiB in all fails the whole call."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.calls += 1
        entries = kwargs["Entries"]
        if sum(len(e["MessageBody"].encode("utf-8", "surrogatepass")) for e in entries) > (
            SQS_MAX_BYTES
        ):
            raise ClientError(
                {
                    "Error": {
                        "Code": "AWS.SimpleQueueService.BatchRequestTooLong",
                        "Message": "Batch requests cannot be longer than 262144 bytes.",
                        "Type": "Sender",
                    }
                },
                "SendMessageBatch",
            )
        refused = [e for e in entries if SQS_REFUSES.search(e["MessageBody"])]
        taken = [e for e in entries if e not in refused]
        answer = self._sqs.send_message_batch(**{**kwargs, "Entries": taken}) if taken else {}
        failed = [
            {
                "Id": e["Id"],
                "SenderFault": True,
                "Code": "InvalidMessageContents",
                "Message": "Invalid binary character was found in the message body",
            }
            for e in refused
        ]
        return {
            "Successful": answer.get("Successful", []),
            "Failed": [*answer.get("Failed", []), *failed],
        }
