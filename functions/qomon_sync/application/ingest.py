"""What the ingest makes of one request at `/webhooks/{source}`: the change events it
queues, or why it refuses them.

`receive` is the whole of it, from the request (`Request.of` API Gateway's event, as
Powertools reads it) to the events queued; the handler writes the answer:

1. the source the path names (404), the method (405: POST, and GET where the sender
   checks the URL with it), the body's bytes (400) and their size (413);
2. `accept`: authenticate the delivery by its source's scheme (fail closed), map it into
   change events, each carrying the name of the source that authenticated it (never a
   name its body chose), and write each as the queue message it becomes
   (`changes_queue.as_entries`: the body keeps an explicit `null`; the deduplication id
   is stable across the sender's retries), checked against what SQS refuses for good,
   naming the field at fault;
3. send them (`changes_queue.send`). What SQS refuses even so is a 400 or a 413 (a retry
   would be refused again); what may pass later is a 503, and the sender retries.

`accept` alone is `qomon-sync preview-webhook`'s path, so that what a preview prints is
what the ingest would queue, to the byte. Nothing an unauthenticated caller sends is a
5xx, and no refusal quotes what was sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import boto3
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from qomon_sync.adapters.changes_queue import (
    MAX_MESSAGE_BYTES,
    QueueRefused,
    QueueUnavailable,
    Unsendable,
    as_entries,
    send,
)
from qomon_sync.adapters.secrets import deployment_pseudonyms, webhook_secret
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.settings import Settings
from qomon_sync.sources.base import (
    BadPayload,
    Source,
    Unauthenticated,
    WebhookError,
    WebhookRequest,
)
from qomon_sync.sources.registry import build_sources, load_mapping

RETRY_AFTER_S = 30
BUNDLED_SOURCES = Path(__file__).resolve().parents[2] / "sources.yaml"
"""functions/sources.yaml in the repository; the bundle's root in the Lambda."""

Warn = Callable[..., None]


class Log(Protocol):
    """Where the ingest writes its log lines (the handler's Powertools Logger). Nothing
    personal is given: source names, statuses, field paths, codes and counts."""

    def info(self, msg: str, *, extra: Mapping[str, object]) -> None: ...

    def warning(self, msg: str, *, extra: Mapping[str, object]) -> None: ...

    def error(self, msg: str, *, extra: Mapping[str, object]) -> None: ...


@dataclass(frozen=True)
class Request:
    """A request at the door, read out of API Gateway's event (HTTP API, payload 2.0)."""

    path: str
    source: str | None
    """The path's `{source}` (None: read from `path`, if it is `/webhooks/<name>`)."""
    method: str
    """Upper case."""
    headers: Mapping[str, str]
    """Names lower-cased."""
    query: Mapping[str, str]
    body: str | None
    """The body as it came: text, or base64 text when `base64_encoded`; None if not text."""
    base64_encoded: bool
    uri: str
    """The URL as the sender called it (`https://<host>/webhooks/<source>?<query>`)."""

    @classmethod
    def of(cls, event: APIGatewayProxyEventV2) -> Request:
        # Headers that are not a mapping count as none (Powertools' `headers` fails on them).
        given = event.headers if isinstance(event.get("headers"), Mapping) else {}
        headers = {name: str(value) for name, value in given.items()}  # names lower-cased
        # The URL the sender called, as schemes that sign it (HubSpot v3) rebuild it: API
        # Gateway is reached over HTTPS at its `host`, the query string as it came.
        scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
        host = headers.get("host") or event.request_context.domain_name
        query, body = event.raw_query_string, event.body or ""
        return cls(
            path=event.raw_path,
            source=event.path_parameters.get("source"),
            method=str(event.request_context.http.method or "").upper(),
            headers=headers,
            query=dict(event.query_string_parameters),
            body=body if isinstance(body, str) else None,
            base64_encoded=bool(event.is_base64_encoded),
            uri=f"{scheme}://{host}{event.raw_path}" + (f"?{query}" if query else ""),
        )


@dataclass(frozen=True)
class Ingest:
    """One deployment's door: its sources, their secrets, its pseudonym key, its queue."""

    sources: Mapping[str, Source]
    secret: Callable[[str], str | None]
    """A source's webhook secret; None while it has none (then nothing passes)."""
    pseudonyms: Callable[[str], str]
    sqs: Any
    queue_url: str
    max_bytes: int = MAX_MESSAGE_BYTES


def build_ingest(settings: Settings) -> Ingest:
    """The deployment's door, as the settings describe it (once per cold start)."""
    mapping = Path(settings.sources_config) if settings.sources_config else BUNDLED_SOURCES
    return Ingest(
        sources=build_sources(load_mapping(mapping)),
        secret=lambda source: webhook_secret(settings.webhook_secrets_secret, source),
        pseudonyms=deployment_pseudonyms(settings.pseudonym_key_secret),
        sqs=boto3.client("sqs"),
        queue_url=settings.changes_queue_url,
        max_bytes=settings.max_message_bytes,
    )


class Refusal(WebhookError):
    """A refusal of the ingest's own (the sources' are WebhookErrors too), with the
    headers its answer carries."""

    headers: Mapping[str, str] = MappingProxyType({})


class UnknownSource(Refusal):
    status = 404
    title = "Unknown webhook source"


class MethodNotAllowed(Refusal):
    status = 405
    title = "Method not allowed"

    def __init__(self, allow: str) -> None:
        super().__init__("webhooks are delivered with POST")
        self.headers = {"allow": allow}


class TooLarge(Refusal):
    """A change event larger than the queue's message size."""

    status = 413
    title = "Payload too large"


class BodyTooLarge(TooLarge):
    """A body larger than the queue's message size: refused before it is read."""


class RefusedByQueue(Refusal):
    """SQS refused the events after the checks passed them: it would refuse them again."""

    title = "Change events refused by the queue"

    def __init__(self, error: QueueRefused) -> None:
        super().__init__(
            f"the queue refused this delivery's change events ({error.code}); "
            "it would refuse them again",
            field="body",
        )
        self.status = 413 if error.too_large else 400


class Unavailable(Refusal):
    """Not queued now, for a reason that may pass: the sender retries."""

    status = 503
    title = "Temporarily unavailable"
    headers = MappingProxyType({"retry-after": str(RETRY_AFTER_S)})


class QueueDown(Unavailable):
    title = "Queue unavailable"


@dataclass(frozen=True)
class Accepted:
    events: list[ChangeEvent]
    messages: list[dict[str, Any]]
    """SendMessageBatch entries, in the events' order."""

    def bodies(self) -> list[Any]:
        """The message bodies as the sync will read them (JSON values)."""
        return [json.loads(message["MessageBody"]) for message in self.messages]


@dataclass(frozen=True)
class UrlChecked:
    """A sender checking the URL with GET when the webhook is saved: nothing to queue."""


def receive(request: Request, ingest: Ingest, log: Log) -> Accepted | UrlChecked:
    """The change events of `request`, queued; or a WebhookError saying why not."""
    name, source = _source(request, ingest.sources)
    _check_method(request.method, source)
    try:
        return _receive(request, name, source, ingest, log)
    except BodyTooLarge:
        raise  # answered, not logged, as 404 and 405 are: the access log has them by caller
    except WebhookError as error:
        extra = {"status": error.status, "field": error.field, "path": request.path}
        log.info("webhook refused", extra=extra)
        raise
    except QueueRefused as error:
        # Not the sender's fault alone: the checks before sending should have caught it.
        log.error("queue refused the events", extra={"code": error.code, "path": request.path})
        raise RefusedByQueue(error) from None
    except QueueUnavailable as error:
        log.warning("queue unavailable", extra={"reason": str(error)})
        raise QueueDown("the events could not be queued; retry later") from None


def _source(request: Request, sources: Mapping[str, Source]) -> tuple[str, Source]:
    name = request.source
    if not name:
        parts = request.path.strip("/").split("/")
        name = parts[1] if len(parts) == 2 and parts[0] == "webhooks" else None
    source = sources.get(name) if name else None
    if not name or source is None:
        raise UnknownSource("no source is configured at this path", field="source")
    return name, source


def _check_method(method: str, source: Source) -> None:
    """POST, and GET where the sender checks the URL with it (Mailchimp)."""
    answers_get = bool(getattr(source, "answers_get", False))
    if method != "POST" and not (method == "GET" and answers_get):
        raise MethodNotAllowed("GET, POST" if answers_get else "POST")


def _receive(
    request: Request, name: str, source: Source, ingest: Ingest, log: Log
) -> Accepted | UrlChecked:
    body = _body(request) if request.method == "POST" else b""
    if len(body) > ingest.max_bytes:
        raise BodyTooLarge(f"the body exceeds {ingest.max_bytes} bytes")
    delivery = WebhookRequest(
        source=name,
        body=body,
        headers=request.headers,
        received_at=datetime.now(UTC),
        query=request.query,
        method=request.method,
        uri=request.uri,
    )
    if request.method == "GET":
        authenticate_delivery(source, delivery, ingest.secret(name), log.warning)
        log.info("webhook URL checked", extra={"source": name})
        return UrlChecked()
    accepted = accept(
        source,
        delivery,
        ingest.secret(name),
        pseudonyms=ingest.pseudonyms,
        max_bytes=ingest.max_bytes,
        warn=log.warning,
    )
    send(ingest.sqs, ingest.queue_url, accepted.messages, max_bytes=ingest.max_bytes)
    log.info("webhook accepted", extra={"source": name, "events": len(accepted.messages)})
    return accepted


def _body(request: Request) -> bytes:
    """The bytes the sender signed."""
    if request.body is None:
        raise BadPayload("the request body is missing", field="body")
    if request.base64_encoded:
        try:
            return base64.b64decode(request.body, validate=True)
        except (binascii.Error, ValueError):
            raise BadPayload("the request body is not valid base64", field="body") from None
    # API Gateway hands text bodies over as UTF-8 text: these are the bytes that were signed.
    try:
        return request.body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a `\ud800` escape in the event
        raise BadPayload("the request body is not Unicode text", field="body") from None


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
