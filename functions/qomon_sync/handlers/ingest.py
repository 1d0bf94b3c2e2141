"""The ingest Lambda: `POST /webhooks/{source}` from an API Gateway HTTP API.

Powertools wiring and one call, application.ingest.receive. Its change events queued are
answered 202 (a sender's URL check with GET, 200), its refusals as problem JSON naming the
field at fault. No answer is a 5xx except 503: when the events could not be queued for a
reason that may pass, or on a bug. The sender then retries, and nothing is lost.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from qomon_sync.application import ingest as use_case
from qomon_sync.handlers.observability import logger, metrics, tracer
from qomon_sync.settings import get_settings
from qomon_sync.sources.base import WebhookError


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, current_ingest())


@lru_cache(maxsize=1)
def current_ingest() -> use_case.Ingest:
    return use_case.build_ingest(get_settings())


def reset_ingest() -> None:
    current_ingest.cache_clear()
    get_settings.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def handle(raw: dict[str, Any], ingest: use_case.Ingest) -> dict[str, Any]:
    """The whole request, answered; never raises."""
    event, path = APIGatewayProxyEventV2(raw), ""
    try:
        path = event.raw_path
        received = use_case.receive(use_case.Request.of(event), ingest, logger)
        response = _answer(200, {"ok": True})
        if isinstance(received, use_case.Accepted):
            ids = [e.event_id for e in received.events]
            response = _answer(202, {"accepted": len(ids), "event_ids": ids})
            metrics.add_metric(name="EventsEnqueued", unit=MetricUnit.Count, value=len(ids))
    except WebhookError as error:
        response = _problem(error, path)
    except Exception as exc:  # a bug must not lose a delivery: 503 makes the sender retry
        # Where, never what: an exception's message can quote the body (personal data).
        tb = traceback.extract_tb(exc.__traceback__)
        frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in tb]
        extra = {"error": type(exc).__name__, "frames": frames}
        logger.error("unexpected error while ingesting a webhook", extra=extra)
        response = _problem(use_case.Unavailable("an unexpected error occurred; retry later"), path)
    # Every answer is counted by status (Webhooks202, Webhooks401, ...): the dashboard and
    # alarms see refused senders as well as accepted deliveries.
    metrics.add_metric(name=f"Webhooks{response['statusCode']}", unit=MetricUnit.Count, value=1)
    return response


def _problem(error: WebhookError, path: str) -> dict[str, Any]:
    """Problem details (RFC 9457): where and why, never what was sent."""
    problem: dict[str, Any] = {"type": "about:blank", "title": error.title}
    problem.update(status=error.status, detail=error.detail)
    if path:
        problem["instance"] = path[:200]
    if error.field:
        problem["errors"] = [{"location": error.field, "message": error.detail}]
    extra = error.headers if isinstance(error, use_case.Refusal) else {}
    return _answer(error.status, problem, {"content-type": "application/problem+json", **extra})


def _answer(status: int, body: object, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    headers = headers or {"content-type": "application/json"}
    text = json.dumps(body, ensure_ascii=False)
    return {"statusCode": status, "headers": headers, "body": text, "isBase64Encoded": False}
