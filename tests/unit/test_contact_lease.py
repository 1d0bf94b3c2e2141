"""Issue 18, point 7: a Qomon contact's lease, one writer at a time across message groups
(taken while free or expired, refused while held, released only by its owner), and the
port that reads and writes a contact only under it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qomon_sync.adapters.contact_lease import (
    LEASE_WAIT_S,
    ContactBusy,
    ContactLeases,
    HeldContacts,
    OneWriter,
)
from qomon_sync.adapters.qomon.pacing import Deadline
from qomon_sync.domain.contact_shape import WriteContact
from tests.unit.fakes import FakeClock, staging_table_in_moto

TABLE = "staging"
START = 1_000_000.0


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with staging_table_in_moto(TABLE) as client:
        yield client


def leases(dynamodb: Any, clock: FakeClock, space: str = "space") -> ContactLeases:
    return ContactLeases(dynamodb, TABLE, space, clock=clock, sleep=clock.sleep)


def items(dynamodb: Any) -> list[dict[str, Any]]:
    return list(dynamodb.scan(TableName=TABLE)["Items"])


# -- the lease -------------------------------------------------------------------------------


def test_a_free_contact_is_taken_and_then_refused_to_anyone_else_while_held(
    dynamodb: Any,
) -> None:
    clock = FakeClock(START)
    mine = leases(dynamodb, clock).take(700103, START + 60)
    assert mine is not None
    clock.now += 59.9
    assert leases(dynamodb, clock).take(700103, START + 120) is None
    assert leases(dynamodb, clock).take(700106, START + 120) is not None  # another contact
    assert leases(dynamodb, clock, "other space").take(700103, START + 120) is not None


def test_a_lease_whose_holder_never_released_it_is_taken_once_it_expired(dynamodb: Any) -> None:
    clock = FakeClock(START)
    assert leases(dynamodb, clock).take(700103, START + 60) is not None  # then killed
    clock.now += 60.5
    assert leases(dynamodb, clock).take(700103, START + 120) is not None


def test_a_lease_is_released_only_by_its_owner(dynamodb: Any) -> None:
    clock = FakeClock(START)
    first = leases(dynamodb, clock).take(700103, START + 60)
    assert first is not None
    clock.now += 61  # the first holder overran its lease: a second flush takes it
    second = leases(dynamodb, clock).take(700103, START + 120)
    assert second is not None
    assert leases(dynamodb, clock).release(first) is False  # late: not its lease any more
    assert leases(dynamodb, clock).take(700103, START + 120) is None  # still the second's
    assert leases(dynamodb, clock).release(second) is True
    assert leases(dynamodb, clock).take(700103, START + 120) is not None  # free at once


def test_a_lease_carries_a_ttl_so_dynamodb_removes_one_nobody_released(dynamodb: Any) -> None:
    clock = FakeClock(START)
    assert leases(dynamodb, clock, "a1b2").take(700103, START + 60.25) is not None
    [item] = items(dynamodb)
    assert (item["pk"]["S"], item["sk"]["S"]) == ("contact#a1b2#700103", "lease")
    assert int(item["expires_at"]["N"]) >= START + 60.25  # whole seconds, never earlier
    assert set(item) == {"pk", "sk", "owner", "until", "expires_at"}  # nothing personal


def test_a_flush_waits_for_the_holder_to_release_then_takes_the_lease(dynamodb: Any) -> None:
    clock = FakeClock(START)
    holder = leases(dynamodb, clock).take(700103, START + 60)
    assert holder is not None

    def holder_finishes(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= START + 1:  # its PATCH answered after a second
            leases(dynamodb, clock).release(holder)

    waiting = ContactLeases(dynamodb, TABLE, "space", clock=clock, sleep=holder_finishes)
    lease = waiting.wait_for(700103, START + 60, wait_s=LEASE_WAIT_S)
    assert lease.owner != holder.owner
    assert START + 1 <= clock.now < START + LEASE_WAIT_S


def test_a_flush_waits_a_bounded_time_then_says_the_contact_is_busy(dynamodb: Any) -> None:
    clock = FakeClock(START)
    assert leases(dynamodb, clock).take(700103, START + 60) is not None
    with pytest.raises(ContactBusy) as busy:
        leases(dynamodb, clock).wait_for(700103, START + 60, wait_s=LEASE_WAIT_S)
    assert busy.value.contact_id == 700103
    assert clock.now - START <= LEASE_WAIT_S
    assert "700103" in str(busy.value)


# -- one flush's writer, and the port ---------------------------------------------------------


class FakeQomon:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def find_by_email(self, mail: str) -> list[dict[str, Any]]:
        self.calls.append("search")
        return [{"id": 700103, "mail": mail}]

    def get(self, contact_id: int) -> dict[str, Any] | None:
        self.calls.append(f"get {contact_id}")
        return {"id": contact_id}

    def replace(self, contact_id: int, contact: WriteContact) -> dict[str, Any]:
        self.calls.append(f"patch {contact_id}")
        return {**contact, "id": contact_id}

    def create(self, contact: WriteContact) -> dict[str, Any]:
        self.calls.append("create")
        return {**contact, "id": 900001}


class Watched(ContactLeases):
    """Leases that note when they are taken and released, among the port's calls."""

    def __init__(self, dynamodb: Any, clock: FakeClock, calls: list[str]) -> None:
        super().__init__(dynamodb, TABLE, "space", clock=clock, sleep=clock.sleep)
        self.calls = calls

    def take(self, contact_id: int, until: float) -> Any:
        lease = super().take(contact_id, until)
        self.calls.append(f"lease {contact_id}" if lease else f"held {contact_id}")
        return lease

    def release(self, lease: Any) -> bool:
        self.calls.append(f"release {lease.contact_id}")
        return super().release(lease)


def writer(
    dynamodb: Any, clock: FakeClock, calls: list[str], seconds: float = 50
) -> tuple[OneWriter, HeldContacts]:
    one = OneWriter(
        Watched(dynamodb, clock, calls),
        Deadline.after(seconds, clock),
        after_deadline_s=8,
        keep_s=3,
        clock=clock,
    )
    return one, HeldContacts(FakeQomon(calls), one)


def test_the_contact_is_leased_after_it_is_found_and_before_its_get_until_released(
    dynamodb: Any,
) -> None:
    clock, calls = FakeClock(START), list[str]()
    one, port = writer(dynamodb, clock, calls)
    [found] = port.find_by_email("ana.martin@example.org")
    port.get(found["id"])
    port.replace(found["id"], {"firstname": "Ana"})
    one.release()
    assert calls == ["search", "lease 700103", "get 700103", "patch 700103", "release 700103"]
    assert items(dynamodb) == []


def test_the_flushs_tokens_are_booked_before_the_lease_so_no_wait_holds_it(
    dynamodb: Any,
) -> None:
    clock, calls = FakeClock(START), list[str]()
    one = OneWriter(
        Watched(dynamodb, clock, calls),
        Deadline.after(50, clock),
        after_deadline_s=8,
        keep_s=3,
        clock=clock,
    )
    port = HeldContacts(FakeQomon(calls), one, book=lambda: calls.append("book"))
    port.get(700103)
    port.replace(700103, {"firstname": "Ana"})
    one.release()
    assert calls == ["book", "lease 700103", "get 700103", "book", "patch 700103", "release 700103"]


def test_the_lease_lasts_as_long_as_the_invocation_may_run(dynamodb: Any) -> None:
    clock, calls = FakeClock(START), list[str]()
    one, port = writer(dynamodb, clock, calls, seconds=50)
    port.get(700103)
    assert one.lease is not None
    assert one.lease.until == START + 50 + 8  # the flush's deadline, then the margin after it


def test_a_contact_held_by_another_flush_stops_the_get_and_leaves_nothing_held(
    dynamodb: Any,
) -> None:
    clock, calls = FakeClock(START), list[str]()
    assert leases(dynamodb, clock).take(700103, START + 60) is not None
    one, port = writer(dynamodb, clock, calls)
    with pytest.raises(ContactBusy):
        port.get(700103)
    assert "get 700103" not in calls
    assert one.lease is None
    one.release()  # nothing to release: the other's lease stays
    assert len(items(dynamodb)) == 1


def test_a_flush_waits_for_the_lease_only_what_its_calls_leave_it(dynamodb: Any) -> None:
    clock, calls = FakeClock(START), list[str]()
    assert leases(dynamodb, clock).take(700103, START + 60) is not None
    _, port = writer(dynamodb, clock, calls, seconds=3)  # just the calls' own 3 s left
    with pytest.raises(ContactBusy):
        port.get(700103)
    assert calls == ["held 700103"]  # one try, no wait
    assert clock.slept == []


def test_a_remembered_contact_found_to_be_someone_else_gives_its_lease_back(
    dynamodb: Any,
) -> None:
    clock, calls = FakeClock(START), list[str]()
    one, port = writer(dynamodb, clock, calls)
    port.get(700103)  # read to check a remembered e-mail: no longer this person's
    port.get(700150)  # the search's answer
    port.replace(700150, {"firstname": "Ana"})
    one.release()
    assert calls == [
        "lease 700103",
        "get 700103",
        "release 700103",
        "lease 700150",
        "get 700150",
        "patch 700150",
        "release 700150",
    ]


def test_a_contact_just_created_is_leased_before_a_second_write_to_it(dynamodb: Any) -> None:
    clock, calls = FakeClock(START), list[str]()
    one, port = writer(dynamodb, clock, calls)
    created = port.create({"mail": "nouvelle@example.org"})
    port.replace(created["id"], {"mail": "nouvelle@example.org", "firstname": "Nour"})
    one.release()
    assert calls == ["create", "lease 900001", "patch 900001", "release 900001"]


def test_instances_on_the_old_and_the_new_api_key_still_exclude_each_other(
    dynamodb: Any,
) -> None:
    """A rotated key is picked up by each instance in its own time: the lease on a contact
    must not depend on the key, or old-key and new-key flushes would both write it."""
    import boto3
    from aws_lambda_powertools.utilities import parameters

    from qomon_sync.application.runtime import build_runtime
    from qomon_sync.settings import Settings

    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="qomon-key", SecretString="the key before its rotation")
    settings = Settings(staging_table=TABLE, qomon_api_key_secret="qomon-key")
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    old = build_runtime(settings).one_writer(Deadline.after(30.0), keep_s=0.0)
    old.hold(700103)
    secrets.put_secret_value(SecretId="qomon-key", SecretString="the key after its rotation")
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    new_runtime = build_runtime(settings)
    assert new_runtime.client() is not None  # built on the new key
    new = new_runtime.one_writer(Deadline.after(0.5), keep_s=0.0)
    with pytest.raises(ContactBusy):
        new.hold(700103)
    old.release()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
