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


def test_a_retry_after_holds_every_call_until_it_has_passed() -> None:
    # Documented: a 429 carries Retry-After, the whole seconds to wait. Whoever draws on
    # this bucket next (another thread, the next contact) waits them out too.
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.drain(3.0)
    assert bucket.acquire(1, Deadline.after(60, clock)) == pytest.approx(3.1)
    assert clock.now == pytest.approx(1003.1)


def test_a_retry_after_outlasting_the_deadline_is_refused_without_waiting() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.drain(30.0)
    with pytest.raises(BucketWaitTooLong):
        bucket.acquire(1, Deadline.after(10, clock))
    assert clock.slept == []


def test_a_remaining_lower_than_the_estimate_lowers_it_and_a_higher_one_does_not_raise_it() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.observe({"x-ratelimit-remaining": "40"})  # another integration spent 60
    assert bucket.tokens == pytest.approx(40)
    # A count above ours (an answer sent before a 429, or before our own calls) never
    # raises it: we never spend more than either says.
    bucket.observe({"x-ratelimit-remaining": "100"})
    assert bucket.tokens == pytest.approx(40)


def test_a_reset_lower_than_the_estimate_lowers_it() -> None:
    # Documented: X-Ratelimit-Reset is the seconds until the bucket is full again: 4 s at
    # 10/s is 40 tokens short of 100.
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    bucket.observe({"x-ratelimit-remaining": "97", "x-ratelimit-reset": "4.0"})
    assert bucket.tokens == pytest.approx(60)
    bucket.observe({"x-ratelimit-reset": "0"})
    assert bucket.tokens == pytest.approx(60)


def test_a_server_count_leaves_out_the_calls_we_booked_but_have_not_sent() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    deadline = Deadline.after(60, clock)
    bucket.reserve(6, deadline)  # a contact's GET and PATCH
    bucket.acquire(1, deadline)  # the GET, prepaid
    # Qomon saw the GET and another integration's 50 tokens; our PATCH is still to come.
    bucket.observe({"x-ratelimit-remaining": "49"})
    assert bucket.tokens == pytest.approx(44)
    assert bucket.acquire(5, deadline) == 0  # the PATCH, prepaid


def test_a_planned_booking_is_made_by_the_first_call_and_covers_the_next() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(100, 10.0, clock=clock, sleep=clock.sleep)
    deadline = Deadline.after(60, clock)
    bucket.plan(6, deadline)  # a contact's GET and PATCH, booked at its first call
    assert bucket.tokens == pytest.approx(100)
    assert bucket.acquire(1, deadline) == 0  # the GET books all six
    assert bucket.tokens == pytest.approx(94)
    assert bucket.acquire(5, deadline) == 0  # the PATCH, prepaid
    assert bucket.tokens == pytest.approx(94)
    assert bucket.refund() == 0


def test_a_plan_no_call_used_books_nothing_and_is_dropped() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(10, 10.0, clock=clock, sleep=clock.sleep)
    deadline = Deadline.after(60, clock)
    bucket.plan(6, deadline)
    assert bucket.refund() == 0
    assert bucket.tokens == pytest.approx(10)
    assert bucket.acquire(1, deadline) == 0  # the plan is gone: one token only
    assert bucket.tokens == pytest.approx(9)


def test_a_planned_booking_that_cannot_come_in_time_is_refused_at_the_first_call() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(10, 10.0, clock=clock, sleep=clock.sleep)
    bucket.acquire(10, Deadline.after(60, clock))
    bucket.plan(6, Deadline.after(1, clock), keep_s=0.7)  # 0.6 s wait, 0.3 s to spare
    with pytest.raises(BucketWaitTooLong):
        bucket.acquire(1, Deadline.after(1, clock))
    assert bucket.tokens == pytest.approx(0)
    clock.sleep(1.0)
    assert bucket.acquire(1, Deadline.after(60, clock)) == 0  # the plan went with the refusal
    assert bucket.tokens == pytest.approx(9)
    assert bucket.refund() == 0
