"""The stand-in's rate limit (Qomon's per-key token bucket) and the faults it can be told
to play on the next calls (forced statuses, dropped connections, hangs, 429 storms)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from qomon_sync_dev.standin.common import JsonObject
from qomon_sync_dev.standin.config import RetryAfterMode

# -- rate limit -------------------------------------------------------------------------


class TokenBucket:
    """Qomon's per-key bucket: starts full, refills continuously, never above `burst`."""

    def __init__(
        self, burst: int, refill_per_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.refill_per_s)
        self._updated = now

    def try_take(self, cost: int) -> bool:
        self._refill()
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    def remaining(self) -> int:
        self._refill()
        return math.floor(self._tokens)

    def seconds_until(self, cost: int) -> float:
        """How long until `cost` tokens are there (never, past `burst`: this is a lower bound)."""
        self._refill()
        return max(0.0, (cost - self._tokens) / self.refill_per_s)

    def seconds_until_full(self) -> float:
        """`X-Ratelimit-Reset`: how long until the bucket holds `burst` tokens again."""
        return self.seconds_until(self.burst)


# -- faults -----------------------------------------------------------------------------

FaultKind = Literal["status", "drop", "timeout"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int | None = None
    retry_after: RetryAfterMode | None = None
    """For a forced 429: which `Retry-After` it carries (None: the configured one)."""


class FaultSchedule:
    """Faults forced on the next Qomon calls, and rate-limit storms, for deterministic tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._queue: deque[Fault] = deque()
        self._storm_until = 0.0

    def add(self, fault: Fault, count: int) -> None:
        self._queue.extend([fault] * count)

    def start_storm(self, seconds: float) -> None:
        self._storm_until = self._clock() + seconds

    def storm_left(self) -> float:
        return max(0.0, self._storm_until - self._clock())

    def take(self) -> Fault | None:
        """The fault for this call, if any; a storm does not use up the queue."""
        if self.storm_left() > 0:
            return None
        return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        self._queue.clear()
        self._storm_until = 0.0

    def as_json(self) -> JsonObject:
        pending: list[JsonObject] = []
        for fault in self._queue:
            item = {"kind": fault.kind, "status": fault.status, "retry_after": fault.retry_after}
            if pending and {k: v for k, v in pending[-1].items() if k != "count"} == item:
                pending[-1]["count"] += 1
            else:
                pending.append({**item, "count": 1})
        return {"pending": pending, "rate_limit_storm_s": round(self.storm_left(), 3)}
