"""The ingest Lambda: `POST /webhooks/{source}` from an API Gateway HTTP API.

A delivery is authenticated over its exact bytes by its source's scheme, turned into
change events v1 whose `source` is the source authenticated (the URL's), and put on the
FIFO queue (group = the contact, deduplication = that source and the sender's delivery
id) before it is answered 202. Every refusal is problem JSON naming the field at fault.
No answer is a 5xx except 503: when the queue cannot take the events for a reason that
may pass (the sender then retries, and nothing is lost), or on a bug after
authentication. Nothing an unauthenticated caller sends is a 5xx, as checking credentials
fails closed (401); what the queue would refuse for good is a 400 or a 413.
"""

from __future__ import annotations

import base64
import binascii
import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from qomon_sync.adapters.changes_queue import QueueRefused, QueueUnavailable, send
from qomon_sync.adapters.secrets import deployment_pseudonyms, webhook_secret
from qomon_sync.application.ingest import accept, authenticate_delivery
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync.handlers.observability import logger, metrics, tracer
from qomon_sync.settings import Settings, get_settings
from qomon_sync.sources.base import (
    BadPayload,
    Source,
    WebhookError,
    WebhookRequest,
)
from qomon_sync.sources.registry import build_sources, load_mapping

Response = dict[str, Any]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Response:
    return handle(event, current_ingest())


@dataclass
class Ingest:
    settings: Settings
    sources: Mapping[str, Source]
    sqs: Any
    pseudonyms: Pseudonyms

    def secret_for(self, source: str) -> str | None:
        return webhook_secret(self.settings.webhook_secrets_secret, source)


@lru_cache(maxsize=1)
def current_ingest() -> Ingest:
    settings = get_settings()
    config_path = Path(settings.sources_config) if settings.sources_config else _bundled_config()
    return Ingest(
        settings=settings,
        sources=build_sources(load_mapping(config_path)),
        sqs=boto3.client("sqs"),
        pseudonyms=deployment_pseudonyms(settings.pseudonym_key_secret),
    )


def _bundled_config() -> Path:
    # functions/sources.yaml in the repository; the bundle's root in the Lambda.
    return Path(__file__).resolve().parents[2] / "sources.yaml"


def reset_ingest() -> None:
    current_ingest.cache_clear()
    get_settings.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def handle(event: Mapping[str, Any], ingest: Ingest) -> Response:
    """The whole request, answered; never raises."""
    path = str(event.get("rawPath") or "")
    response = _answer(event, ingest, path)
    # Every answer is counted by status (Webhooks202, Webhooks401, ...): the dashboard and
    # alarms see refused senders as well as accepted deliveries.
    metrics.add_metric(name=f"Webhooks{response['statusCode']}", unit=MetricUnit.Count, value=1)
    return response


def _answer(event: Mapping[str, Any], ingest: Ingest, path: str) -> Response:
    try:
        return _handle(event, ingest, path)
    except WebhookError as error:
        logger.info(
            "webhook refused", extra={"status": error.status, "field": error.field, "path": path}
        )
        return problem(error.status, error.title, error.detail, path, field=error.field)
    except QueueRefused as error:
        # Not the sender's fault alone: the checks before sending should have caught it.
        logger.error("queue refused the events", extra={"code": error.code, "path": path})
        return problem(
            413 if error.too_large else 400,
            "Change events refused by the queue",
            f"the queue refused this delivery's change events ({error.code}); "
            "it would refuse them again",
            path,
            field="body",
        )
    except QueueUnavailable as error:
        logger.warning("queue unavailable", extra={"reason": str(error)})
        return problem(
            503,
            "Queue unavailable",
            "the events could not be queued; retry later",
            path,
            retry_after=30,
        )
    except Exception as exc:  # a bug must not lose a delivery: 503 makes the sender retry
        # Where, never what: an exception's message can quote the body (personal data).
        logger.error(
            "unexpected error while ingesting a webhook",
            extra={"error": type(exc).__name__, "frames": _frames(exc)},
        )
        return problem(
            503,
            "Temporarily unavailable",
            "an unexpected error occurred; retry later",
            path,
            retry_after=30,
        )


def _frames(exc: BaseException) -> list[str]:
    return [
        f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
    ]


def _handle(event: Mapping[str, Any], ingest: Ingest, path: str) -> Response:
    method = str(
        _mapping(_mapping(event.get("requestContext")).get("http")).get("method") or ""
    ).upper()
    name = _source_name(event, path)
    source = ingest.sources.get(name) if name else None
    if name is None or source is None:
        return problem(
            404,
            "Unknown webhook source",
            "no source is configured at this path",
            path,
            field="source",
        )
    refused = _method_refused(method, source, path)
    if refused is not None:
        return refused
    body = _raw_body(event) if method == "POST" else b""
    if len(body) > ingest.settings.max_message_bytes:
        return problem(
            413,
            "Payload too large",
            f"the body exceeds {ingest.settings.max_message_bytes} bytes",
            path,
        )
    request = _request(event, name, method, body, path)
    if method == "GET":
        # The sender checking the URL when the webhook is saved (Mailchimp): nothing to queue.
        authenticate_delivery(source, request, ingest.secret_for(name), warn=logger.warning)
        logger.info("webhook URL checked", extra={"source": name})
        return _json(200, {"ok": True})
    accepted = accept(
        source,
        request,
        ingest.secret_for(name),
        pseudonyms=ingest.pseudonyms,
        max_bytes=ingest.settings.max_message_bytes,
        warn=logger.warning,
    )
    events, messages = accepted.events, accepted.messages
    send(
        ingest.sqs,
        ingest.settings.changes_queue_url,
        messages,
        max_bytes=ingest.settings.max_message_bytes,
    )
    metrics.add_metric(name="EventsEnqueued", unit=MetricUnit.Count, value=len(messages))
    logger.info("webhook accepted", extra={"source": name, "events": len(messages)})
    return _json(202, {"accepted": len(events), "event_ids": [e.event_id for e in events]})


def _method_refused(method: str, source: Source, path: str) -> Response | None:
    """405 but for POST, and GET where the sender checks the URL with it (Mailchimp)."""
    answers_get = bool(getattr(source, "answers_get", False))
    if method == "POST" or (method == "GET" and answers_get):
        return None
    return problem(
        405,
        "Method not allowed",
        "webhooks are delivered with POST",
        path,
        headers={"allow": "GET, POST" if answers_get else "POST"},
    )


def _request(
    event: Mapping[str, Any], name: str, method: str, body: bytes, path: str
) -> WebhookRequest:
    headers = {str(k).lower(): str(v) for k, v in _mapping(event.get("headers")).items()}
    return WebhookRequest(
        source=name,
        body=body,
        headers=headers,
        received_at=datetime.now(UTC),
        query={str(k): str(v) for k, v in _mapping(event.get("queryStringParameters")).items()},
        method=method,
        uri=_uri(event, headers, path),
    )


def _mapping(value: Any) -> Mapping[Any, Any]:
    """API Gateway's headers and query parameters; anything else counts as none."""
    return value if isinstance(value, Mapping) else {}


def _source_name(event: Mapping[str, Any], path: str) -> str | None:
    name = _mapping(event.get("pathParameters")).get("source")
    if not name:
        parts = path.strip("/").split("/")
        name = parts[1] if len(parts) == 2 and parts[0] == "webhooks" else None
    return name if isinstance(name, str) and name else None


def _uri(event: Mapping[str, Any], headers: Mapping[str, str], path: str) -> str:
    """The URL the sender called, as schemes that sign it (HubSpot v3) rebuild it: API
    Gateway is reached over HTTPS at its `host`, the query string as it came."""
    context = _mapping(event.get("requestContext"))
    host = headers.get("host") or str(context.get("domainName") or "")
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    query = event.get("rawQueryString")
    return f"{scheme}://{host}{path}" + (f"?{query}" if isinstance(query, str) and query else "")


def _raw_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise _bad("the request body is missing", "body")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("the request body is not valid base64", "body") from None
    # API Gateway hands text bodies over as UTF-8 text: these are the bytes that were signed.
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a `\ud800` escape in the event
        raise _bad("the request body is not Unicode text", "body") from None


def _bad(detail: str, field: str) -> WebhookError:
    return BadPayload(detail, field=field)


def problem(
    status: int,
    title: str,
    detail: str,
    instance: str,
    *,
    field: str | None = None,
    retry_after: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance[:200]
    if field:
        body["errors"] = [{"location": field, "message": detail}]
    extra = dict(headers or {})
    if retry_after is not None:
        extra["retry-after"] = str(retry_after)
    return _json(status, body, content_type="application/problem+json", headers=extra)


def _json(
    status: int,
    body: Mapping[str, Any],
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    return {
        "statusCode": status,
        "headers": {"content-type": content_type, **(headers or {})},
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }
