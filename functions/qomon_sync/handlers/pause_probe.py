"""The pause probe: every minute (an EventBridge schedule) and on demand (`qomon-sync resume`).

Powertools wiring and one call into application.pause.PauseProbe: while the space is
paused it disables the sync's event source mapping, tells a person on the alarm topic,
and when a probe is due makes one Qomon call; when Qomon answers it enables the mapping
again and the backlog drains by itself.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from qomon_sync.adapters.alarm_topic import AlarmTopic
from qomon_sync.adapters.event_source_mapping import EventSourceMapping
from qomon_sync.adapters.qomon import Deadline
from qomon_sync.application.pause import FLOWING, PauseProbe, requeue_markers
from qomon_sync.application.runtime import build_runtime
from qomon_sync.handlers.observability import logger, metrics
from qomon_sync.handlers.telemetry import TELEMETRY
from qomon_sync.settings import get_settings


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    settings = get_settings()
    runtime = build_runtime(settings)
    assert runtime.pauses is not None

    def call(contact_id: int, deadline: Deadline) -> None:
        with runtime.probe_client() as client:
            # Any contact answers the question (a 404 is an answer).
            client.get_contact(contact_id, deadline=deadline)

    def waiting() -> int:
        counts = runtime.sqs.get_queue_attributes(
            QueueUrl=settings.changes_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in counts.values())

    mapping = settings.sync_event_source_mapping
    probe = PauseProbe(
        settings=settings,
        pauses=runtime.pauses,
        mapping=EventSourceMapping(boto3.client("lambda"), mapping) if mapping else None,
        call=call,
        topic=AlarmTopic(boto3.client("sns"), settings.alarm_topic_arn),
        telemetry=TELEMETRY,
        waiting=waiting,
        requeue=lambda since: requeue_markers(
            runtime.staging, runtime.markers, time.time, since=since
        ),
    )
    said = ""
    try:
        said = probe.run()
    finally:
        # Whatever failed, what the round counted (SpacePaused above all) is emitted.
        if said == FLOWING:
            # Every minute while nothing is paused: no line, no metric (nothing to see).
            metrics.clear_metrics()
        else:
            if said:
                logger.info("pause probe", extra={"result": said})
            metrics.flush_metrics()
    return {"result": said}
