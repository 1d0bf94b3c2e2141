"""Issue 18, point 7: one Qomon contact has one writer at a time, whatever message group
named it. A person named by Qomon id in one delivery (a backfill) and by e-mail in another
(a form) is in two FIFO groups, which two consumers may flush at once; Qomon's PATCH
replaces the whole contact, so a body built from a GET taken before the other's PATCH
would delete the other's change."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from qomon_sync.application.invocation import Invocation
from qomon_sync.application.outcome import Outcome
from qomon_sync.application.runtime import build_runtime
from qomon_sync.application.sync_batch import SyncBatch
from qomon_sync.settings import get_settings
from qomon_sync_dev.local_lambda import LocalContext, lambda_event
from qomon_sync_dev.local_mode import LocalMode
from tests.integration.sync_harness import (
    Heard,
    calls,
    clients,
    dead_letters,
    invoke,
    mail_message,
    message,
    paused_local_mode,
    queued,
    staged,
    standin,
)

pytestmark = pytest.mark.integration

CONTACT, MAIL = 700121, "hugo.lefort@example.org"
"""One person of the stand-in's seed: no mobile yet."""
TAG, MOBILE = "backfill-2026", "+33600000099"
PAUSE_S = 3.0
"""How long the first writer holds its PATCH back, at most, for the other to overtake it."""
JOIN_S = 120.0
QUEUE_ARN = "arn:aws:sqs:eu-west-3:123456789012:changes.fifo"


@pytest.fixture
def local() -> Iterator[LocalMode]:
    with paused_local_mode() as running:
        yield running


class Counts:
    """application.telemetry.Telemetry that keeps the counts and the log lines."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def event(self, event_id: str, action: str, **details: Any) -> None:
        self.counts[f"event {action}"] += 1

    def info(self, message: str, **details: Any) -> None:
        self.lines.append((message, details))

    def warning(self, message: str, **details: Any) -> None:
        self.lines.append((message, details))

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] += int(value)

    def dead_lettered(self, code: str) -> None:
        self.counts[f"dead-lettered {code}"] += 1

    def call(self, endpoint: str, status: int | None, latency_s: float) -> None:
        pass


class Consumer(threading.Thread):
    """One Lambda instance handed one batch: its own runtime (clients, bookings), its own
    way to Qomon, the same tables, queue and Qomon as every other."""

    def __init__(self, messages: list[dict[str, Any]], transport: Heard) -> None:
        super().__init__(daemon=True)
        self.messages = messages
        self.transport = transport
        self.runtime = build_runtime(get_settings())
        self.runtime.transport = transport
        self.telemetry = Counts()
        self.outcomes: dict[str, Outcome] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            clock = LocalContext(60).get_remaining_time_in_millis
            batch = SyncBatch(
                lambda_event(self.messages, QUEUE_ARN)["Records"],
                Invocation(self.runtime, self.telemetry, clock),
            )
            batch.run()
            self.outcomes = batch.outcomes
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def wait_for(self, kind: str) -> None:
        """Until Qomon has answered this consumer's first request of `kind`."""
        heard = self.transport.heard[kind]
        for _ in range(int(JOIN_S * 10)):
            if heard.wait(0.1):
                return
            assert self.is_alive(), f"the consumer returned before {kind}: {self.error!r}"
        raise AssertionError(f"no {kind}")

    def finish(self) -> None:
        self.join(JOIN_S)
        assert not self.is_alive(), "the consumer did not return"
        assert self.error is None, repr(self.error)
        assert {m["MessageId"] for m in self.messages} == set(self.outcomes)
        assert not any(o.comes_back for o in self.outcomes.values())  # none sent back


def flush_the_rest(local: LocalMode) -> None:
    """Hand whatever waits on the changes queue (flush markers) to the handler, until none."""
    for _ in range(20):
        waiting = queued(local)
        if not waiting:
            return
        assert invoke(waiting) == {"batchItemFailures": []}
    raise AssertionError("the queue kept filling")


def leases(local: LocalMode) -> list[dict[str, Any]]:
    assert local.endpoints is not None
    _, dynamodb = clients(local)
    items = dynamodb.scan(TableName=local.endpoints.staging_table)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("contact#")]


def stored(local: LocalMode) -> dict[str, Any]:
    return dict(standin(local, f"contacts/{CONTACT}")["contact"])


def assert_both_changes_kept(local: LocalMode) -> None:
    contact = stored(local)
    assert TAG in {tag["name"] for tag in contact["tags"]}  # the backfill's, by id
    assert contact["mobile"] == MOBILE  # the form's, by e-mail
    assert "sympathisant" not in {t["name"] for t in contact["tags"]}  # nothing else came
    assert dead_letters(local) == []
    assert staged(local) == []
    assert leases(local) == []  # each released after its PATCH


def test_two_groups_naming_one_person_flushed_at_once_lose_no_change(local: LocalMode) -> None:
    """The backfill's consumer reads the contact, then holds its PATCH back until the
    form's consumer has searched the e-mail and, unless something stops it, written: with
    one writer at a time, the form's flush waits for the lease, then reads the contact
    with the tag and writes the mobile on top of it."""
    form = Heard()

    def overtaken() -> None:
        assert form.heard["POST search"].wait(JOIN_S)
        form.heard["PATCH contacts"].wait(PAUSE_S)

    by_id = Consumer([message(CONTACT, tags={"add": [TAG]})], Heard({"PATCH contacts": overtaken}))
    by_mail = Consumer([mail_message(local, MAIL, set={"mobile": MOBILE})], form)
    by_id.start()
    by_id.wait_for("GET contacts")  # read, not written
    by_mail.start()
    by_id.finish()
    by_mail.finish()
    flush_the_rest(local)  # in case the form's flush waited longer than it may, and deferred
    assert_both_changes_kept(local)
    assert calls(local, "PATCH /contacts/{id}") == 2


def test_a_flush_that_finds_the_contact_held_defers_on_its_last_delivery_and_loses_nothing(
    local: LocalMode,
) -> None:
    """The backfill's consumer holds its PATCH back until the form's consumer has returned:
    that one waits for the lease as long as it may, then defers. Its events stay staged
    behind a flush marker, nothing is dead-lettered though its message is on its last
    delivery, and the marker applies them on top of the backfill's change."""
    returned = threading.Event()

    def outwaited() -> None:
        assert returned.wait(JOIN_S)

    last = get_settings().max_receive_count
    by_id = Consumer([message(CONTACT, tags={"add": [TAG]})], Heard({"PATCH contacts": outwaited}))
    form = [mail_message(local, MAIL, receives=last, set={"mobile": MOBILE})]
    by_mail = Consumer(form, Heard())
    by_id.start()
    by_id.wait_for("GET contacts")
    by_mail.start()
    by_mail.join(JOIN_S)
    returned.set()
    by_mail.finish()
    by_id.finish()
    assert by_mail.telemetry.counts["FlushesDeferred"] == 1
    # It says which contact was busy, by id, and nothing of the person.
    assert ("contact busy: flush deferred", {"contact_id": CONTACT}) in by_mail.telemetry.lines
    assert "hugo" not in repr(by_mail.telemetry.lines).casefold()
    assert len(staged(local)) == 1  # the form's event, waiting for its marker
    assert stored(local).get("mobile") != MOBILE
    [marker] = queued(local)
    assert marker["Attributes"]["MessageGroupId"] == form[0]["Attributes"]["MessageGroupId"]
    assert invoke([marker]) == {"batchItemFailures": []}
    assert_both_changes_kept(local)
    assert calls(local, "PATCH /contacts/{id}") == 2


class LeasesNeverDeleted:
    """A DynamoDB client whose deletes of a lease fail, as DynamoDB's own errors do."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def delete_item(self, **request: Any) -> Any:
        if request["Key"]["sk"]["S"] == "lease":
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "DeleteItem")
        return self._inner.delete_item(**request)


def test_a_lease_that_cannot_be_released_is_said_and_left_to_expire_with_the_invocation(
    local: LocalMode,
) -> None:
    consumer = Consumer([message(CONTACT, tags={"add": [TAG]})], Heard())
    consumer.runtime.dynamodb = LeasesNeverDeleted(consumer.runtime.dynamodb)
    consumer.start()
    consumer.finish()
    assert TAG in {tag["name"] for tag in stored(local)["tags"]}  # the write stands
    assert (
        "contact lease not released; it expires by itself",
        {"error": "ClientError"},
    ) in consumer.telemetry.lines
    [lease] = leases(local)
    # Free again when the 60 s invocation would have ended, and removed by DynamoDB after.
    assert float(lease["until"]["N"]) <= time.time() + 60
    assert int(lease["expires_at"]["N"]) >= float(lease["until"]["N"])
