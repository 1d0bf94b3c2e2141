"""The brevo source: bearer token, and Brevo's documented marketing events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from qomon_sync.sources.base import BadPayload, NoContact, Unauthenticated
from qomon_sync.sources.brevo import BrevoSource, BrevoSourceConfig, paris_to_utc
from qomon_sync.sources.registry import parse_mapping
from tests.unit.webhooks import as_body, deployment_config, dumped, example, example_json, request

TOKEN = "brv-3c1e0f0a9d5b4c2e"


@pytest.fixture(scope="module")
def source() -> BrevoSource:
    config = deployment_config().sources["brevo"]
    assert isinstance(config, BrevoSourceConfig)
    return BrevoSource("brevo", config)


def events_of(source: BrevoSource, payload: Any) -> list[dict[str, Any]]:
    return dumped(source.change_events(request("brevo", as_body(payload))))


def only_event_id(events: list[dict[str, Any]]) -> str:
    (event,) = events
    return str(event.pop("event_id"))


def test_an_unsubscribe_removes_the_email_consent_and_tags(source: BrevoSource) -> None:
    events = dumped(source.change_events(request("brevo", example("brevo/unsubscribed.json"))))
    assert only_event_id(events).startswith("brevo-")
    assert events == [
        {
            "source": "brevo",
            "occurred_at": "2020-11-09T14:55:37Z",
            "contact": {"mail": "ana.martin@example.org"},
            "tags": {"add": ["brevo-desinscrit"]},
            "fields": [{"field": "Consentements", "op": "remove", "value": "consent_email"}],
            "if_missing": "skip",
        }
    ]


def test_a_spam_complaint_blacklists(source: BrevoSource) -> None:
    events = dumped(source.change_events(request("brevo", example("brevo/spam.json"))))
    only_event_id(events)
    assert events == [
        {
            "source": "brevo",
            "occurred_at": "2020-11-09T14:55:37Z",
            "contact": {"mail": "hugo.lefort@example.org"},
            "set": {"black_list": True},
            "if_missing": "skip",
        }
    ]


def test_a_hard_bounce_tags_the_address_invalid(source: BrevoSource) -> None:
    events = dumped(source.change_events(request("brevo", example("brevo/hard-bounce.json"))))
    only_event_id(events)
    assert events == [
        {
            "source": "brevo",
            "occurred_at": "2020-11-09T14:55:37Z",
            "contact": {"mail": "ines.giraud@example.org"},
            "tags": {"add": ["mail-invalide"]},
            "if_missing": "skip",
        }
    ]


def test_a_list_addition_tags_each_list_dated_in_paris_time(source: BrevoSource) -> None:
    events = dumped(source.change_events(request("brevo", example("brevo/list-addition.json"))))
    only_event_id(events)
    assert events == [
        {
            "source": "brevo",
            "occurred_at": "2020-10-08T22:00:00Z",  # "2020-10-09 00:00:00", CEST
            "contact": {"mail": "lea.brunet@example.org"},
            "tags": {"add": ["brevo-liste-34", "brevo-liste-12"]},
            "if_missing": "skip",
        }
    ]


def test_the_older_spelling_of_the_hard_bounce_is_understood(source: BrevoSource) -> None:
    payload = {**example_json("brevo/hard-bounce.json"), "event": "hard_bounced"}
    (event,) = events_of(source, payload)
    assert event["tags"] == {"add": ["mail-invalide"]}


@pytest.mark.parametrize(
    "event", ["opened", "click", "delivered", "soft_bounce", "contact_updated"]
)
def test_other_events_are_acknowledged_and_change_nothing(source: BrevoSource, event: str) -> None:
    payload = {**example_json("brevo/opened.json"), "event": event}
    assert source.change_events(request("brevo", as_body(payload))) == []


def test_a_batch_gives_one_change_event_per_event_that_changes_something(
    source: BrevoSource,
) -> None:
    batch = [example_json(f"brevo/{name}.json") for name in ("opened", "unsubscribed", "spam")]
    events = events_of(source, batch)
    assert [(e["contact"]["mail"], "set" in e) for e in events] == [
        ("ana.martin@example.org", False),
        ("hugo.lefort@example.org", True),
    ]


def test_event_ids_are_stable_across_retries_and_distinct_between_events(
    source: BrevoSource,
) -> None:
    payload = example_json("brevo/unsubscribed.json")
    first = only_event_id(events_of(source, payload))
    assert only_event_id(events_of(source, dict(reversed(payload.items())))) == first
    others = [
        {**payload, "email": "hugo.lefort@example.org"},
        {**payload, "ts_event": payload["ts_event"] + 1},
        {**payload, "camp_id": 13},
        {**payload, "event": "hard_bounce"},
    ]
    ids = {only_event_id(events_of(source, other)) for other in others}
    assert first not in ids
    assert len(ids) == len(others)
    assert "ana.martin" not in first


def test_the_actions_come_from_the_mapping_file() -> None:
    config = parse_mapping(
        {
            "sources": {
                "brevo-newsletter": {
                    "preset": "brevo",
                    "events": {
                        "unsubscribed": {
                            "fields": [{"field": 3101, "op": "add", "value": "refuse_all"}],
                            "tags": {"add": ["désinscrit-{list_id}"], "remove": ["abonné"]},
                        }
                    },
                    "if_missing": "create",
                }
            }
        }
    ).sources["brevo-newsletter"]
    assert isinstance(config, BrevoSourceConfig)
    custom = BrevoSource("brevo-newsletter", config)
    (event,) = events_of(custom, example_json("brevo/unsubscribed.json"))
    assert event["source"] == "brevo-newsletter"
    assert event["fields"] == [{"field": 3101, "op": "add", "value": "refuse_all"}]
    assert event["tags"] == {"add": ["désinscrit-3", "désinscrit-42"], "remove": ["abonné"]}
    assert event["if_missing"] == "create"
    (spam,) = events_of(custom, example_json("brevo/spam.json"))
    assert spam["set"] == {"black_list": True}  # events not given keep their defaults


def test_a_bearer_token_is_accepted(source: BrevoSource) -> None:
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {TOKEN}"}
        source.authenticate(request("brevo", example("brevo/spam.json"), headers), TOKEN)


def test_a_missing_token_is_refused(source: BrevoSource) -> None:
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("brevo", example("brevo/spam.json")), TOKEN)
    assert refused.value.detail == "missing header Authorization"


@pytest.mark.parametrize(
    "value", [TOKEN, "Bearer", "Basic dXNlcjpwYXNz", f"Bearer {TOKEN} extra", f"Token {TOKEN}"]
)
def test_a_malformed_authorization_is_refused(source: BrevoSource, value: str) -> None:
    headers = {"Authorization": value}
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("brevo", example("brevo/spam.json"), headers), TOKEN)
    assert refused.value.detail.startswith("malformed header Authorization")


@pytest.mark.parametrize("token", ["brv-wrong", TOKEN.upper(), TOKEN[:-1], TOKEN + "0"])
def test_a_wrong_token_is_refused(source: BrevoSource, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("brevo", example("brevo/spam.json"), headers), TOKEN)
    assert refused.value.detail == "wrong token in Authorization"


def test_brevo_sends_no_delivery_id(source: BrevoSource) -> None:
    assert source.delivery_id(request("brevo", example("brevo/spam.json"))) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"event=spam", "body"),
        (b'"spam"', "body"),
        (as_body([example_json("brevo/spam.json"), "spam"]), "[1]"),
        (as_body({"email": "ana.martin@example.org"}), "event"),
        (as_body({**example_json("brevo/spam.json"), "email": "ana.martin"}), "email"),
        (as_body({**example_json("brevo/spam.json"), "ts_event": "hier"}), "ts_event"),
        (as_body({**example_json("brevo/list-addition.json"), "date": "09/10/2020"}), "date"),
        (as_body({**example_json("brevo/list-addition.json"), "list_id": ["x"]}), "list_id"),
        (as_body({**example_json("brevo/list-addition.json"), "list_id": []}), "list_id"),
        # Numbers that cannot be what they stand for: never an OverflowError turned 503.
        (as_body({**example_json("brevo/spam.json"), "ts_event": 999999999999}), "ts_event"),
        (as_body({**example_json("brevo/spam.json"), "ts_event": 1e300}), "ts_event"),
        (as_body({**example_json("brevo/spam.json"), "ts_event": "999999999999"}), "ts_event"),
        (as_body({**example_json("brevo/spam.json"), "ts_event": -1}), "ts_event"),
        (as_body({**example_json("brevo/spam.json"), "ts_event": "\u00b2"}), "ts_event"),
        (as_body({**example_json("brevo/list-addition.json"), "list_id": ["\u00b2"]}), "list_id"),
        (as_body({**example_json("brevo/list-addition.json"), "list_id": ["9" * 50]}), "list_id"),
        (
            as_body(
                {k: v for k, v in example_json("brevo/list-addition.json").items() if k != "date"}
            ),
            "ts_event",
        ),
    ],
)
def test_a_malformed_body_is_a_bad_payload_naming_the_field(
    source: BrevoSource, body: bytes, field: str
) -> None:
    with pytest.raises(BadPayload) as refused:
        source.change_events(request("brevo", body))
    assert refused.value.field == field
    assert "ana.martin" not in refused.value.detail


@pytest.mark.parametrize("mail", [None, "", "  "])
def test_an_event_without_an_email_names_no_contact(source: BrevoSource, mail: str | None) -> None:
    payload = {**example_json("brevo/unsubscribed.json"), "email": mail}
    with pytest.raises(NoContact) as refused:
        events_of(source, [example_json("brevo/spam.json"), payload])
    assert refused.value.field == "[1].email"


def test_an_ignored_event_needs_no_email(source: BrevoSource) -> None:
    assert events_of(source, {"event": "opened", "ts_event": 1604933737}) == []


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        (datetime(2020, 10, 9, 0, 0), datetime(2020, 10, 8, 22, 0)),  # summer time
        (datetime(2020, 12, 9, 0, 0), datetime(2020, 12, 8, 23, 0)),  # winter time
        (datetime(2024, 3, 31, 1, 30), datetime(2024, 3, 31, 0, 30)),  # just before the change
        (datetime(2024, 3, 31, 3, 30), datetime(2024, 3, 31, 1, 30)),  # just after it
        (datetime(2024, 10, 27, 3, 30), datetime(2024, 10, 27, 2, 30)),  # back to winter
    ],
)
def test_brevo_dates_are_read_as_paris_time(local: datetime, utc: datetime) -> None:
    assert paris_to_utc(local) == utc.replace(tzinfo=UTC)
