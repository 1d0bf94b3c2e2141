"""One token budget for every instance of the sync function: the space's bucket, in DynamoDB.

Qomon's rate limit belongs to the space (one API key), however many sync functions run
at once. When each instance kept its own estimate and overwrote it from
`x-ratelimit-remaining`, two instances each believed they had the whole burst, and they
met 429s (27 with 2 consumers, 288 with 10). Here every instance books its tokens on one
item, with the generic cell rate algorithm (GCRA): the item holds one number, `tat`, the
theoretical arrival time (Unix seconds) at which the bucket would be full again.

- Booking `c` tokens moves `tat` to `max(tat, now) + c / rate` in one conditional update
  (no read first: under a backlog, `tat` is ahead of now and the first form always
  succeeds); the caller then sleeps until `tat - burst / rate` has come, so bookings are
  served in the order they were made, at the refill rate, by whichever instance made them.
- A refund (a contact found unchanged does not spend its PATCH) moves `tat` back.
- Qomon's `X-Ratelimit-Remaining` and `-Reset` count every integration of the space
  (pacing.server_tokens): when they say the bucket holds fewer tokens than the booked
  budget leaves, `tat` is pushed forward to match (the lower of the two wins). A 429
  empties it until its `Retry-After` has passed: `tat` goes to `now + retry_after +
  burst / rate`, so every instance, not only the one refused, waits that out. Neither
  ever moves it back.

- A booking counts its tokens spent when it is made, Qomon when the call arrives, a
  little later; while Qomon's bucket is full, the refill of that little while is lost to
  its cap but not to the booked budget, which then believes in tokens Qomon never had
  (with 10 instances starting at once: one 429 a run). `headroom_s` of refill is kept
  back for that: bookings proceed only while the bucket would still hold it. Kept for
  the whole of a backlog, those tokens were never spent: a second of every backlog. It
  is needed while the burst is spent: then bookings go at once, and each answer's count
  lowers the budget to what Qomon's cap left (above), short of the calls other
  instances have in flight at that answer. So it is kept for one refill of the bucket
  (`capacity / rate`, 10 s) after a booking found the bucket within `headroom_s` of
  full (`full_at` on the item), then only `SETTLED_S` (Qomon floors its count).
  What that leaves: a loss to Qomon's cap of more than a token that no answer showed
  would meet one 429 once the headroom is let go; the 429 empties the budget for every
  instance (`drain`) and the call is retried, so nothing is lost.

The arithmetic is additive, so concurrent bookings and refunds need no lock: DynamoDB's
atomic update is the only serialisation. Clocks are the instances' wall clocks (Lambda's
are NTP-synchronised to milliseconds, far below a token's 100 ms).
Qomon quirks handled here: see docs/qomon-api.md#rate-limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from qomon_sync.adapters.qomon.pacing import (
    BucketWaitTooLong,
    Deadline,
    Prepaid,
    PrepaidPacer,
    bucket_shape,
    server_tokens,
)
from qomon_sync.adapters.table import bucket_key

SETTLED_S = 0.1
"""What is kept back once Qomon's answers have corrected the budget (at most
`headroom_s`): one token at 10/s, as Qomon floors the count it gives."""

BOOKING_ATTEMPTS = 8
"""Conditional updates lost to another instance before giving up (each loss means that
instance booked, so the bucket is moving)."""


class SharedBucket(PrepaidPacer):
    """Implements pacing.Pacer on one DynamoDB item shared by every instance."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        space: str,
        *,
        capacity: float = 100,
        refill_per_s: float = 10.0,
        headroom_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("token bucket capacity and refill must be positive")
        self._db = dynamodb
        self._table = table
        self._key = bucket_key(space)
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self.headroom_s = max(0.0, float(headroom_s))
        self._clock = clock
        self._sleep = sleep
        self._prepaid = Prepaid()
        self._hint = 0.0
        """The latest `tat` this instance saw: a lower bound of the shared one."""
        self._lock = threading.Lock()

    # -- what the client and the caller use ------------------------------------------------

    def refund(self) -> float:
        with self._lock:
            left = self._prepaid.give_back()
        if left > 0:
            self._move_back(left / self.refill_per_s)
        return left

    def observe(self, headers: Mapping[str, str]) -> None:
        shape = bucket_shape(headers)
        if shape is not None:
            self.capacity, self.refill_per_s = shape
        server = server_tokens(headers, self.capacity, self.refill_per_s)
        if server is None:
            return
        with self._lock:
            # Booked by this instance and not sent yet: Qomon has not counted them.
            free = server - self._prepaid.prepaid
        now = self._clock()
        # The server floors its count: it holds between `server` and `server + 1`. Only a
        # server holding a whole token less than our booked budget leaves moves it.
        if free + 1 >= self._estimate(self._hint, now):
            return
        self._push_to(now + (self.capacity - min(free, self.capacity)) / self.refill_per_s)

    def drain(self, retry_after_s: float = 0.0) -> None:
        with self._lock:
            self._prepaid.give_back()  # booked against tokens the server did not have
        now = self._clock()
        # Empty until the Retry-After has passed, for every instance: no booking is served
        # before then, and the first after it waits for its own tokens' refill.
        self._push_to(now + max(0.0, retry_after_s) + self.capacity / self.refill_per_s)

    @property
    def tokens(self) -> float:
        """The shared estimate, read now (for tests and tools)."""
        item = self._db.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
        tat = float(item.get("Item", {}).get("tat", {}).get("N", "0"))
        return self._estimate(tat, self._clock())

    # -- the item ---------------------------------------------------------------------------

    def _estimate(self, tat: float, now: float) -> float:
        return self.capacity - max(0.0, tat - now) * self.refill_per_s

    def _take(self, cost: float, deadline: Deadline, *, keep_s: float) -> float:
        """Book `cost` tokens on the shared `tat`, then wait for their turn."""
        interval = cost / self.refill_per_s
        now = self._clock()
        tat, full_at = self._book(interval, now)
        usable = self.capacity - self._kept_s(now, full_at) * self.refill_per_s
        horizon = max(usable, cost) / self.refill_per_s
        wait = max(0.0, tat - horizon - now)
        if wait > deadline.remaining() - keep_s:
            self._move_back(interval)
            raise BucketWaitTooLong(wait)
        if wait > 0:
            self._sleep(wait)
        return wait

    def _kept_s(self, now: float, full_at: float) -> float:
        """The refill kept back from this booking: `headroom_s` for one refill of the
        bucket after it was last (nearly) full, then only `SETTLED_S`."""
        if now - full_at < self.capacity / self.refill_per_s:
            return self.headroom_s
        return min(self.headroom_s, SETTLED_S)

    def _book(self, interval: float, now: float) -> tuple[float, float]:
        """Move `tat` to max(tat, now) + interval in one conditional update; returns the
        new `tat` and when a booking last found the bucket within `headroom_s` of full
        (`full_at`, set by the very update that finds it so: an instance booking just
        after reads it with its own booking)."""
        for _ in range(BOOKING_ATTEMPTS):
            forms = (
                # Under a backlog the bucket is far from full: this one succeeds.
                ("SET tat = tat + :i", "tat > :near", {":near": now + self.headroom_s}),
                # Within the headroom of full: Qomon's cap may take some refill.
                ("SET tat = tat + :i, full_at = :now", "tat >= :now", {":now": now}),
            )
            for update, condition, values in forms:
                try:
                    answer = self._db.update_item(
                        TableName=self._table,
                        Key=self._key,
                        UpdateExpression=update,
                        ConditionExpression=condition,
                        ExpressionAttributeValues={
                            ":i": _n(interval),
                            **{name: _n(value) for name, value in values.items()},
                        },
                        ReturnValues="ALL_NEW",
                    )
                    tat = float(answer["Attributes"]["tat"]["N"])
                    full_at = float(answer["Attributes"].get("full_at", {}).get("N", "0"))
                    self._hint = max(self._hint, tat)
                    return tat, full_at
                except ClientError as exc:
                    if not _lost(exc):
                        raise
            # The bucket had refilled past `now` (or never existed): start from now.
            fresh = now + interval
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key=self._key,
                    UpdateExpression="SET tat = :fresh, full_at = :now",
                    ConditionExpression="attribute_not_exists(tat) OR tat < :now",
                    ExpressionAttributeValues={":fresh": _n(fresh), ":now": _n(now)},
                )
                self._hint = max(self._hint, fresh)
                return fresh, now
            except ClientError as exc:
                if not _lost(exc):
                    raise
            now = self._clock()  # another instance booked in between: once more
        raise BucketWaitTooLong(0.0)  # pragma: no cover - eight losses in a row

    def _move_back(self, interval: float) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET tat = tat - :interval",
                ConditionExpression="attribute_exists(tat)",
                ExpressionAttributeValues={":interval": _n(interval)},
            )
        except ClientError as exc:
            if not _lost(exc):
                raise
        self._hint -= interval

    def _push_to(self, candidate: float) -> None:
        """`tat` = max(tat, candidate): the bucket holds at most what `candidate` leaves."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET tat = :candidate",
                ConditionExpression="attribute_not_exists(tat) OR tat < :candidate",
                ExpressionAttributeValues={":candidate": _n(candidate)},
            )
        except ClientError as exc:
            if not _lost(exc):
                raise
        self._hint = max(self._hint, candidate)


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


def _lost(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
