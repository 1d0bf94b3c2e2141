"""The sync Lambda: change events from the FIFO queue become complete contacts in Qomon.

Powertools wiring and one call. Powertools' FIFO batch processor reports what became of
each message (application.sync_batch.SyncBatchProcessor): staged and flushed with the
contact's whole backlog (one GET and at most one PATCH however many of its events wait),
dead-lettered with the reason, waiting staged behind a flush marker, or left on the queue
for a failure that may pass; one contact's trouble never holds up another's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from qomon_sync.application.invocation import Invocation
from qomon_sync.application.runtime import SyncRuntime, build_runtime
from qomon_sync.application.sync_batch import SyncBatchProcessor
from qomon_sync.handlers.observability import logger, metrics, tracer
from qomon_sync.handlers.telemetry import TELEMETRY
from qomon_sync.settings import get_settings

__all__ = ["TELEMETRY", "current_runtime", "handler", "reset_runtime"]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    invocation = Invocation(current_runtime(), TELEMETRY, context.get_remaining_time_in_millis)
    processor = SyncBatchProcessor(invocation)
    try:
        return process_partial_response(
            event=event, record_handler=processor.report, processor=processor, context=context
        )
    finally:
        invocation.emit_usage()


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
