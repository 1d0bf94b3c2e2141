"""Client-side token bucket that mirrors Qomon's rate limit, so a paced client meets no 429.

Qomon documents PATCH and POST /contacts at 5 tokens; integrators observed every other call
at 1, a bucket of 100 refilled at 10 per second, and `x-ratelimit-*` headers on every
answer. The bucket is per API key, shared by every integration of the space, so our local
estimate is corrected from the server's `x-ratelimit-remaining` whenever it sends one.

Two implementations of one `Pacer`: `TokenBucket` here (one process's estimate: tests,
tools), and `adapters.shared_bucket.SharedBucket`, one budget in DynamoDB shared by every
instance of the sync function, as the space's bucket is shared on Qomon's side. Both let a
caller `reserve` a contact's GET and PATCH before it starts (the tokens are then prepaid:
the calls draw on them without waiting) and `refund` what it did not spend.
Qomon quirks handled here: see docs/qomon-api.md#rate-limits.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

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


class Pacer(Protocol):
    """What the client needs to pace its calls, and a caller to book a contact's calls."""

    capacity: float
    refill_per_s: float

    def acquire(self, cost: float, deadline: Deadline) -> float:
        """Take `cost` tokens (prepaid ones first), waiting for the rest. Returns the wait."""

    def reserve(self, cost: float, deadline: Deadline, *, keep_s: float = 0.0) -> float:
        """Book `cost` tokens, waiting until they are there; they are then prepaid. Raises
        BucketWaitTooLong, booking nothing, when that would leave less than `keep_s`."""

    def refund(self) -> float:
        """Give back the prepaid tokens not spent; returns how many."""

    def observe(self, headers: Mapping[str, str]) -> None:
        """Correct the estimate from Qomon's `x-ratelimit-*` headers."""

    def drain(self) -> None:
        """Qomon answered 429: the space's bucket is empty, whatever we believed."""


class Prepaid:
    """Tokens booked ahead (`reserve`) that the next calls draw on before waiting."""

    def __init__(self) -> None:
        self.prepaid = 0.0

    def draw(self, cost: float) -> float:
        """Take what the prepaid tokens cover; returns the cost they do not."""
        covered = min(self.prepaid, cost)
        self.prepaid -= covered
        return cost - covered

    def give_back(self) -> float:
        left, self.prepaid = self.prepaid, 0.0
        return left


class PrepaidPacer:
    """`acquire` and `reserve` of a Pacer on its own `_take`: the tokens a `reserve`
    prepaid are drawn first, and only what they do not cover is taken."""

    _prepaid: Prepaid
    _lock: threading.Lock

    def _take(self, cost: float, deadline: Deadline, *, keep_s: float) -> float:
        """Take `cost` tokens, waiting until they are there; returns the time waited.
        Raises BucketWaitTooLong, taking nothing, when that would leave less than `keep_s`."""
        raise NotImplementedError

    def acquire(self, cost: float, deadline: Deadline) -> float:
        """Take `cost` tokens, sleeping until they are there. Returns the time waited.

        Prepaid tokens (see `reserve`) are taken first. Raises BucketWaitTooLong, without
        waiting, when they cannot be there in time.
        """
        with self._lock:
            cost = self._prepaid.draw(cost)
        if cost <= 0:
            return 0.0
        return self._take(cost, deadline, keep_s=0.0)

    def reserve(self, cost: float, deadline: Deadline, *, keep_s: float = 0.0) -> float:
        waited = self._take(cost, deadline, keep_s=keep_s)
        with self._lock:
            self._prepaid.prepaid += cost
        return waited


class TokenBucket(PrepaidPacer):
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
        self._prepaid = Prepaid()

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.refill_per_s)
        self._updated = now

    def refund(self) -> float:
        with self._lock:
            left = self._prepaid.give_back()
            self._refill()
            self._tokens = min(self.capacity, self._tokens + left)
        return left

    def _take(self, cost: float, deadline: Deadline, *, keep_s: float) -> float:
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                needed = min(cost, self.capacity)
                if self._tokens >= needed:
                    self._tokens -= cost
                    return waited
                wait = (needed - self._tokens) / self.refill_per_s
            if wait > deadline.remaining() - keep_s:
                raise BucketWaitTooLong(wait)
            self._sleep(wait)
            waited += wait

    def drain(self) -> None:
        """Qomon answered 429: whatever we believed, the server's bucket is empty."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)
            self._prepaid.give_back()  # booked against tokens the server did not have

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
