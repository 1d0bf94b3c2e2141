"""What the stand-in counts: calls, statuses and tokens per endpoint, faults played, and
when each contact was written (`GET /_standin/stats`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from qomon_sync_dev.standin.common import JsonObject


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    tokens_by_endpoint: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    dropped: int = 0
    timeouts: int = 0
    server_errors: int = 0
    outage_calls: int = 0
    """Calls answered 503 by the outage switch."""
    refused_key: int = 0
    """Calls answered 401 (a key that is not the one accepted)."""
    written_at: dict[int, list[float]] = field(default_factory=dict)
    """Contact id -> when each write of it (PATCH or POST /contacts) was answered (Unix s):
    the benchmark's latency, from a webhook's 202 to its contact written."""

    def wrote(self, contact_id: int) -> None:
        self.written_at.setdefault(int(contact_id), []).append(time.time())

    def answered(self, status: int) -> None:
        self.statuses[str(status)] += 1
        if status == 429:
            self.rate_limited += 1

    def as_json(self) -> JsonObject:
        return {
            "calls": dict(sorted(self.calls.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "tokens_spent": sum(self.tokens_by_endpoint.values()),
            "tokens_by_endpoint": dict(sorted(self.tokens_by_endpoint.items())),
            "rate_limited": self.rate_limited,
            "written_at": {str(k): v for k, v in sorted(self.written_at.items())},
            "faults": {
                "dropped": self.dropped,
                "timeouts": self.timeouts,
                "server_errors": self.server_errors,
                "outage_calls": self.outage_calls,
                "refused_key": self.refused_key,
            },
        }
