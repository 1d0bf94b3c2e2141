"""What the use case tells the outside world: log lines and metrics, through the handler.

The application does not import the handlers' Powertools Logger and Metrics (dependencies
point from handlers to application); the handler passes an object with these methods.
Nothing given here may hold personal data: callers pass ids, codes, field paths already
redacted (privacy.redact_paths, redact_refusal) and counts.
"""

from __future__ import annotations

from typing import Any, Protocol


class Telemetry(Protocol):
    def event(self, event_id: str, action: str, **details: Any) -> None:
        """One event's outcome ("event processed"), the event id as correlation id."""

    def info(self, message: str, **details: Any) -> None: ...

    def warning(self, message: str, **details: Any) -> None: ...

    def count(self, name: str, value: float = 1) -> None:
        """Add to a Count metric of this invocation."""

    def dead_lettered(self, code: str) -> None:
        """One event dead-lettered, by reason (the EventsDeadLettered metric)."""

    def call(self, endpoint: str, status: int | None, latency_s: float) -> None:
        """After each Qomon call (the QomonLatency metric)."""
