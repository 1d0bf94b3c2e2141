from __future__ import annotations

import pytest

from qomon_sync.adapters.qomon.pacing import BucketWaitTooLong, Deadline, TokenBucket
from tests.unit.fakes import FakeClock


def test_takes_tokens_without_waiting_while_the_bucket_has_them() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(10, 1.0, clock=clock, sleep=clock.sleep)
    deadline = Deadline.after(60, clock)
    assert bucket.acquire(5, deadline) == 0
    assert bucket.acquire(5, deadline) == 0
    assert bucket.tokens == pytest.approx(0)
    assert clock.slept == []


def test_waits_exactly_for_the_missing_tokens_at_the_refill_rate() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(10, 2.0, clock=clock, sleep=clock.sleep)
    deadline = Deadline.after(60, clock)
    bucket.acquire(8, deadline)
    waited = bucket.acquire(5, deadline)  # 2 left, 3 missing at 2/s
    assert waited == pytest.approx(1.5)
    assert bucket.tokens == pytest.approx(0)


def test_refuses_without_sleeping_when_tokens_come_after_the_deadline() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(5, 1.0, clock=clock, sleep=clock.sleep)
    bucket.acquire(5, Deadline.after(60, clock))
    with pytest.raises(BucketWaitTooLong) as caught:
        bucket.acquire(5, Deadline.after(2, clock))
    assert caught.value.wait_s == pytest.approx(5)
    assert clock.slept == []


def test_refill_never_exceeds_capacity() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(10, 5.0, clock=clock, sleep=clock.sleep)
    bucket.acquire(10, Deadline.after(1, clock))
    clock.now += 3600
    assert bucket.tokens == pytest.approx(10)


def test_server_headers_correct_capacity_refill_and_remaining() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.observe({"x-ratelimit-limit": "burst:20;rate:5.0", "x-ratelimit-remaining": "7"})
    assert (bucket.capacity, bucket.refill_per_s) == (20, 5.0)
    assert bucket.tokens == pytest.approx(7)
    clock.now += 10
    assert bucket.tokens == pytest.approx(20)


def test_garbled_headers_leave_the_estimate_alone() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.observe({"x-ratelimit-limit": "lots", "x-ratelimit-remaining": "many"})
    assert (bucket.capacity, bucket.refill_per_s, bucket.tokens) == (100, 10.0, 100)


def test_drain_after_a_429_empties_the_bucket() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.drain()
    assert bucket.tokens == 0
    assert bucket.acquire(1, Deadline.after(5, clock)) == pytest.approx(0.1)
