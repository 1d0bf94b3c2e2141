"""The generic source: Standard Webhooks authentication, change events v1 as they are."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qomon_sync.sources.base import BadPayload, NoContact, Unauthenticated
from qomon_sync.sources.generic import GenericSource
from tests.unit.webhooks import (
    as_body,
    dumped,
    example,
    example_json,
    request,
    standard_webhooks_headers,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_c2VjcmV0LW9mLWFub3RoZXItc2VuZGVyIQ=="
EXAMPLE = "generic/two-change-events.json"
SOURCE = GenericSource()


def signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    return standard_webhooks_headers(SECRET, body, **kwargs)


def now() -> datetime:
    # The standardwebhooks package checks the window against the wall clock as well.
    return datetime.now(UTC).replace(microsecond=0)


def test_the_documented_example_gives_its_two_change_events_unchanged() -> None:
    events = SOURCE.change_events(request("generic", example(EXAMPLE)))
    assert dumped(events) == example_json(EXAMPLE)


def test_a_single_change_event_is_a_delivery_of_one() -> None:
    first = example_json(EXAMPLE)[0]
    assert dumped(SOURCE.change_events(request("generic", as_body(first)))) == [first]


def test_a_correctly_signed_delivery_is_accepted() -> None:
    body, sent_at = example(EXAMPLE), now()
    SOURCE.authenticate(request("generic", body, signed(body, sent_at=sent_at), sent_at), SECRET)


def test_during_a_key_rotation_any_one_valid_signature_passes() -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = signed(body, sent_at=sent_at)
    stale_key = standard_webhooks_headers(OTHER_SECRET, body, sent_at=sent_at)
    headers["webhook-signature"] = (
        f"{stale_key['webhook-signature']} v1a,c29tZS1lZDI1NTE5LXNpZw== "
        f"{headers['webhook-signature']}"
    )
    SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)


def test_blanks_around_and_between_signatures_do_not_matter() -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = signed(body, sent_at=sent_at)
    other = standard_webhooks_headers(OTHER_SECRET, body, sent_at=sent_at)["webhook-signature"]
    headers["webhook-signature"] = f"  {other}   {headers['webhook-signature']} "
    SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)


def test_the_delivery_id_is_the_webhook_id() -> None:
    body = example(EXAMPLE)
    assert SOURCE.delivery_id(request("generic", body, signed(body, msg_id="msg_9"))) == "msg_9"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused_naming_it(missing: str) -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = signed(body, sent_at=sent_at)
    del headers[missing]
    with pytest.raises(Unauthenticated) as refused:
        SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)
    assert refused.value.detail == f"missing header {missing}"
    assert refused.value.field == missing


@pytest.mark.parametrize(
    "signature",
    [
        "v1",  # no comma
        "v1,not base64!",
        "v1,c2hvcnQ=",  # base64, but not 32 bytes
        "v1a,c29tZS1lZDI1NTE5LXNpZw==",  # only an asymmetric signature
        "v1,,",
        "sha256=abc",
        "v1,QUJD v1",
    ],
)
def test_a_malformed_signature_is_refused_as_malformed(signature: str) -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = {**signed(body, sent_at=sent_at), "webhook-signature": signature}
    with pytest.raises(Unauthenticated) as refused:
        SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)
    assert refused.value.detail.startswith("malformed header webhook-signature")


@pytest.mark.parametrize("timestamp", ["soon", "1e9", "-5", "1732122131.5", " "])
def test_a_malformed_timestamp_is_refused(timestamp: str) -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = {**signed(body, sent_at=sent_at), "webhook-timestamp": timestamp}
    with pytest.raises(Unauthenticated) as refused:
        SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)
    assert "webhook-timestamp" in refused.value.detail


@pytest.mark.parametrize(
    ("secret", "change"),
    [
        (OTHER_SECRET, None),  # signed by someone else
        (SECRET, "body"),  # the body was altered after signing
        (SECRET, "id"),  # the id was altered after signing
    ],
)
def test_a_wrong_signature_is_refused(secret: str, change: str | None) -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = standard_webhooks_headers(secret, body, sent_at=sent_at)
    if change == "body":
        body = body.replace(b"crm-activity-58213", b"crm-activity-58299")
    if change == "id":
        headers["webhook-id"] = "msg_other"
    with pytest.raises(Unauthenticated) as refused:
        SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)
    assert refused.value.detail.startswith("wrong signature in webhook-signature")


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_outside_the_5_minute_window_is_stale(offset: timedelta) -> None:
    body, sent_at = example(EXAMPLE), now() + offset
    with pytest.raises(Unauthenticated) as refused:
        SOURCE.authenticate(request("generic", body, signed(body, sent_at=sent_at), now()), SECRET)
    assert refused.value.detail.startswith("stale timestamp in webhook-timestamp")


def test_a_delivery_replayed_after_the_window_is_refused() -> None:
    body, sent_at = example(EXAMPLE), now()
    headers = signed(body, sent_at=sent_at)
    SOURCE.authenticate(request("generic", body, headers, sent_at + timedelta(seconds=2)), SECRET)
    replay = request("generic", body, headers, sent_at + timedelta(minutes=5, seconds=1))
    with pytest.raises(Unauthenticated, match="stale timestamp"):
        SOURCE.authenticate(replay, SECRET)


def test_a_body_that_is_not_utf8_is_refused_not_crashed_on() -> None:
    body, sent_at = b'{"event_id": "\xff"}', now()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": "v1," + "A" * 43 + "=",
    }
    with pytest.raises(Unauthenticated, match="not UTF-8"):
        SOURCE.authenticate(request("generic", body, headers, sent_at), SECRET)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_%%%"])
def test_an_unusable_secret_lets_nothing_pass(secret: str) -> None:
    body, sent_at = example(EXAMPLE), now()
    with pytest.raises(Unauthenticated):
        SOURCE.authenticate(
            request("generic", body, signed(body, sent_at=sent_at), sent_at), secret
        )


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "x", "webhook-timestamp": "99999999999", "webhook-signature": "v1,=="},
        {"webhook-id": "x", "webhook-timestamp": "0", "webhook-signature": "v1,A"},
        {"webhook-id": "\u00e9", "webhook-timestamp": "1", "webhook-signature": "v1 , x"},
    ],
)
def test_odd_headers_only_ever_give_unauthenticated(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthenticated):
        SOURCE.authenticate(request("generic", b"{}", headers, now()), SECRET)


def test_a_body_that_is_not_json_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload) as refused:
        SOURCE.change_events(request("generic", b"event_id=1"))
    assert refused.value.field == "body"


@pytest.mark.parametrize("body", [b'"an event"', b"42", b"[]", as_body([{}] * 51)])
def test_a_body_of_the_wrong_shape_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload) as refused:
        SOURCE.change_events(request("generic", body))
    assert refused.value.field == "body"


def test_an_invalid_event_is_named_by_its_path_without_echoing_the_value() -> None:
    events = example_json(EXAMPLE)
    events[1]["contact"] = {"mail": "not-an-address"}
    with pytest.raises(BadPayload) as refused:
        SOURCE.change_events(request("generic", as_body(events)))
    assert refused.value.field == "[1].contact.mail"
    assert "is not an e-mail address" in refused.value.detail
    assert "not-an-address" not in refused.value.detail


def test_an_unknown_key_in_an_event_is_a_bad_payload() -> None:
    event = {**example_json(EXAMPLE)[0], "colour": "blue"}
    with pytest.raises(BadPayload) as refused:
        SOURCE.change_events(request("generic", as_body(event)))
    assert refused.value.field == "colour"


def test_an_event_id_given_twice_in_one_delivery_is_a_bad_payload() -> None:
    first = example_json(EXAMPLE)[0]
    with pytest.raises(BadPayload) as refused:
        SOURCE.change_events(request("generic", as_body([first, first])))
    assert refused.value.field == "[1].event_id"


@pytest.mark.parametrize(
    "contact", [{}, {"mail": None}, {"id": None, "mail": " "}, "absent"], ids=str
)
def test_an_event_without_id_or_mail_names_no_contact(contact: object) -> None:
    events = example_json(EXAMPLE)
    if contact == "absent":
        del events[1]["contact"]
    else:
        events[1]["contact"] = contact
    with pytest.raises(NoContact) as refused:
        SOURCE.change_events(request("generic", as_body(events)))
    assert refused.value.field == "[1].contact"
    assert refused.value.status == 422


def test_a_malformed_event_outweighs_one_that_names_no_contact() -> None:
    events = example_json(EXAMPLE)
    events[0]["contact"] = {}
    events[1]["occurred_at"] = "yesterday"
    with pytest.raises(BadPayload) as refused:
        SOURCE.change_events(request("generic", as_body(events)))
    assert refused.value.field == "[1].occurred_at"


def test_no_contact_and_a_bad_field_in_one_event_is_a_bad_payload() -> None:
    event = {**example_json(EXAMPLE)[0], "contact": {}, "if_missing": "ignore"}
    with pytest.raises(BadPayload):
        SOURCE.change_events(request("generic", json.dumps(event).encode()))
