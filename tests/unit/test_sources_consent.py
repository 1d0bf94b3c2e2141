"""Who chose: a consent is withdrawn only by what the person did (an opt-out, a spam
report), never by what an administrator or the sender's list cleaning did. Mailchimp's
documented deliveries (events/webhooks/mailchimp/) through functions/sources.yaml."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from qomon_sync.handlers.ingest import handle
from qomon_sync_dev.signing import deployment_sources, local_webhook_secrets, signed_request
from tests.unit.ingest_harness import local_ingest, queued, signed_event
from tests.unit.webhooks import NOW, WEBHOOKS, dumped

SOURCES = deployment_sources()
SECRETS = local_webhook_secrets()
WITHDRAWN = [{"field": "Consentements", "op": "remove", "value": "consent_email"}]


def mailchimp(fixture: str) -> dict[str, Any]:
    body = (WEBHOOKS / "mailchimp" / fixture).read_bytes()
    source = SOURCES["mailchimp"]
    delivery = signed_request(source, SECRETS["mailchimp"], body, at=NOW)
    source.authenticate(delivery, SECRETS["mailchimp"])
    [event] = dumped(source.change_events(delivery))
    return event


def form(fixture: str) -> dict[str, str]:
    return dict(parse_qsl((WEBHOOKS / "mailchimp" / fixture).read_text()))


def test_an_administrator_deleting_a_mailchimp_member_is_noted_and_leaves_consent_alone() -> None:
    assert form("6-unsubscribe-delete.form")["data[action]"] == "delete"

    event = mailchimp("6-unsubscribe-delete.form")

    assert "fields" not in event  # no consent withdrawn
    assert event["contact"] == {"mail": "lea.brunet@example.org"}
    assert [note["data"] for note in event["notes"]] == [
        "Mailchimp : supprimé de l'audience a6b5da1054 par un administrateur"
        " (pas une désinscription)"
    ]
    assert event["if_missing"] == "skip"


def test_a_mailchimp_member_who_unsubscribes_still_withdraws_the_email_consent() -> None:
    assert form("4-unsubscribe.form")["data[action]"] == "unsub"
    event = mailchimp("4-unsubscribe.form")
    assert event["fields"] == WITHDRAWN
    assert "notes" not in event


@pytest.mark.parametrize(
    ("fixture", "reason", "expected"),
    [
        # Mailchimp cleaned a hard-bouncing address: a fact about the address, no choice.
        ("5-cleaned.form", "hard", {"tags": {"add": ["mail-invalide"]}}),
        # The member reported the mail as spam: the member's choice, not a dead address.
        ("7-cleaned-abuse.form", "abuse", {"fields": WITHDRAWN}),
    ],
)
def test_a_cleaned_mailchimp_address_withdraws_consent_only_when_the_member_complained(
    fixture: str, reason: str, expected: dict[str, Any]
) -> None:
    assert form(fixture)["data[reason]"] == reason
    event = mailchimp(fixture)
    changes = {key: event[key] for key in ("tags", "fields", "notes", "set") if key in event}
    assert changes == expected


@pytest.mark.parametrize("fixture", ["6-unsubscribe-delete.form", "7-cleaned-abuse.form"])
def test_the_ingest_queues_these_mailchimp_deliveries_with_202(fixture: str) -> None:
    body = (WEBHOOKS / "mailchimp" / fixture).read_bytes()
    with local_ingest() as ingest:
        answer = handle(signed_event("mailchimp", body), ingest)
        [message] = queued(ingest)
    assert answer["statusCode"] == 202, answer["body"]
    assert json.loads(answer["body"])["event_ids"] == [message["body"]["event_id"]]
    expected = mailchimp(fixture)
    assert {k: message["body"].get(k) for k in ("fields", "notes", "tags")} == {
        k: expected.get(k) for k in ("fields", "notes", "tags")
    }
