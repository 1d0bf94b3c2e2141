"""application.telemetry.Telemetry on the shared Logger and Metrics (handlers.observability).

The application logs and counts through this, never through Powertools itself: what it
passes is already free of personal data (ids, codes, redacted field paths, counts).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from qomon_sync.handlers.observability import logger, metrics


class PowertoolsTelemetry:
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
"""The one instance the sync handler passes to the application."""
