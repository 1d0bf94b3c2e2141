"""Client-side token bucket that mirrors Qomon's rate limit, so a paced client meets no 429.

Qomon documents PATCH and POST /contacts at 5 tokens; integrators observed every other call
at 1, a bucket of 100 refilled at 10 per second, and `x-ratelimit-*` headers on every
answer. The bucket is per API key, shared by every integration of the space, so our local
estimate is corrected from the server's `x-ratelimit-remaining` whenever it sends one.
Qomon quirks handled here: see docs/qomon-api.md#rate-limits.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_LIMIT = re.compile(r"burst:\s*(?P<burst>\d+(?:\.\d+)?)\s*;\s*rate:\s*(?P<rate>\d+(?:\.\d+)?)")


@dataclass
class Deadline:
    """An absolute point on the monotonic clock by which the caller needs an answer."""

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(at=clock() + seconds, clock=clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())


class BucketWaitTooLong(Exception):
    """The tokens a call needs will not be there before the caller's deadline."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__(f"needs {wait_s:.2f}s for rate-limit tokens")


class TokenBucket:
    def __init__(
        self,
        capacity: float = 100,
        refill_per_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("token bucket capacity and refill must be positive")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self._tokens = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.refill_per_s)
        self._updated = now

    def acquire(self, cost: float, deadline: Deadline) -> float:
        """Take `cost` tokens, sleeping until they are there. Returns the time waited.

        Raises BucketWaitTooLong, without waiting, when they cannot be there in time.
        """
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                needed = min(cost, self.capacity)
                if self._tokens >= needed:
                    self._tokens -= cost
                    return waited
                wait = (needed - self._tokens) / self.refill_per_s
            if wait > deadline.remaining():
                raise BucketWaitTooLong(wait)
            self._sleep(wait)
            waited += wait

    def drain(self) -> None:
        """Qomon answered 429: whatever we believed, the server's bucket is empty."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Correct the estimate from Qomon's `x-ratelimit-limit` / `x-ratelimit-remaining`."""
        limit = headers.get("x-ratelimit-limit")
        remaining = headers.get("x-ratelimit-remaining")
        with self._lock:
            self._refill()
            if limit and (match := _LIMIT.search(limit)):
                burst, rate = float(match["burst"]), float(match["rate"])
                if burst > 0 and rate > 0:
                    self.capacity, self.refill_per_s = burst, rate
            if remaining is not None:
                try:
                    server_tokens = float(remaining)
                except ValueError:
                    return
                # The server is the truth: other integrations of the space share its bucket.
                self._tokens = max(0.0, min(self.capacity, server_tokens))
