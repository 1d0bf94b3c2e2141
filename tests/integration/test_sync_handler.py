"""The sync handler invoked directly with SQS events, against local AWS and the stand-in."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from tests.integration.sync_harness import invoke, paused_local_mode, queued, standin
from tests.integration.sync_harness import message as harness_message

pytestmark = pytest.mark.integration


@pytest.fixture
def local() -> Iterator[LocalMode]:
    with paused_local_mode() as running:
        yield running


def message(
    contact_id: int, *, event_id: str | None = None, source: str = "test", **changes: Any
) -> dict[str, Any]:
    """A message without a sequence number, as the handler's tests have always sent."""
    return harness_message(contact_id, event_id=event_id, source=source, sequenced=False, **changes)


def dead_letters(local: LocalMode) -> list[dict[str, str]]:
    assert local.endpoints is not None
    sqs = boto3.client(
        "sqs", endpoint_url=local.endpoints.aws_endpoint_url, region_name=local.endpoints.region
    )
    answer = sqs.receive_message(
        QueueUrl=local.endpoints.dead_letter_queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )
    return [
        {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
        for m in answer.get("Messages", [])
    ]


def the_pause() -> Any:
    """The space's pause as every instance reads it (None: the space is not paused)."""
    from qomon_sync.handlers.sync import current_runtime

    pauses = current_runtime().pauses
    assert pauses is not None
    return pauses.get()


def test_too_little_time_even_to_stage_leaves_the_batch_for_redelivery_untouched(
    local: LocalMode,
) -> None:
    records = [message(700103, set={"firstname": "X"}), message(700106, set={"firstname": "Y"})]
    response = invoke(records, timeout_s=8.5)  # 8.5 s minus the 8 s margin: not even to stage
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {
        r["MessageId"] for r in records
    }
    assert "GET /contacts/{id}" not in standin(local, "stats")["calls"]
    assert queued(local) == []


def test_too_little_time_for_a_contact_stages_it_and_its_marker_flushes_it_later(
    local: LocalMode,
) -> None:
    records = [message(700103, set={"firstname": "X"}), message(700106, set={"firstname": "Y"})]
    response = invoke(records, timeout_s=10)  # 10 s minus the 8 s margin: not enough for a contact
    assert response == {"batchItemFailures": []}  # staged: deleted from the queue, kept
    assert "GET /contacts/{id}" not in standin(local, "stats")["calls"]
    markers = queued(local)
    assert sorted(m["Attributes"]["MessageGroupId"] for m in markers) == ["id:700103", "id:700106"]
    assert invoke(markers) == {"batchItemFailures": []}
    assert standin(local, "contacts/700103")["contact"]["firstname"] == "X"
    assert standin(local, "contacts/700106")["contact"]["firstname"] == "Y"
    assert patches(local) == 2
    assert queued(local) == []


def test_one_contacts_outage_does_not_hold_up_another(local: LocalMode) -> None:
    standin(local, "faults", {"status": 503, "count": 5})  # the first contact's GET, every attempt
    held, other = (
        message(700103, set={"firstname": "Held"}),
        message(700109, set={"firstname": "Other"}),
    )
    response = invoke([held, other])
    assert response == {"batchItemFailures": [{"itemIdentifier": held["MessageId"]}]}
    assert standin(local, "contacts/700109")["contact"]["firstname"] == "Other"
    assert dead_letters(local) == []


def test_a_bug_outside_any_contact_leaves_the_batch_for_redelivery_and_says_so(
    local: LocalMode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The processor runs the batch before it reports any record: a failure there is
    reported as every message coming back, not as a crash of the function."""
    from qomon_sync.application.sync_batch import SyncBatch

    def broken(self: SyncBatch, groups: Any) -> list[str]:
        raise KeyError("a bug")

    monkeypatch.setattr(SyncBatch, "_stopped_before", broken)
    records = [message(700103, set={"firstname": "X"}), message(700106, set={"firstname": "Y"})]
    response = invoke(records)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["MessageId"] for r in records
    ]
    assert "the batch stopped on an unexpected error" in caplog.text
    assert "GET /contacts/{id}" not in standin(local, "stats")["calls"]


def test_a_refused_api_key_pauses_the_space_and_dead_letters_nothing(local: LocalMode) -> None:
    """Issue 20: a 401 is about the key, not the contact. The space pauses at once; the
    event waits staged with a flush marker behind it, its message is deleted (no receive
    spent), nothing is dead-lettered, and the key never shows in what is kept."""
    assert local.endpoints is not None
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=local.endpoints.aws_endpoint_url,
        region_name=local.endpoints.region,
    )
    secrets.put_secret_value(
        SecretId=local.endpoints.qomon_api_key_secret, SecretString="revoked-key"
    )
    from qomon_sync.handlers.sync import reset_runtime

    reset_runtime()
    response = invoke([message(700103, set={"firstname": "X"})])
    assert response == {"batchItemFailures": []}
    assert dead_letters(local) == []
    pause = the_pause()
    assert pause is not None
    assert pause.cause == "key_refused"
    assert pause.description == "Qomon refuses the API key (HTTP 401)"
    assert pause.waiting == (700103,)
    [flush_marker] = queued(local)
    assert flush_marker["Attributes"]["MessageGroupId"] == "id:700103"
    # Paused: the next flush calls nothing at Qomon and defers again.
    before = standin(local, "stats")["calls"]
    assert invoke([message(700106, set={"firstname": "Y"})]) == {"batchItemFailures": []}
    assert standin(local, "stats")["calls"] == before
    assert "revoked-key" not in json.dumps(the_pause().__dict__)


def test_an_outage_met_by_two_contacts_pauses_and_a_last_delivery_then_waits(
    local: LocalMode,
) -> None:
    """Issue 20: two contacts failing with 503 pause the space; the first one's messages
    come back (one receive spent before the pause), and on their last delivery they find
    the space paused: staged with a fresh marker, never given up, nothing dead-lettered."""
    standin(local, "config", {"outage": True})
    try:
        first = message(700103, set={"firstname": "X"})
        response = invoke([first, message(700106, set={"firstname": "Y"})])
        assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [first["MessageId"]]
        pause = the_pause()
        assert pause is not None
        assert (pause.cause, pause.description) == ("outage", "Qomon answers 503")
        before = standin(local, "stats")["calls"]
        last = {**first, "Attributes": {**first["Attributes"], "ApproximateReceiveCount": "5"}}
        assert invoke([last]) == {"batchItemFailures": []}
        assert standin(local, "stats")["calls"] == before  # paused: nothing called
    finally:
        standin(local, "config", {"outage": False})
    assert dead_letters(local) == []
    groups = sorted(m["Attributes"]["MessageGroupId"] for m in queued(local))
    assert groups == ["id:700103", "id:700106"]  # a flush marker behind each


def test_a_contact_failing_alone_still_dead_letters_on_its_last_delivery(
    local: LocalMode,
) -> None:
    """Issue 20: one contact whose calls fail by itself (a poison contact) is not an
    outage: on its last delivery a second opinion (a GET of another contact) finds Qomon
    answering, so it reaches the dead-letter queue with its reason and the space stays
    open."""
    standin(local, "config", {"failing_contacts": [700103]})
    try:
        response = invoke([message(700103, set={"firstname": "X"}, receives=5)])
    finally:
        standin(local, "config", {"failing_contacts": []})
    assert response == {"batchItemFailures": []}
    [letter] = dead_letters(local)
    assert letter["error_code"] == "retries_exhausted"
    assert "HTTP 500" in letter["error_detail"]
    assert the_pause() is None
    assert standin(local, "stats")["statuses"].get("404") == 1  # the second opinion


def test_an_outage_met_by_one_contact_alone_pauses_on_its_last_delivery(
    local: LocalMode,
) -> None:
    """Issue 20: with one contact in flight, an outage looks like a poison contact until
    its last delivery; the second opinion then fails too, so the space pauses and the
    events wait staged, nothing dead-lettered."""
    standin(local, "config", {"outage": True})
    try:
        response = invoke([message(700103, set={"firstname": "X"}, receives=5)])
    finally:
        standin(local, "config", {"outage": False})
    assert response == {"batchItemFailures": []}
    assert dead_letters(local) == []
    pause = the_pause()
    assert pause is not None
    assert pause.cause == "outage"
    [flush_marker] = queued(local)
    assert flush_marker["Attributes"]["MessageGroupId"] == "id:700103"


def test_a_hung_qomon_met_by_one_contact_alone_pauses_on_its_last_delivery(
    local: LocalMode,
) -> None:
    """Issue 20, against a Qomon that HANGS (every call times out), not one answering 503:
    on the last delivery the flush keeps back the time the second opinion needs, so the
    second opinion is asked, times out too, and the space pauses; nothing dead-lettered."""
    standin(local, "config", {"timeout_rate": 1.0, "hang_s": 12.0})
    try:
        response = invoke([message(700103, set={"firstname": "X"}, receives=5)], timeout_s=32)
    finally:
        standin(local, "config", {"timeout_rate": 0.0})
    assert response == {"batchItemFailures": []}
    assert dead_letters(local) == []
    pause = the_pause()
    assert pause is not None
    assert pause.cause == "outage"
    assert pause.description == "Qomon does not answer (timeouts or refused connections)"
    [flush_marker] = queued(local)
    assert flush_marker["Attributes"]["MessageGroupId"] == "id:700103"


def test_a_403_for_one_contact_alone_never_pauses_and_dead_letters_it_as_qomon_auth(
    local: LocalMode,
) -> None:
    """A 403 may be about one contact's rights, not the key: alone it does not pause the
    space; the contact comes back, and on its last delivery (the second opinion finding
    Qomon answering) it reaches the dead-letter queue with its reason, qomon_auth."""
    standin(local, "config", {"forbidden_contacts": [700103]})
    try:
        forbidden = message(700103, set={"firstname": "X"})
        first = invoke([forbidden])
        assert the_pause() is None
        assert len(first["batchItemFailures"]) == 1  # it comes back: not given up yet
        assert dead_letters(local) == []
        attributes = {**forbidden["Attributes"], "ApproximateReceiveCount": "5"}
        last = invoke([{**forbidden, "Attributes": attributes}])
    finally:
        standin(local, "config", {"forbidden_contacts": []})
    assert last == {"batchItemFailures": []}
    assert the_pause() is None
    [letter] = dead_letters(local)
    assert letter["error_code"] == "qomon_auth"
    assert "403" in letter["error_detail"]


def test_a_403_for_two_contacts_pauses_the_space(local: LocalMode) -> None:
    standin(local, "config", {"forbidden_contacts": [700103, 700106]})
    try:
        invoke([message(700103, set={"firstname": "X"}), message(700106, set={"firstname": "Y"})])
    finally:
        standin(local, "config", {"forbidden_contacts": []})
    pause = the_pause()
    assert pause is not None
    assert pause.description == "Qomon refuses the API key (HTTP 403)"
    assert dead_letters(local) == []


PERSONAL: dict[str, Any] = {
    "set": {"firstname": "Dry", "nationality": "Ukrainienne", "birth_country": "Ukraine"},
    "tags": {"add": ["soutien-discret"]},
    "fields": [
        {"field": "Niveau de soutien", "value": "very_favorable"},
        {"field": "Consentements", "op": "add", "value": "consent_sms"},
        {"field": "Quelle est votre principale préoccupation ?", "value": "Le loyer trop cher"},
    ],
    "notes": [{"data": "Hésite entre deux listes"}],
}
"""A dry-run event touching every kind of personal data: none of it may be logged."""
PERSONAL_VALUES = (
    "Dry",
    "Ukrain",
    "soutien-discret",
    "very_favorable",
    "consent_sms",
    "loyer",
    "Hésite",
    "sympathisant",  # the contact's own tag
    "ana.martin",
)


def dry_run_logs(env: dict[str, str], caplog: pytest.LogCaptureFixture) -> list[str]:
    from qomon_sync.handlers.sync import reset_runtime

    os.environ.update(env)
    try:
        reset_runtime()
        record = message(700103, **PERSONAL)
        assert invoke([record]) == {"batchItemFailures": []}
        assert invoke([record]) == {"batchItemFailures": []}  # nothing recorded: not a duplicate
    finally:
        for name in env:
            del os.environ[name]
        reset_runtime()
    return [json.dumps(r.__dict__, default=str, ensure_ascii=False) for r in caplog.records]


def test_dry_run_reads_but_never_writes_and_logs_no_value_of_a_person(
    local: LocalMode, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: dry run masked only basic fields; answers (level of support included),
    consents, free text, tags and nationality were logged in clear."""
    lines = dry_run_logs({"DRY_RUN": "true"}, caplog)
    calls = standin(local, "stats")["calls"]
    assert calls["GET /contacts/{id}"] == 2
    assert "PATCH /contacts/{id}" not in calls
    actions = [
        getattr(r, "action", None) for r in caplog.records if r.getMessage() == "event processed"
    ]
    assert actions == ["would_be_replaced", "would_be_replaced"]
    leaks = [value for value in PERSONAL_VALUES for line in lines if value in line]
    assert leaks == []
    [shown, _] = [r for r in caplog.records if r.getMessage() == "dry run: not written"]
    body = shown.body  # type: ignore[attr-defined]
    assert body["firstname"] == "text"
    assert all(answer["form_ref_id"] == "number" for answer in body["formdatas"])  # the choice
    [processed, _] = [r for r in caplog.records if r.getMessage() == "event processed"]
    changed = processed.changed  # type: ignore[attr-defined]
    assert "firstname" in changed
    assert any(path.startswith("tags[") for path in changed)  # a digest, not the name


def test_dry_run_shows_values_only_when_local_mode_asks_and_never_in_lambda(
    local: LocalMode, caplog: pytest.LogCaptureFixture
) -> None:
    shown = dry_run_logs({"DRY_RUN": "true", "DRY_RUN_SHOW_VALUES": "true"}, caplog)
    assert any("Ukrainienne" in line for line in shown)
    caplog.clear()
    in_lambda = dry_run_logs(
        {
            "DRY_RUN": "true",
            "DRY_RUN_SHOW_VALUES": "true",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        },
        caplog,
    )
    assert not any("Ukrainienne" in line for line in in_lambda)


def test_a_dead_letter_leaves_the_process_redacted_in_its_log_line_too(
    local: LocalMode, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: only the queue attribute was redacted; the log line printed the e-mail."""
    label = "Contact ana.martin@example.org"
    assert invoke([message(700103, fields=[{"field": label, "value": "x"}])]) == {
        "batchItemFailures": []
    }
    [letter] = dead_letters(local)
    lines = [json.dumps(r.__dict__, default=str) for r in caplog.records]
    assert letter["error_code"] == "unknown_field"
    assert any("<email>" in line for line in lines)
    assert not any("ana.martin" in line for line in lines)
    assert "ana.martin" not in json.dumps(letter)


def test_metrics_are_emitted_as_emf(local: LocalMode, capsys: pytest.CaptureFixture[str]) -> None:
    invoke(
        [
            message(700103, set={"firstname": "Metric"}),
            message(700106, fields=[{"field": "Nope", "value": 1}]),
        ]
    )
    blobs = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    names = {
        m["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert {
        "EventsReceived",
        "ContactsReplaced",
        "QomonTokensSpent",
        "QomonCalls",
        "QomonLatency",
        "EventsDeadLettered",
    } <= names
    [dead] = [b for b in blobs if "EventsDeadLettered" in b]
    assert dead["reason"] == "unknown_field"
    usage = next(b for b in blobs if "QomonTokensSpent" in b)
    assert usage["QomonTokensSpent"] == [1 + 5 + 1 + 6]  # GET+PATCH, GET, and the 6 forms


def patches(local: LocalMode) -> int:
    return int(standin(local, "stats")["calls"].get("PATCH /contacts/{id}", 0))


def test_one_sources_event_id_never_makes_anothers_a_duplicate(local: LocalMode) -> None:
    """Issue 11: a generic event with id `tally-<id>` was recorded under that id alone, and
    the real Tally event with the same id was then skipped as already applied."""
    shared = "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1"
    claimed = message(700103, event_id=shared, source="generic", set={"firstname": "Generic"})
    real = message(700103, event_id=shared, source="tally", set={"firstname": "Tally"})
    assert invoke([claimed]) == {"batchItemFailures": []}
    assert invoke([real]) == {"batchItemFailures": []}
    assert standin(local, "contacts/700103")["contact"]["firstname"] == "Tally"
    assert patches(local) == 2
    # Each source's own redelivery is still a duplicate, and changes nothing.
    assert invoke([real]) == {"batchItemFailures": []}
    assert invoke([claimed]) == {"batchItemFailures": []}
    assert patches(local) == 2


def test_the_same_event_id_from_two_sources_in_one_batch_is_applied_once_each(
    local: LocalMode,
) -> None:
    """The fold names events by source and id, so both go into the one write."""
    shared = "crm-42"
    first = message(700106, event_id=shared, source="crm", set={"firstname": "First"})
    second = message(700106, event_id=shared, source="generic", set={"surname": "Second"})
    assert invoke([first, second]) == {"batchItemFailures": []}
    contact = standin(local, "contacts/700106")["contact"]
    assert (contact["firstname"], contact["surname"]) == ("First", "Second")
    assert patches(local) == 1
    assert dead_letters(local) == []


def test_an_event_holding_a_non_text_character_is_dead_lettered_naming_the_field(
    local: LocalMode,
) -> None:
    """One that reached the queue without the ingest (a console, an old message): the
    same rule as at the door, and the field as a sender names it (no union member tags)."""
    record = message(700103, fields=[{"field": "Profession", "value": "x\u0001y"}])
    assert invoke([record]) == {"batchItemFailures": []}
    [letter] = dead_letters(local)
    assert letter["error_code"] == "invalid_event"
    assert letter["error_fields"] == "fields[0].value"
    assert "U+0001" in letter["error_detail"]


@pytest.fixture
def aws_window() -> Iterator[LocalMode]:
    """Local mode with AWS's ledger retention (21 days), so the replay window applies."""
    with LocalMode(LocalOptions(ledger_retention_days=21)) as running:
        assert running.poller is not None
        running.poller.pause()
        yield running


def dated(contact_id: int, occurred_at: datetime, **changes: Any) -> dict[str, Any]:
    record = message(contact_id, **changes)
    body = json.loads(record["Body"]) | {"occurred_at": occurred_at.isoformat()}
    record["Body"] = json.dumps(body)
    record["MD5OfBody"] = hashlib.md5(record["Body"].encode(), usedforsecurity=False).hexdigest()
    return record


def test_an_event_older_than_the_ledger_remembers_is_refused_as_a_possible_replay(
    aws_window: LocalMode,
) -> None:
    """Issue 11: a captured delivery replayed after the ledger forgot it was applied again,
    reverting a later change. Sources that sign no timestamp cannot tell a replay apart."""
    now = datetime.now(UTC)
    old = dated(700103, now - timedelta(days=22), set={"mobile": "+33699999999"})
    recent = dated(700103, now - timedelta(days=20), set={"firstname": "Recent"})
    assert invoke([old, recent]) == {"batchItemFailures": []}
    [letter] = dead_letters(aws_window)
    assert letter["error_code"] == "outside_replay_window"
    assert letter["error_fields"] == "occurred_at"
    contact = standin(aws_window, "contacts/700103")["contact"]
    assert contact["firstname"] == "Recent"
    assert contact["mobile"] != "+33699999999"


def test_an_event_from_the_future_beyond_the_skew_is_refused(aws_window: LocalMode) -> None:
    now = datetime.now(UTC)
    ahead = dated(700106, now + timedelta(hours=1), set={"firstname": "Ahead"})
    skewed = dated(700109, now + timedelta(minutes=2), set={"firstname": "Skewed"})
    assert invoke([ahead, skewed]) == {"batchItemFailures": []}
    [letter] = dead_letters(aws_window)
    assert letter["error_code"] == "outside_replay_window"
    assert "in the future" in letter["error_detail"]
    assert standin(aws_window, "contacts/700109")["contact"]["firstname"] == "Skewed"


def test_two_copies_of_one_event_in_a_batch_settle_at_once(local: LocalMode) -> None:
    """Issue 11: the second copy found its own claim busy, and it and the contact's later
    events waited a whole visibility timeout."""
    first = message(700103, event_id="tally-copy-1", source="tally", set={"firstname": "Once"})
    copy = dict(first, MessageId=str(uuid.uuid4()), ReceiptHandle=uuid.uuid4().hex)
    later = message(700103, set={"surname": "Later"})
    assert invoke([first, copy, later]) == {"batchItemFailures": []}
    contact = standin(local, "contacts/700103")["contact"]
    assert (contact["firstname"], contact["surname"]) == ("Once", "Later")
    assert patches(local) == 1
    assert dead_letters(local) == []
