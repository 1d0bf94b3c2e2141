"""The sync Lambda: change events from the FIFO queue become complete contacts in Qomon.

Powertools wiring and one call. The FIFO batch processor walks the messages in order and,
when one must come back, skips the rest of its message group only (one contact's trouble
never holds up another's); what happens to each message is application.sync_batch's
decision: staged and flushed with the contact's whole backlog (one GET and at most one
PATCH however many of its events wait), dead-lettered with the reason, or left on the
queue for a failure that may pass.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from qomon_sync.application.runtime import SyncRuntime, build_runtime
from qomon_sync.application.sync_batch import SyncBatch
from qomon_sync.handlers.observability import logger, metrics, tracer
from qomon_sync.settings import get_settings

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch that is all "retry later" (too little time, Qomon down) is reported as failed
# items, not raised: raising would count as a function error and wake the errors alarm.
processor.raise_on_entire_batch_failure = False


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = SyncBatch(
        event.get("Records") or [],
        context.get_remaining_time_in_millis,
        current_runtime(),
        TELEMETRY,
    )
    try:
        return process_partial_response(
            event=event, record_handler=batch.handle, processor=processor, context=context
        )
    finally:
        batch.emit_usage()


class PowertoolsTelemetry:
    """application.telemetry.Telemetry on the shared Logger and Metrics."""

    def event(self, event_id: str, action: str, **details: Any) -> None:
        logger.set_correlation_id(event_id)
        logger.info("event processed", extra={"event_id": event_id, "action": action, **details})

    def info(self, message: str, **details: Any) -> None:
        logger.info(message, **details)

    def warning(self, message: str, **details: Any) -> None:
        logger.warning(message, extra=details)

    def count(self, name: str, value: float = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def dead_lettered(self, code: str) -> None:
        with single_metric(
            name="EventsDeadLettered", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="service", value=metrics.service or "qomon-sync")
            metric.add_dimension(name="reason", value=code)

    def call(self, endpoint: str, status: int | None, latency_s: float) -> None:
        metrics.add_metric(
            name="QomonLatency", unit=MetricUnit.Milliseconds, value=latency_s * 1000
        )


TELEMETRY = PowertoolsTelemetry()


@lru_cache(maxsize=1)
def current_runtime() -> SyncRuntime:
    settings = get_settings()
    return build_runtime(settings, on_call=TELEMETRY.call)


def reset_runtime() -> None:
    """Forget settings, clients and cached secrets (local mode and tests change the
    environment, including the AWS endpoint the cached boto3 clients point at)."""
    current_runtime.cache_clear()
    get_settings.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # drops providers and values
