"""What the queue can never take is refused before it is sent, naming the field; and a
queue error a retry cannot pass is never a 503, which would have the sender retry forever
(issue 11)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from qomon_sync.application.ingest import Ingest
from qomon_sync.handlers.ingest import handle
from tests.conftest import PSEUDONYMS
from tests.unit.ingest_harness import StrictQueue, local_ingest, queued, signed_event
from tests.unit.webhooks import example_json

REFUSED = [
    ("\ufffe", "U+FFFE"),
    ("\uffff", "U+FFFF"),
    ("\x00", "U+0000"),
    ("\x0b", "U+000B"),
    ("\x1f", "U+001F"),
]


@pytest.fixture(scope="module")
def moto_ingest() -> Iterator[Ingest]:
    with local_ingest() as running:
        yield running


@pytest.fixture
def ingest(moto_ingest: Ingest) -> Iterator[Ingest]:
    """The ingest in front of a queue that refuses what SQS refuses; emptied after."""
    yield replace(moto_ingest, sqs=StrictQueue(moto_ingest.sqs))
    queued(moto_ingest)


def answer(ingest: Ingest, source: str, payload: Any) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    response = handle(signed_event(source, body, msg_id=f"msg_{time.time_ns()}"), ingest)
    return response["statusCode"], json.loads(response["body"])


def generic_event(**changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"crm-{time.time_ns()}",
        "source": "generic",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": 700103},
        **changes,
    }


@pytest.mark.parametrize(("char", "name"), REFUSED)
def test_a_generic_event_with_a_character_sqs_refuses_is_400_naming_the_field(
    ingest: Ingest, char: str, name: str
) -> None:
    status, problem = answer(ingest, "generic", generic_event(set={"firstname": f"An{char}a"}))
    assert status == 400, problem
    assert problem["errors"][0]["location"] == "set.firstname"
    assert name in problem["detail"]
    assert "An" not in problem["detail"]  # the value itself is never repeated


def test_the_field_is_named_inside_a_list_of_events(ingest: Ingest) -> None:
    events = [
        generic_event(),
        generic_event(notes=[{"data": "ok"}, {"data": "bad \uffff"}]),
    ]
    status, problem = answer(ingest, "generic", events)
    assert status == 400, problem
    assert problem["errors"][0]["location"] == "[1].notes[1].data"


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"tags": {"add": ["ok", "b\uffffad"]}}, "tags.add[1]"),
        ({"fields": [{"field": "Niveau\ufffe", "value": "x"}]}, "fields[0].field"),
        ({"fields": [{"field": "Niveau", "value": "favorable\uffff"}]}, "fields[0].value"),
        ({"fields": [{"field": "Tâches", "value": ["a", "b\uffff"]}]}, "fields[0].value[1]"),
        ({"set": {"address": {"city": "Lyon\uffff"}}}, "set.address.city"),
        ({"contact": {"mail": "ana\uffff@example.org"}}, "contact.mail"),
    ],
)
def test_every_text_of_a_change_event_is_checked(
    ingest: Ingest, changes: dict[str, Any], location: str
) -> None:
    status, problem = answer(ingest, "generic", generic_event(**changes))
    assert status == 400, problem
    assert problem["errors"][0]["location"] == location
    assert problem["detail"].count(location) == 1  # one complaint, not one per union member


def test_a_lone_surrogate_escaped_in_json_is_400_naming_the_field(ingest: Ingest) -> None:
    body = json.dumps(generic_event(set={"firstname": "x"})).replace('"x"', '"\\ud800"')
    response = handle(signed_event("generic", body.encode()), ingest)
    problem = json.loads(response["body"])
    assert response["statusCode"] == 400, problem
    assert problem["errors"][0]["location"] == "set.firstname"


def typeform_with_first_answer(text: str) -> dict[str, Any]:
    payload: dict[str, Any] = example_json("typeform/form-response.json")
    answers = payload["form_response"]["answers"]
    index = next(i for i, a in enumerate(answers) if a["type"] == "text")
    answers[index]["text"] = text
    return payload


@pytest.mark.parametrize(("char", "name"), REFUSED[:2])
def test_a_typeform_answer_with_such_a_character_is_400_naming_the_answer(
    ingest: Ingest, char: str, name: str
) -> None:
    status, problem = answer(ingest, "typeform", typeform_with_first_answer(f"Ana{char}"))
    assert status == 400, problem
    location = problem["errors"][0]["location"]
    assert location.startswith("form_response.answers[")
    assert location.endswith("].text")
    assert name in problem["detail"]


def test_a_tally_answer_with_such_a_character_is_400_naming_the_answer(ingest: Ingest) -> None:
    payload = example_json("tally/form-response.json")
    fields = payload["data"]["fields"]
    index = next(i for i, f in enumerate(fields) if f["type"] == "INPUT_TEXT")
    fields[index]["value"] = "Infirmi\uffffère"
    status, problem = answer(ingest, "tally", payload)
    assert status == 400, problem
    assert problem["errors"][0]["location"] == f"data.fields[{index}].value"


def test_a_brevo_email_with_such_a_character_is_400_naming_it(ingest: Ingest) -> None:
    payload = {**example_json("brevo/unsubscribed.json"), "email": "ana\ufffe@example.org"}
    status, problem = answer(ingest, "brevo", payload)
    assert status == 400, problem
    assert problem["errors"][0]["location"] == "email"


def test_nothing_is_sent_when_one_event_of_a_delivery_is_refused(ingest: Ingest) -> None:
    events = [generic_event(), generic_event(set={"firstname": "\uffff"})]
    assert answer(ingest, "generic", events)[0] == 400
    assert isinstance(ingest.sqs, StrictQueue)
    assert ingest.sqs.calls == 0


def test_texts_sqs_takes_pass_unchanged(ingest: Ingest, moto_ingest: Ingest) -> None:
    text = "Zoé \t 😀 \ufffd \ue000 \U0010fffd \ud7ff"  # the edges of what SQS takes
    status, problem = answer(ingest, "generic", generic_event(notes=[{"data": text}]))
    assert status == 202, problem
    [message] = queued(moto_ingest)
    assert message["body"]["notes"][0]["data"] == text.strip()


def brevo_list_additions(count: int, lists: int) -> list[dict[str, Any]]:
    base = example_json("brevo/list-addition.json")
    return [
        {**base, "email": f"person{i}@example.org", "list_id": list(range(10_000, 10_000 + lists))}
        for i in range(count)
    ]


def test_events_that_fill_more_than_one_batch_are_sent_in_several(
    ingest: Ingest, moto_ingest: Ingest
) -> None:
    """10 list additions of 1,500 lists each: 90 KB of body, 300 KB of change events (each
    list is a tag), more than one SQS batch takes. Before: BatchRequestTooLong, 503."""
    payload = brevo_list_additions(10, 1500)
    status, problem = answer(ingest, "brevo", payload)
    assert status == 202, problem
    assert problem["accepted"] == 10
    assert len(queued(moto_ingest)) == 10


class ScriptedQueue:
    """Answers send_message_batch from a script: a dict (the answer) or an exception."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[list[str]] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.calls.append([e["Id"] for e in kwargs["Entries"]])
        step = self.script.pop(0) if self.script else {"Failed": []}
        if isinstance(step, BaseException):
            raise step
        return step


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m", "Type": "Sender"}}, "Send")


def failed(sender_fault: bool, code: str = "InvalidMessageContents") -> dict[str, Any]:
    return {"Failed": [{"Id": "0", "SenderFault": sender_fault, "Code": code, "Message": "m"}]}


def with_queue(moto_ingest: Ingest, queue: ScriptedQueue) -> Ingest:
    return replace(moto_ingest, sqs=queue)


@pytest.mark.parametrize(
    ("step", "status"),
    [
        (failed(True), 400),
        (failed(True, "InvalidParameterValue"), 400),
        (client_error("InvalidMessageContents"), 400),
        (client_error("AWS.SimpleQueueService.InvalidMessageContents"), 400),
        (client_error("AWS.SimpleQueueService.BatchRequestTooLong"), 413),
        (client_error("MessageTooLong"), 413),
        (client_error("InvalidParameterValue"), 400),
    ],
)
def test_a_refusal_a_retry_cannot_pass_is_never_503(
    moto_ingest: Ingest, step: Any, status: int
) -> None:
    queue = ScriptedQueue(step)
    code, problem = answer(with_queue(moto_ingest, queue), "generic", generic_event())
    assert code == status, problem
    assert "retry-after" not in json.dumps(problem)
    assert len(queue.calls) == 1  # not tried again: it would be refused again
    assert problem["errors"][0]["location"] == "body"


@pytest.mark.parametrize(
    "step",
    [
        failed(False, "InternalError"),
        client_error("AWS.SimpleQueueService.RequestThrottled"),
        client_error("RequestThrottled"),
        client_error("KMS.ThrottlingException"),
        client_error("AWS.SimpleQueueService.NonExistentQueue"),
        client_error("AccessDenied"),
        EndpointConnectionError(endpoint_url="https://sqs.eu-west-3.amazonaws.com"),
    ],
)
def test_a_failure_that_may_pass_later_is_503_with_retry_after(
    moto_ingest: Ingest, step: Any
) -> None:
    queue = ScriptedQueue(step, step)
    response = handle(
        signed_event("generic", json.dumps(generic_event()).encode()),
        with_queue(moto_ingest, queue),
    )
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "30"


def test_an_entry_that_failed_on_sqs_side_is_tried_once_more(moto_ingest: Ingest) -> None:
    queue = ScriptedQueue(failed(False, "InternalError"), {"Failed": []})
    code, problem = answer(with_queue(moto_ingest, queue), "generic", generic_event())
    assert code == 202, problem
    assert queue.calls == [["0"], ["0"]]


def slipped_event() -> Any:
    """An event built without validation (model_construct) whose first name holds a
    character SQS refuses."""
    from qomon_sync.domain.change_event import BasicFieldsPatch, ChangeEvent, ContactRef

    return ChangeEvent.model_construct(
        event_id="e-1",
        source="generic",
        occurred_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
        contact=ContactRef(id=1),
        set=BasicFieldsPatch.model_construct(firstname="A\uffff"),
    )


def test_the_last_look_before_sending_names_a_field_that_slipped_by() -> None:
    """An event built without validation (model_construct) is still checked as sent."""
    from qomon_sync.adapters.changes_queue import Unsendable, as_entries

    event = slipped_event()
    with pytest.raises(Unsendable) as refused:
        as_entries([event], ["d-1"], pseudonyms=PSEUDONYMS)
    assert refused.value.field == "set.firstname"
    assert "U+FFFF" in refused.value.detail


def test_batches_hold_at_most_ten_entries_and_the_size_sqs_takes() -> None:
    from qomon_sync.adapters.changes_queue import batches, message_bytes

    entries = [{"Id": str(i), "MessageBody": "é" * 40_000} for i in range(12)]  # 80 KB each
    cut = list(batches(entries, 262_144))
    assert [len(b) for b in cut] == [3, 3, 3, 3]
    assert all(sum(message_bytes(e) for e in b) <= 262_144 for b in cut)
    small = [{"Id": str(i), "MessageBody": "{}"} for i in range(25)]
    assert [len(b) for b in batches(small, 262_144)] == [10, 10, 5]
    assert [e["Id"] for b in batches(small, 262_144) for e in b] == [str(i) for i in range(25)]


def test_message_attributes_count_in_a_messages_size() -> None:
    from qomon_sync.adapters.changes_queue import message_bytes

    entry = {
        "Id": "0",
        "MessageBody": "ab",
        "MessageAttributes": {"source": {"DataType": "String", "StringValue": "tally"}},
    }
    assert message_bytes(entry) == 2 + len("source") + len("String") + len("tally")


def test_the_ingest_refuses_a_slipped_character_as_the_senders_fault_naming_the_field() -> None:
    """What the queue's last look finds is answered 400 by the ingest, the field named."""
    from qomon_sync.application.ingest import accept
    from qomon_sync.domain.change_event import ChangeEvent
    from qomon_sync.sources.base import BadPayload, WebhookRequest

    event = slipped_event()

    class Slipped:
        name = "generic"

        def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
            return [event]

        def delivery_id(self, request: WebhookRequest) -> str | None:
            return "msg_1"

    request = WebhookRequest(
        source="generic", body=b"{}", headers={}, received_at=datetime.now(UTC)
    )
    with pytest.raises(BadPayload) as refused:
        accept(cast(Any, Slipped()), request, None, pseudonyms=PSEUDONYMS, max_bytes=262_144,
               authenticate=False)  # fmt: skip
    assert (refused.value.status, refused.value.field) == (400, "set.firstname")
    assert "U+FFFF" in refused.value.detail
