"""What an invocation reports of Qomon's rate limit: what it spent, never less than none,
even when a rotated API key gave the runtime a new client half-way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from qomon_sync.adapters.qomon.client import CallStats, EndpointStats
from qomon_sync.application.invocation import Invocation


class Counted:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


def spent(calls: int, tokens: int) -> CallStats:
    return CallStats({"GET /contacts/{id}": EndpointStats(calls=calls, tokens=tokens)})


def test_an_invocation_reports_what_it_spent_since_its_first_call() -> None:
    runtime = SimpleNamespace(usage=spent(10, 10))
    telemetry = Counted()
    invocation = Invocation(cast(Any, runtime), cast(Any, telemetry), lambda: 60_000)
    invocation.note_usage()
    runtime.usage.endpoints["GET /contacts/{id}"] = EndpointStats(calls=13, tokens=13)
    invocation.emit_usage()
    assert telemetry.counts["QomonCalls"] == 3
    assert telemetry.counts["QomonTokensSpent"] == 3


def test_a_client_built_anew_on_a_rotated_key_is_counted_from_zero_not_below() -> None:
    runtime = SimpleNamespace(usage=spent(40, 40))
    telemetry = Counted()
    invocation = Invocation(cast(Any, runtime), cast(Any, telemetry), lambda: 60_000)
    invocation.note_usage()
    runtime.usage = spent(2, 6)  # the new key's client: its own counters
    invocation.emit_usage()
    assert telemetry.counts["QomonCalls"] == 2
    assert telemetry.counts["QomonTokensSpent"] == 6
