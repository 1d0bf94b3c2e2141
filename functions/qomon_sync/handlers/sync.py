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

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from qomon_sync.application.invocation import Invocation
from qomon_sync.application.runtime import SyncRuntime, build_runtime
from qomon_sync.application.sync_batch import SyncBatch
from qomon_sync.handlers.observability import logger, metrics, tracer
from qomon_sync.handlers.telemetry import TELEMETRY
from qomon_sync.settings import get_settings

__all__ = ["TELEMETRY", "current_runtime", "handler", "reset_runtime"]

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch that is all "retry later" (too little time, Qomon down) is reported as failed
# items, not raised: raising would count as a function error and wake the errors alarm.
processor.raise_on_entire_batch_failure = False


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    invocation = Invocation(current_runtime(), TELEMETRY, context.get_remaining_time_in_millis)
    batch = SyncBatch(event.get("Records") or [], invocation)
    try:
        return process_partial_response(
            event=event, record_handler=batch.handle, processor=processor, context=context
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
