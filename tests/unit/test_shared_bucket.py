"""Issue 12: one token budget for every instance, in DynamoDB (GCRA), against moto in-process.

With a bucket per instance, each instance believed it had the whole burst and overwrote
its estimate from `x-ratelimit-remaining`: 27 x 429 at 2 consumers, 288 at 10."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from qomon_sync.adapters.qomon.pacing import BucketWaitTooLong, Deadline, TokenBucket
from qomon_sync.adapters.shared_bucket import SharedBucket
from qomon_sync_dev.standin.limits import TokenBucket as StandinBucket
from tests.unit.fakes import FakeClock, staging_table_in_moto

TABLE = "staging"


@pytest.fixture
def dynamodb() -> Iterator[object]:
    with staging_table_in_moto(TABLE) as client:
        yield client


def instance(dynamodb: object, clock: FakeClock, capacity: float = 100) -> SharedBucket:
    return SharedBucket(
        dynamodb, TABLE, "space", capacity=capacity, refill_per_s=10, clock=clock, sleep=clock.sleep
    )


def test_two_instances_share_one_burst(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    first, second = instance(dynamodb, clock), instance(dynamodb, clock)
    deadline = Deadline.after(60, clock)
    assert first.acquire(60, deadline) == 0
    # The second sees what the first spent: 40 left, so 60 more wait 2 s at 10/s.
    assert second.acquire(60, deadline) == pytest.approx(2.0)
    assert first.tokens == pytest.approx(0)


def test_bookings_are_served_in_order_at_the_refill_rate(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    instances = [instance(dynamodb, clock) for _ in range(5)]
    deadline = Deadline.after(60, clock)
    for bucket in instances:
        bucket.acquire(20, deadline)  # the burst, shared: 5 x 20 = 100, no wait
    assert clock.slept == []
    waits = []
    for bucket in instances:
        start = clock.now
        bucket.reserve(6, deadline)
        waits.append(round(clock.now - start, 3))
    assert waits == [0.6] * 5  # each booking 6 tokens later than the one before


def test_a_reserved_contact_calls_without_waiting_and_refunds_the_patch_it_did_not_send(
    dynamodb: object,
) -> None:
    clock = FakeClock(1_000_000.0)
    bucket = instance(dynamodb, clock, capacity=10)
    deadline = Deadline.after(60, clock)
    bucket.reserve(6, deadline)
    assert bucket.acquire(1, deadline) == 0  # the GET draws on what was booked
    assert bucket.refund() == 5  # found unchanged: no PATCH
    assert bucket.tokens == pytest.approx(9)
    assert clock.slept == []


def test_a_booking_that_cannot_come_in_time_books_nothing(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket = instance(dynamodb, clock, capacity=10)
    bucket.acquire(10, Deadline.after(60, clock))
    with pytest.raises(BucketWaitTooLong):
        # 6 tokens come in 0.6 s, but 3 s minus the 2.5 s the calls need leaves 0.5.
        bucket.reserve(6, Deadline.after(3, clock), keep_s=2.5)
    assert clock.slept == []
    assert bucket.reserve(6, Deadline.after(60, clock)) == pytest.approx(0.6)  # nothing held


def test_the_server_having_fewer_tokens_than_the_budget_wins(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket, other = instance(dynamodb, clock), instance(dynamodb, clock)
    bucket.acquire(1, Deadline.after(60, clock))
    # Another integration of the space spent tokens: Qomon says 40 are left, not 99.
    bucket.observe({"x-ratelimit-limit": "burst:100;rate:10.0", "x-ratelimit-remaining": "40"})
    assert other.tokens == pytest.approx(40)
    # More than our budget leaves: the server's count never raises the shared one.
    other.observe({"x-ratelimit-remaining": "100"})
    assert other.tokens == pytest.approx(40)


def test_a_count_the_server_floored_does_not_move_the_budget(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket = instance(dynamodb, clock)
    bucket.acquire(5, Deadline.after(60, clock))
    clock.now += 0.05  # half a token refilled: the server says 95 (floored), we hold 95.5
    bucket.observe({"x-ratelimit-remaining": "95"})
    assert bucket.tokens == pytest.approx(95.5)


def test_a_429_empties_the_shared_bucket_and_voids_what_was_booked(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket, other = instance(dynamodb, clock), instance(dynamodb, clock)
    bucket.reserve(6, Deadline.after(60, clock))
    bucket.drain()
    assert other.tokens == pytest.approx(0)
    assert bucket.refund() == 0  # nothing left to give back: the server had none
    assert bucket.acquire(1, Deadline.after(60, clock)) == pytest.approx(0.1)


def test_headers_teach_the_burst_and_the_rate() -> None:
    bucket = SharedBucket(object(), TABLE, "space")
    bucket.observe({"x-ratelimit-limit": "burst:20;rate:5.0"})
    assert (bucket.capacity, bucket.refill_per_s) == (20, 5.0)


def test_the_local_bucket_reserves_and_refunds_the_same_way() -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(10, 10.0, clock=clock, sleep=clock.sleep)
    deadline = Deadline.after(60, clock)
    bucket.reserve(6, deadline)
    assert bucket.tokens == pytest.approx(4)
    assert bucket.acquire(6, deadline) == 0
    assert bucket.refund() == 0
    assert bucket.reserve(6, deadline) == pytest.approx(0.2)  # 4 were there, 2 refilled
    assert bucket.refund() == 6
    assert bucket.tokens == pytest.approx(6)
    with pytest.raises(BucketWaitTooLong):
        bucket.reserve(10, Deadline.after(1, clock), keep_s=0.7)  # 0.4 s wait, 0.3 s left


def _late_calls_refused(
    dynamodb: object, headroom_s: float, late_s: float, *, calls: int = 40
) -> int:
    """Book `calls` PATCHes at once on a full bucket, as instances starting together do.
    The first 20 reach Qomon (the stand-in's bucket) `late_s` after their booking let them
    go, the rest at once, and each answer's count is observed as the client does: how
    many does Qomon refuse?"""
    clock = FakeClock(1_000_000.0)
    arrival = FakeClock(clock.now)  # Qomon's clock: when each call reaches it
    server = StandinBucket(100, 10, clock=arrival)
    bucket = SharedBucket(
        dynamodb,
        TABLE,
        f"space-{headroom_s}-{late_s}-{calls}",
        refill_per_s=10,
        headroom_s=headroom_s,
        clock=clock,
        sleep=clock.sleep,
    )
    deadline = Deadline.after(600, clock)
    on_the_way: list[float] = []
    refused = 0

    def arrive(until: float) -> None:
        nonlocal refused
        for when in sorted(w for w in on_the_way if w <= until):
            on_the_way.remove(when)
            arrival.now = when
            refused += not server.try_take(5)
            reset = f"{server.seconds_until_full():.3f}"
            bucket.observe(
                {"x-ratelimit-remaining": str(server.remaining()), "x-ratelimit-reset": reset}
            )

    for n in range(calls):
        arrive(clock.now)
        bucket.acquire(5, deadline)
        on_the_way.append(clock.now + (late_s if n < 20 else 0.0))
    arrive(math.inf)
    return refused


def test_headroom_covers_the_refill_qomon_loses_to_its_cap_before_the_calls_arrive(
    dynamodb: object,
) -> None:
    # While Qomon's bucket is full, the refill before the late calls arrive is lost.
    assert _late_calls_refused(dynamodb, headroom_s=0.0, late_s=0.5) > 0
    assert _late_calls_refused(dynamodb, headroom_s=1.0, late_s=0.5) == 0
    assert _late_calls_refused(dynamodb, headroom_s=1.0, late_s=1.0) == 0
    assert _late_calls_refused(dynamodb, headroom_s=0.0, late_s=0.0) == 0


def test_once_qomon_has_answered_for_a_refill_the_headroom_is_spent_without_a_429(
    dynamodb: object,
) -> None:
    # 80 calls: the backlog outlasts the headroom's refill (10 s), and the late calls'
    # answers have lowered the budget to what Qomon's cap left before it is let go.
    assert _late_calls_refused(dynamodb, headroom_s=1.0, late_s=1.0, calls=80) == 0


def test_the_headroom_is_kept_for_one_refill_after_the_bucket_was_full_then_let_go(
    dynamodb: object,
) -> None:
    clock = FakeClock(1_000_000.0)
    bucket = SharedBucket(
        dynamodb, TABLE, "space", refill_per_s=10, headroom_s=1.0, clock=clock, sleep=clock.sleep
    )
    deadline = Deadline.after(60, clock)
    assert bucket.acquire(90, deadline) == 0  # the bucket was full: 10 tokens kept back
    for _ in range(20):  # for 10 s, the refill rate with those 10 kept back
        assert bucket.acquire(5, deadline) == pytest.approx(0.5)
    clock.sleep(0.05)
    # A refill later, all but one token of the headroom is spent at once (Qomon floors
    # its count: that token stays kept back), then the refill rate again.
    assert bucket.acquire(5, deadline) == 0
    assert bucket.acquire(5, deadline) == pytest.approx(0.05)
    assert bucket.tokens == pytest.approx(1.0)
    assert bucket.acquire(5, deadline) == pytest.approx(0.5)


def test_headroom_holds_back_that_much_of_the_burst_only(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket = SharedBucket(
        dynamodb, TABLE, "space", refill_per_s=10, headroom_s=1.0, clock=clock, sleep=clock.sleep
    )
    deadline = Deadline.after(60, clock)
    assert bucket.acquire(90, deadline) == 0  # 100, less one second of refill
    assert bucket.acquire(5, deadline) == pytest.approx(0.5)
    assert bucket.acquire(5, deadline) == pytest.approx(0.5)  # then the refill rate


def test_a_retry_after_recorded_by_one_instance_holds_back_the_others(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    refused, other = instance(dynamodb, clock), instance(dynamodb, clock)
    refused.drain(3.0)  # Qomon answered 429 with Retry-After: 3
    assert other.acquire(1, Deadline.after(60, clock)) == pytest.approx(3.1)
    assert clock.now >= 1_000_003.0


def test_a_reset_below_the_budget_lowers_it_for_every_instance(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket, other = instance(dynamodb, clock), instance(dynamodb, clock)
    bucket.acquire(1, Deadline.after(60, clock))
    # Documented: seconds until the bucket is full. 6 s at 10/s: 60 tokens short.
    bucket.observe({"x-ratelimit-remaining": "99", "x-ratelimit-reset": "6.0"})
    assert other.tokens == pytest.approx(40)


def test_the_server_count_leaves_out_what_this_instance_booked_but_did_not_send(
    dynamodb: object,
) -> None:
    clock = FakeClock(1_000_000.0)
    bucket, other = instance(dynamodb, clock), instance(dynamodb, clock)
    deadline = Deadline.after(60, clock)
    bucket.reserve(6, deadline)
    bucket.acquire(1, deadline)  # the GET, prepaid; the PATCH's 5 are still booked
    # Qomon saw the GET and another integration's 49 tokens: 50 left, 5 of them ours.
    bucket.observe({"x-ratelimit-remaining": "50"})
    assert other.tokens == pytest.approx(45)


def test_a_plan_is_booked_on_the_shared_budget_only_by_a_call(dynamodb: object) -> None:
    clock = FakeClock(1_000_000.0)
    bucket, other = instance(dynamodb, clock), instance(dynamodb, clock)
    deadline = Deadline.after(60, clock)
    bucket.plan(6, deadline)
    assert bucket.refund() == 0  # no call: nothing was booked, nothing to give back
    assert other.tokens == pytest.approx(100)
    bucket.plan(6, deadline)
    assert bucket.book_planned() == 0  # booked before a lease is taken, not by a call
    assert other.tokens == pytest.approx(94)
    assert bucket.refund() == 6
    bucket.plan(6, deadline)
    assert bucket.acquire(1, deadline) == 0
    assert other.tokens == pytest.approx(94)  # every instance sees the six booked
    assert bucket.refund() == 5  # the PATCH not sent
    assert other.tokens == pytest.approx(99)
