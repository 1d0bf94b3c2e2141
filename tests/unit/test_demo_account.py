"""The demo's account of its deliveries: one line per delivery, each write once, and a
redelivered event's duplicate told of the later copy (the sync applies the first).

The outcomes are shaped as the sync logs them ("event processed", in log order);
tests/integration/test_demo.py runs the real thing."""

from __future__ import annotations

from typing import Any

from qomon_sync_dev.demo import Answer, Delivery, account_for

PATHS = ["mobile", "tags[c01c0a6db620]"]


def applied(event_id: str, contact_id: int, invocation: str = "run-1", **more: Any) -> Any:
    return {
        "event_id": event_id,
        "action": more.pop("action", "replaced"),
        "contact_id": contact_id,
        "changed": more.pop("changed", PATHS),
        "warnings": [],
        "function_request_id": invocation,
        **more,
    }


def delivered(label: str, *event_ids: str) -> Answer:
    return (Delivery(label, "generic", b"{}"), 202, list(event_ids), "")


def test_a_redelivered_event_is_applied_for_the_first_delivery_and_a_duplicate_for_the_copy() -> (
    None
):
    # Given an event delivered twice: the sync settles the later copy first (before the
    # write), as a duplicate, then logs the write of the first
    answers = [delivered("first", "evt-1"), delivered("first (sent again)", "evt-1")]
    outcomes = [
        {
            "event_id": "evt-1",
            "action": "duplicate",
            "detail": "a copy of an event already waiting",
        },
        applied("evt-1", 700103),
    ]
    # When the demo accounts for them
    account = account_for(answers, outcomes)
    # Then the first delivery's event was applied and the copy is the duplicate of it
    assert account.lines[0] == ("first", 202, "applied in write 1 (contact 700103, replaced)")
    assert account.lines[1][2] == (
        "duplicate of first, not applied again (a copy of an event already waiting)"
    )
    assert (account.accounted, account.applied, account.duplicates) == (2, 1, 1)


def test_events_folded_into_one_write_are_one_write_with_its_paths_once() -> None:
    # Given three deliveries (one a batch of two events) folded into one PATCH of a contact
    answers = [delivered("a", "e1"), delivered("batch", "e2", "e3"), delivered("c", "e4")]
    outcomes = [applied(event_id, 700118) for event_id in ("e1", "e2", "e3", "e4")]
    # When the demo accounts for them
    account = account_for(answers, outcomes)
    # Then each delivery has one line, and there is one write, naming each delivery once
    assert [fate for _, _, fate in account.lines] == [
        "applied in write 1 (contact 700118, replaced)",
        "2 events applied in write 1 (contact 700118, replaced)",
        "applied in write 1 (contact 700118, replaced)",
    ]
    [write] = account.writes
    assert (write.contact_id, write.changed) == (700118, tuple(PATHS))
    assert (write.events, write.deliveries) == (["e1", "e2", "e3", "e4"], ["a", "batch", "c"])


def test_two_writes_to_one_contact_are_told_apart() -> None:
    # Given one contact written twice: by two invocations, and within one by a fold cut in
    # two by a rejected event
    answers = [delivered(label, label) for label in ("x", "y", "bad", "z")]
    outcomes = [
        applied("x", 700121, "run-1", changed=["custom_fields[form_id=3401]"]),
        applied("y", 700121, "run-2"),
        {"event_id": "bad", "action": "dead_letter", "code": "unknown_field", "detail": "why"},
        applied("z", 700121, "run-2"),
    ]
    # When the demo accounts for them
    account = account_for(answers, outcomes)
    # Then there are three writes, numbered in the order the deliveries meet them
    assert [fate for _, _, fate in account.lines] == [
        "applied in write 1 (contact 700121, replaced)",
        "applied in write 2 (contact 700121, replaced)",
        "dead-lettered: unknown_field: why",
        "applied in write 3 (contact 700121, replaced)",
    ]
    assert [w.changed for w in account.writes] == [
        ("custom_fields[form_id=3401]",),
        tuple(PATHS),
        tuple(PATHS),
    ]


def test_a_delivery_of_mixed_fates_says_each_and_a_missing_outcome_is_not_accounted_for() -> None:
    # Given a batch whose events met different fates, one of them never logged
    answers = [delivered("batch", "e1", "e2", "e3", "e4")]
    outcomes = [
        applied("e1", 700109, action="unchanged", changed=[]),
        applied("e2", 700109, action="unchanged", changed=[]),
        {"event_id": "e3", "action": "dead_letter", "code": "ambiguous_contact", "detail": "2"},
    ]
    # When the demo accounts for it
    account = account_for(answers, outcomes)
    # Then its one line says each fate, counted, and the missing event is not accounted for
    assert account.lines[0][2] == (
        "2 events unchanged (contact 700109): Qomon already holds it; "
        "dead-lettered: ambiguous_contact: 2; MISSING: the sync logged no outcome for it"
    )
    assert (account.accepted, account.accounted, account.writes) == (4, 3, [])


def test_refused_and_checked_deliveries_queue_nothing() -> None:
    answers: list[Answer] = [
        (Delivery("URL check", "mailchimp", b"", 200, method="GET"), 200, [], ""),
        (Delivery("stranger", "mailchimp", b"", 401), 401, [], "wrong token"),
        (Delivery("expected 202", "generic", b"{}"), 400, [], "the body is not JSON"),
    ]
    account = account_for(answers, [])
    assert [fate for _, _, fate in account.lines] == [
        "checked: nothing queued",
        "refused: wrong token",
        "refused: the body is not JSON",
    ]
    assert (account.as_expected, account.accepted) == (2, 0)
