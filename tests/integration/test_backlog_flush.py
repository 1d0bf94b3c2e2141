"""Issue 12: a contact's whole backlog, however many batches it spans, costs one GET and at
most one PATCH; and a consumer killed anywhere between staging and acknowledging loses
nothing and applies nothing twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from qomon_sync.adapters.ledger import EventLedger
from qomon_sync.adapters.qomon.client import QomonClient
from qomon_sync.adapters.staging import StagingTable
from qomon_sync.application import flush as flush_module
from qomon_sync_dev.local_mode import LocalMode
from tests.integration.sync_harness import (
    Killed,
    again,
    calls,
    dead_letters,
    drain,
    expire_claims,
    invoke,
    message,
    paused_local_mode,
    queued,
    send,
    staged,
    standin,
)

pytestmark = pytest.mark.integration

GET, PATCH = "GET /contacts/{id}", "PATCH /contacts/{id}"


@pytest.fixture
def local() -> Iterator[LocalMode]:
    with paused_local_mode() as running:
        yield running


def once(monkeypatch: pytest.MonkeyPatch, cls: type, name: str, *, after: bool = True) -> None:
    """Kill the consumer at the first call of `cls.name` (after it did its work, or before)."""
    original: Callable[..., Any] = getattr(cls, name)
    fired: list[bool] = []

    def dying(*args: Any, **kwargs: Any) -> Any:
        if fired:
            return original(*args, **kwargs)
        fired.append(True)
        if after:
            original(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(cls, name, dying)


def firstnames(count: int, contact_id: int = 700118) -> list[dict[str, Any]]:
    return [message(contact_id, set={"firstname": f"Prénom {n}"}) for n in range(count)]


def contact(local: LocalMode, contact_id: int) -> dict[str, Any]:
    return dict(standin(local, f"contacts/{contact_id}")["contact"])


# -- the fold over a whole backlog -----------------------------------------------------------


def test_a_backlog_of_three_batches_costs_one_get_and_one_patch_in_order(
    local: LocalMode,
) -> None:
    for n in range(25):
        send(local, 700118, set={"firstname": f"Prénom {n}"}, tags={"add": [f"lot-{n}"]})
    send(local, 700106, set={"surname": "Autre"})
    drain(local)
    assert (calls(local, GET), calls(local, PATCH)) == (2, 2)
    stored = contact(local, 700118)
    assert stored["firstname"] == "Prénom 24"  # the last event wins: order kept
    assert {f"lot-{n}" for n in range(25)} <= {t["name"] for t in stored["tags"]}
    assert contact(local, 700106)["surname"] == "Autre"
    assert staged(local) == []


def test_a_contact_ending_a_full_batch_is_flushed_by_its_marker_though_nothing_follows(
    local: LocalMode,
) -> None:
    """Exactly a batch of one contact: the batch cannot tell it was the whole backlog, so
    the events wait, and the flush marker behind them is what applies them."""
    for n in range(10):
        send(local, 700118, set={"firstname": f"Prénom {n}"})
    drain(local)
    assert (calls(local, GET), calls(local, PATCH)) == (1, 1)
    assert contact(local, 700118)["firstname"] == "Prénom 9"
    assert staged(local) == []


def test_events_staged_by_earlier_batches_are_applied_with_the_last(local: LocalMode) -> None:
    first = firstnames(10)
    assert invoke(first) == {"batchItemFailures": []}  # a full batch: staged, not applied
    assert calls(local, GET) == 0
    assert len(staged(local)) == 10
    rest = [message(700118, set={"surname": "Enfin"}), message(700118, notes=[{"data": "Lu"}])]
    assert invoke(rest) == {"batchItemFailures": []}  # fewer than a batch: the backlog is in
    assert (calls(local, GET), calls(local, PATCH)) == (1, 1)
    stored = contact(local, 700118)
    assert (stored["firstname"], stored["surname"]) == ("Prénom 9", "Enfin")
    # The marker queued by the first batch comes back to an empty group: nothing to do.
    [marker] = queued(local)
    assert invoke([marker]) == {"batchItemFailures": []}
    assert (calls(local, GET), calls(local, PATCH)) == (1, 1)
    assert staged(local) == []


def test_a_second_copy_of_an_event_in_a_later_batch_is_a_duplicate(local: LocalMode) -> None:
    first = firstnames(10)
    copy = dict(message(700118), Body=first[3]["Body"])  # a sender's retry, later
    assert invoke(first) == {"batchItemFailures": []}
    assert invoke([copy, message(700118, set={"surname": "Seul"})]) == {"batchItemFailures": []}
    assert calls(local, PATCH) == 1
    assert contact(local, 700118)["firstname"] == "Prénom 9"


# -- killed -------------------------------------------------------------------------------


def test_killed_between_staging_and_acknowledging_loses_nothing_and_applies_once(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [*firstnames(3), message(700118, notes=[{"data": "Une seule fois"}])]
    once(monkeypatch, StagingTable, "stage")
    with pytest.raises(Killed):
        invoke(records)
    assert calls(local, GET) == 0
    assert invoke([again(r) for r in records]) == {"batchItemFailures": []}
    stored = contact(local, 700118)
    assert stored["firstname"] == "Prénom 2"
    assert [n["data"] for n in stored["notes"]].count("Une seule fois") == 1
    assert (calls(local, GET), calls(local, PATCH)) == (1, 1)
    assert staged(local) == []


def test_killed_staging_mid_backlog_before_its_marker_is_queued_loses_nothing(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = firstnames(10)  # a full batch: staged, and a marker must follow
    once(monkeypatch, StagingTable, "stage")
    with pytest.raises(Killed):
        invoke(records)
    assert queued(local) == []  # killed before the marker was sent
    assert invoke([again(r) for r in records]) == {"batchItemFailures": []}
    [marker] = queued(local)
    assert invoke([marker]) == {"batchItemFailures": []}
    assert contact(local, 700118)["firstname"] == "Prénom 9"
    assert (calls(local, GET), calls(local, PATCH)) == (1, 1)
    assert staged(local) == []


def test_killed_between_get_and_patch_applies_everything_once_on_redelivery(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [*firstnames(3), message(700118, notes=[{"data": "Une seule fois"}])]
    once(monkeypatch, QomonClient, "replace_contact", after=False)
    with pytest.raises(Killed):
        invoke(records)
    assert (calls(local, GET), calls(local, PATCH)) == (1, 0)
    assert expire_claims(local) == 4
    assert invoke([again(r) for r in records]) == {"batchItemFailures": []}
    stored = contact(local, 700118)
    assert stored["firstname"] == "Prénom 2"
    assert [n["data"] for n in stored["notes"]].count("Une seule fois") == 1
    assert (calls(local, GET), calls(local, PATCH)) == (2, 1)
    assert staged(local) == []


def test_killed_after_the_patch_before_the_ledger_records_it_writes_nothing_more(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [*firstnames(3), message(700118, notes=[{"data": "Une seule fois"}])]
    once(monkeypatch, EventLedger, "complete_all", after=False)
    with pytest.raises(Killed):
        invoke(records)
    assert calls(local, PATCH) == 1
    expire_claims(local)
    assert invoke([again(r) for r in records]) == {"batchItemFailures": []}
    # Read again, found unchanged: the note is not added twice and nothing is written.
    assert (calls(local, GET), calls(local, PATCH)) == (2, 1)
    stored = contact(local, 700118)
    assert [n["data"] for n in stored["notes"]].count("Une seule fois") == 1
    assert staged(local) == []


def test_killed_after_the_ledger_before_the_staged_events_go_settles_them_as_duplicates(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = firstnames(3)
    once(monkeypatch, StagingTable, "forget", after=False)
    with pytest.raises(Killed):
        invoke(records)
    assert invoke([again(r) for r in records]) == {"batchItemFailures": []}
    assert (calls(local, GET), calls(local, PATCH)) == (1, 1)  # no call for duplicates
    assert staged(local) == []


# -- failures that may pass ---------------------------------------------------------------


def test_a_failing_flush_leaves_the_messages_and_keeps_the_staged_events(
    local: LocalMode,
) -> None:
    earlier = firstnames(10)
    assert invoke(earlier) == {"batchItemFailures": []}  # staged, acknowledged
    standin(local, "faults", {"status": 503, "count": 50})
    last = [message(700118, set={"surname": "Plus tard"})]
    response = invoke(last)
    assert response == {"batchItemFailures": [{"itemIdentifier": last[0]["MessageId"]}]}
    assert len(staged(local)) == 11  # nothing lost: all wait for the next delivery
    standin(local, "reset", {})  # Qomon is back (the seed's contacts, no faults)
    assert invoke([again(last[0])]) == {"batchItemFailures": []}
    stored = contact(local, 700118)
    assert (stored["firstname"], stored["surname"]) == ("Prénom 9", "Plus tard")
    assert staged(local) == []


def test_on_the_last_delivery_a_failing_flush_dead_letters_every_staged_event_with_why(
    local: LocalMode,
) -> None:
    earlier = firstnames(10)
    assert invoke(earlier) == {"batchItemFailures": []}
    # Qomon fails for this contact only (for everyone it would be an outage: the space
    # pauses instead, tests/integration/test_sync_handler.py).
    standin(local, "config", {"failing_contacts": [700118]})
    last = message(700118, set={"surname": "Trop tard"}, receives=5)  # maxReceiveCount
    assert invoke([last]) == {"batchItemFailures": []}
    standin(local, "config", {"failing_contacts": []})
    letters = dead_letters(local)
    assert len(letters) == 11
    assert {letter["error_code"] for letter in letters} == {"retries_exhausted"}
    assert "every delivery" in letters[0]["error_detail"]
    ids = {json.loads(letter["body"])["event_id"] for letter in letters}
    assert ids == {json.loads(r["Body"])["event_id"] for r in [*earlier, last]}
    assert staged(local) == []


def test_an_unexpected_error_in_a_flush_leaves_the_contact_for_redelivery(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = firstnames(10)
    assert invoke(earlier) == {"batchItemFailures": []}
    monkeypatch.setattr(flush_module, "sync_contact", _poisoned)
    last = message(700118, set={"surname": "Plus tard"})
    assert invoke([last]) == {"batchItemFailures": [{"itemIdentifier": last["MessageId"]}]}
    assert len(staged(local)) == 11
    assert dead_letters(local) == []
    monkeypatch.undo()
    # Its claims were released: the next delivery applies everything at once.
    assert invoke([again(last)]) == {"batchItemFailures": []}
    stored = contact(local, 700118)
    assert (stored["firstname"], stored["surname"]) == ("Prénom 9", "Plus tard")
    assert staged(local) == []


def test_on_the_last_delivery_an_unexpected_error_dead_letters_the_staged_events_with_why(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poison event or a bug must not let the redrive policy move the messages without a
    reason, leaving the events staged before them with nothing on the queue to flush them."""
    earlier = firstnames(10)
    assert invoke(earlier) == {"batchItemFailures": []}
    [marker] = queued(local)
    monkeypatch.setattr(flush_module, "sync_contact", _poisoned)
    last = again(again(again(again(marker))))  # its fifth delivery: maxReceiveCount
    assert invoke([last]) == {"batchItemFailures": []}
    letters = dead_letters(local)
    assert len(letters) == 10
    assert {letter["error_code"] for letter in letters} == {"retries_exhausted"}
    assert "unexpected error: ValueError" in letters[0]["error_detail"]
    assert staged(local) == []


def test_on_the_last_delivery_only_the_events_this_flush_holds_are_dead_lettered(
    local: LocalMode,
) -> None:
    """Given up on, a flush must not dead-letter an event already applied (a redrive would
    apply it again, over later changes), nor release another delivery's claim."""
    from qomon_sync.domain.change_event import ChangeEvent
    from qomon_sync.handlers.sync import current_runtime

    busy, done, new = firstnames(3)
    events = [ChangeEvent.model_validate_json(r["Body"]) for r in (busy, done, new)]
    ledger = current_runtime().ledger
    assert ledger is not None
    ledger.claim_all([events[0]], remaining_ms=600_000)  # another delivery holds it
    ledger.complete_all([(events[1], {"action": "replaced", "contact_id": 700118})])
    records = [busy, done, new]
    assert invoke(records) == {
        "batchItemFailures": [{"itemIdentifier": r["MessageId"]} for r in records]
    }  # the held event stops the flush: all of it comes back
    last = [again(again(again(again(r)))) for r in records]
    assert invoke(last) == {"batchItemFailures": []}
    letters = {json.loads(letter["body"])["event_id"] for letter in dead_letters(local)}
    assert letters == {events[0].event_id, events[2].event_id}  # not the applied one
    assert ledger.claim_all([events[0]], remaining_ms=1000)[0].name == "BUSY"  # still held
    assert calls(local, PATCH) == 0
    assert staged(local) == []


def _poisoned(*args: Any, **kwargs: Any) -> None:
    raise ValueError("a bug in the fold")


def test_a_contact_waiting_longer_than_the_staging_age_is_flushed_though_more_may_follow(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qomon_sync.handlers.sync import reset_runtime

    monkeypatch.setenv("STAGING_MAX_AGE_S", "0")
    reset_runtime()
    try:
        assert invoke(firstnames(10)) == {"batchItemFailures": []}  # a full batch, flushed
        assert (calls(local, GET), calls(local, PATCH)) == (1, 1)
        assert queued(local) == []  # no marker needed: nothing waits
    finally:
        monkeypatch.delenv("STAGING_MAX_AGE_S")
        reset_runtime()


def test_a_flush_without_tokens_in_time_is_put_off_to_its_marker_not_sent_back(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qomon_sync.adapters.qomon.pacing import BucketWaitTooLong
    from qomon_sync.adapters.shared_bucket import SharedBucket

    original = SharedBucket.reserve
    refused: list[bool] = []

    def busy(self: SharedBucket, *args: Any, **kwargs: Any) -> float:
        if not refused:
            refused.append(True)
            raise BucketWaitTooLong(90.0)  # other instances booked the next 90 s
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SharedBucket, "reserve", busy)
    records = firstnames(3)
    assert invoke(records) == {"batchItemFailures": []}  # deleted: staged, marker queued
    assert calls(local, GET) == 0
    [marker] = queued(local)
    assert invoke([marker]) == {"batchItemFailures": []}
    assert contact(local, 700118)["firstname"] == "Prénom 2"
    assert staged(local) == []


def test_a_table_failing_while_staging_leaves_the_contact_on_the_queue(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = StagingTable.stage

    def failing(self: StagingTable, group: str, events: Any) -> None:
        if group == "id:700118":
            raise RuntimeError("DynamoDB is unreachable")
        original(self, group, events)

    monkeypatch.setattr(StagingTable, "stage", failing)
    held, other = firstnames(2), [message(700106, set={"surname": "Autre"})]
    response = invoke([*held, *other])
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {
        r["MessageId"] for r in held
    }
    assert contact(local, 700106)["surname"] == "Autre"  # another contact is not held up
