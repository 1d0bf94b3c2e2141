"""Client-side token bucket that mirrors Qomon's rate limit, so a paced client meets no 429.

Qomon documents it ("Rate limits"): one bucket per space, shared by every request made
against the space, of 100 tokens refilled at 10 per second; PATCH and POST /contacts cost 5
tokens, every other call 1. Every answer carries `X-Ratelimit-Limit`, `-Remaining`, `-Cost`
and `-Reset` (seconds until the bucket is full again), and a 429 carries `Retry-After`, the
whole seconds to wait. Other integrations draw on the same bucket, so our estimate is
lowered whenever Qomon's count (`server_tokens`) says it holds less; it is never raised by
it (we never spend more than either says), and a 429 holds every call for its
`Retry-After`.

Two implementations of one `Pacer`: `TokenBucket` here (one process's estimate: tests,
tools), and `adapters.shared_bucket.SharedBucket`, one budget in DynamoDB shared by every
instance of the sync function, as the space's bucket is shared on Qomon's side. Both let a
caller `reserve` a contact's GET and PATCH (the tokens are then prepaid: the calls draw on
them without waiting), or `plan` them for its first call, and `refund` what it did not
spend.
Qomon quirks handled here: see docs/qomon-api.md#rate-limits.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

_LIMIT = re.compile(r"burst:\s*(?P<burst>\d+(?:\.\d+)?)\s*;\s*rate:\s*(?P<rate>\d+(?:\.\d+)?)")


def bucket_shape(headers: Mapping[str, str]) -> tuple[float, float] | None:
    """Burst and refill per second from `X-Ratelimit-Limit` (`burst:100;rate:10.0`)."""
    limit = headers.get("x-ratelimit-limit")
    match = _LIMIT.search(limit) if limit else None
    if match is None:
        return None
    burst, rate = float(match["burst"]), float(match["rate"])
    return (burst, rate) if burst > 0 and rate > 0 else None


def server_tokens(headers: Mapping[str, str], capacity: float, refill_per_s: float) -> float | None:
    """What Qomon says its bucket holds now, or None when it says nothing.

    Two headers say it: `X-Ratelimit-Remaining` (a whole number: the server floors it) and
    `X-Ratelimit-Reset`, the seconds until the bucket is full, so `capacity - reset x rate`
    tokens. The lower of the two is taken.
    """
    said: list[float] = []
    remaining = _count(headers.get("x-ratelimit-remaining"))
    if remaining is not None:
        said.append(remaining)
    reset = _count(headers.get("x-ratelimit-reset"))
    if reset is not None:
        said.append(capacity - reset * refill_per_s)
    return min(capacity, max(0.0, min(said))) if said else None


def _count(value: str | None) -> float | None:
    """A header's finite, non-negative number; None for anything else."""
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


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

    @property
    def tokens(self) -> float:
        """What the bucket holds now, as far as the estimate goes."""

    def acquire(self, cost: float, deadline: Deadline) -> float:
        """Take `cost` tokens (prepaid ones first), waiting for the rest. Returns the wait."""

    def reserve(self, cost: float, deadline: Deadline, *, keep_s: float = 0.0) -> float:
        """Book `cost` tokens, waiting until they are there; they are then prepaid. Raises
        BucketWaitTooLong, booking nothing, when that would leave less than `keep_s`."""

    def plan(self, cost: float, deadline: Deadline, *, keep_s: float = 0.0) -> None:
        """`reserve` these tokens at the next `acquire` (or `book_planned`), not now: a
        caller that makes no call books nothing. `refund` drops a plan no call used."""

    def book_planned(self) -> float:
        """Make the planned booking now, if one waits; returns the time waited. Raises
        BucketWaitTooLong, booking nothing, as `reserve` does."""

    def refund(self) -> float:
        """Give back the prepaid tokens not spent; returns how many."""

    def observe(self, headers: Mapping[str, str]) -> None:
        """Correct the estimate from Qomon's `X-Ratelimit-*` headers: only ever downwards."""

    def drain(self, retry_after_s: float = 0.0) -> None:
        """Qomon answered 429: the space's bucket is empty, whatever we believed, and no
        call may go before its `Retry-After` (`retry_after_s`) has passed."""


class Prepaid:
    """Tokens booked ahead (`reserve`) that the next calls draw on before waiting, and a
    booking planned for the next call (`plan`)."""

    def __init__(self) -> None:
        self.prepaid = 0.0
        self.planned: tuple[float, Deadline, float] | None = None
        """cost, deadline and keep_s of the `reserve` the next call makes first."""

    def draw(self, cost: float) -> float:
        """Take what the prepaid tokens cover; returns the cost they do not."""
        covered = min(self.prepaid, cost)
        self.prepaid -= covered
        return cost - covered

    def give_back(self) -> float:
        left, self.prepaid, self.planned = self.prepaid, 0.0, None
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

        A planned booking (see `plan`) is made first; prepaid tokens (see `reserve`) are
        then drawn before any are taken. Raises BucketWaitTooLong, without waiting for
        them, when the tokens cannot be there in time.
        """
        waited = self.book_planned()
        with self._lock:
            cost = self._prepaid.draw(cost)
        if cost <= 0:
            return waited
        return waited + self._take(cost, deadline, keep_s=0.0)

    def reserve(self, cost: float, deadline: Deadline, *, keep_s: float = 0.0) -> float:
        waited = self._take(cost, deadline, keep_s=keep_s)
        with self._lock:
            self._prepaid.prepaid += cost
        return waited

    def plan(self, cost: float, deadline: Deadline, *, keep_s: float = 0.0) -> None:
        with self._lock:
            self._prepaid.planned = (cost, deadline, keep_s)

    def book_planned(self) -> float:
        with self._lock:
            planned, self._prepaid.planned = self._prepaid.planned, None
        if planned is None:
            return 0.0
        cost, deadline, keep_s = planned
        return self.reserve(cost, deadline, keep_s=keep_s)


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

    def drain(self, retry_after_s: float = 0.0) -> None:
        """Qomon answered 429: whatever we believed, the server's bucket is empty, and it
        asked for `retry_after_s` before any call. The estimate owes that much refill, so
        every caller of this bucket waits it out, and then the refill of its own cost."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, -max(0.0, retry_after_s) * self.refill_per_s)
            self._prepaid.give_back()  # booked against tokens the server did not have

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the bucket's shape from `X-Ratelimit-Limit`, and lower the estimate to what
        Qomon's `-Remaining` and `-Reset` say it holds, less the tokens we booked
        (`reserve`) for calls Qomon has not seen yet. Never raised by them: a count from
        before our last calls, or before a 429, would let us spend more than Qomon holds."""
        shape = bucket_shape(headers)
        with self._lock:
            self._refill()
            if shape is not None:
                self.capacity, self.refill_per_s = shape
                self._tokens = min(self._tokens, self.capacity)
            server = server_tokens(headers, self.capacity, self.refill_per_s)
            if server is not None:
                self._tokens = min(self._tokens, server - self._prepaid.prepaid)
