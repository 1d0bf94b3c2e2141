"""The presets built on the json preset (presets.yaml, and hubspot.py): each sender's
documented example, authenticated as it signs, mapped as functions/sources.yaml says."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from qomon_sync.handlers.ingest import handle
from qomon_sync.sources.base import Unauthenticated, WebhookRequest
from qomon_sync_dev.signing import deployment_sources, local_webhook_secrets, signed_request
from tests.conftest import ROOT
from tests.unit.ingest_harness import api_event, local_ingest, queued, signed_event
from tests.unit.webhooks import NOW, WEBHOOKS, dumped

SOURCES = deployment_sources()
SECRETS = local_webhook_secrets()
URL = "https://hooks.example.org/webhooks/{source}"


def delivery(name: str, fixture: str, **kwargs: Any) -> WebhookRequest:
    body = (WEBHOOKS / name / fixture).read_bytes()
    return signed_request(SOURCES[name], SECRETS[name], body, url=URL, at=NOW, **kwargs)


def mapped(name: str, fixture: str) -> list[dict[str, Any]]:
    request = delivery(name, fixture)
    SOURCES[name].authenticate(request, SECRETS[name])
    return dumped(SOURCES[name].change_events(request))


def test_a_helloasso_order_makes_the_payer_the_contact_with_a_tag_a_note_and_answers() -> None:
    [event] = mapped("helloasso", "order-donation.json")
    assert event["event_id"] == "helloasso-Order-20499-new"
    assert event["contact"] == {"mail": "hugo.lefort@example.org"}
    assert event["set"] == {
        "firstname": "Hugo",
        "surname": "Lefort",
        "birthdate": "1984-05-15T02:00:00+02:00",
        "address": {
            "street": "23 rue du maréchal",
            "postalcode": "75000",
            "city": "Paris",
            "country": "FRA",
        },
    }
    assert event["fields"] == [{"field": "Profession", "op": "set", "value": "Éducateur"}]
    assert event["tags"] == {"add": ["donateur-helloasso"]}
    assert event["notes"][0]["data"].startswith("HelloAsso Donation « 3 » : 20 € le 2024-06-07")
    assert event["if_missing"] == "create"


def test_a_helloasso_refund_is_noted_and_undoes_nothing() -> None:
    [event] = mapped("helloasso", "payment-refunded.json")
    assert set(event) == {"event_id", "source", "occurred_at", "contact", "notes", "if_missing"}
    assert event["notes"][0]["data"].startswith("HelloAsso : paiement Refunded (20 €")
    authorized = json.loads((WEBHOOKS / "helloasso" / "payment-refunded.json").read_text())
    authorized["data"]["state"] = "Authorized"
    body = json.dumps(authorized).encode()
    request = signed_request(SOURCES["helloasso"], SECRETS["helloasso"], body, url=URL, at=NOW)
    assert SOURCES["helloasso"].change_events(request) == []  # the order said it all


def test_helloasso_refuses_a_body_not_signed_with_the_signature_key() -> None:
    request = delivery("helloasso", "order-donation.json")
    with pytest.raises(Unauthenticated, match="wrong signature in x-ha-signature"):
        SOURCES["helloasso"].authenticate(request, "another-signature-key")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("1-subscribe.form", {"set": {"firstname": "Léa", "surname": "Brunet"}}),
        ("3-upemail.form", {"set": {"mail": "lea.brunet@example.com"}}),
        (
            "4-unsubscribe.form",
            {"fields": [{"field": "Consentements", "op": "remove", "value": "consent_email"}]},
        ),
        ("5-cleaned.form", {"tags": {"add": ["mail-invalide"]}}),
    ],
)
def test_mailchimp_form_encoded_events_map_as_documented(
    fixture: str, expected: dict[str, Any]
) -> None:
    [event] = mapped("mailchimp", fixture)
    assert event["contact"] == {"mail": "lea.brunet@example.org"}  # upemail: the old address
    assert {key: event[key] for key in expected} == expected


def test_mailchimp_answers_its_url_check_only_with_the_secret() -> None:
    with local_ingest() as ingest:
        checked = handle(signed_event("mailchimp", b"", method="GET"), ingest)
        stranger = handle(api_event("mailchimp", "GET", {}, None, query="secret=guess"), ingest)
        typeform = handle(api_event("typeform", "GET", {}, None), ingest)
        assert (checked["statusCode"], json.loads(checked["body"])) == (200, {"ok": True})
        assert stranger["statusCode"] == 401
        assert (typeform["statusCode"], typeform["headers"]["allow"]) == (405, "POST")
        assert queued(ingest) == []


def test_hubspot_events_find_their_contact_by_the_email_in_the_same_delivery() -> None:
    events = mapped("hubspot", "contact-events.json")
    # The fourth event's contact has no e-mail in the delivery: acknowledged, no change.
    # Ids are HubSpot's eventId and a digest of the event (test_sources_identity.py).
    assert [(e["event_id"][:19], e["contact"]["mail"]) for e in events] == [
        ("hubspot-3816279480-", "ines.giraud@example.org"),
        ("hubspot-3816279481-", "ines.giraud@example.org"),
        ("hubspot-3816279482-", "ines.giraud@example.org"),
    ]
    assert events[0]["tags"] == {"add": ["hubspot"]}
    assert events[2]["set"] == {"firstname": "Inès"}


def test_hubspot_v3_signs_method_uri_body_and_timestamp_and_goes_stale_after_5_minutes() -> None:
    source, secret = SOURCES["hubspot"], SECRETS["hubspot"]
    request = delivery("hubspot", "contact-events.json")
    source.authenticate(request, secret)
    for changed in (
        {"uri": URL.format(source="other")},
        {"method": "PUT"},
        {"received_at": NOW + timedelta(minutes=5, seconds=1)},
    ):
        with pytest.raises(Unauthenticated):
            source.authenticate(WebhookRequest(**{**request.__dict__, **changed}), secret)


def test_an_action_network_signature_gives_the_person_and_its_tags() -> None:
    [event] = mapped("actionnetwork", "signature.json")
    assert event["event_id"].startswith(
        "actionnetwork-action_network:d6bdf50e-c3a4-4981-a948-3d8c086066d7-"
    )
    assert event["contact"] == {"mail": "nour.chevalier@example.org"}
    assert event["tags"] == {"add": ["volontaire", "petition-velo"]}
    assert event["set"]["address"] == {"postalcode": "69003", "city": "Lyon"}


def test_action_network_is_refused_without_the_url_secret() -> None:
    request = delivery("actionnetwork", "signature.json")
    stripped = WebhookRequest(**{**request.__dict__, "query": {}})
    with pytest.raises(Unauthenticated, match="missing query parameter secret"):
        SOURCES["actionnetwork"].authenticate(stripped, SECRETS["actionnetwork"])


def test_a_nationbuilder_person_is_authenticated_by_the_token_in_its_body() -> None:
    [event] = mapped("nationbuilder", "person-changed.json")
    assert event["contact"] == {"mail": "chloe.garnier@example.org"}
    assert event["tags"] == {"add": ["bénévole", "nationbuilder"]}
    unsigned = (WEBHOOKS / "nationbuilder" / "person-changed.json").read_bytes()
    request = WebhookRequest(source="nationbuilder", body=unsigned, headers={}, received_at=NOW)
    with pytest.raises(Unauthenticated, match="missing token `token`"):
        SOURCES["nationbuilder"].authenticate(request, SECRETS["nationbuilder"])


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if n != "generic"))
def test_every_source_has_a_documented_fixture_that_the_ingest_accepts(name: str) -> None:
    fixtures = sorted(Path(WEBHOOKS / name).iterdir())
    assert fixtures, name
    with local_ingest() as ingest:
        answer = handle(signed_event(name, fixtures[0].read_bytes()), ingest)
    assert answer["statusCode"] == 202, answer["body"]


def test_every_preset_is_named_in_presets_and_one_needing_code_is_one_line_there() -> None:
    """One path: a preset's sender keys are presets.yaml's, all of which PRESETS takes in;
    a sender that needs code (HubSpot) adds its class on one line of PRESETS. Nothing
    is found by scanning the package."""
    from qomon_sync.sources import hubspot
    from qomon_sync.sources.json_source import JsonSource, JsonSourceConfig, preset_defaults
    from qomon_sync.sources.registry import PRESETS

    assert PRESETS["hubspot"].build is hubspot.HubSpotSource
    assert preset_defaults()["hubspot"]["auth"]["header"] == "X-HubSpot-Signature-v3"
    sources = ROOT / "functions" / "qomon_sync" / "sources"
    assert (sources / "registry.py").read_text().count('"hubspot"') == 1
    json_presets = {name for name, preset in PRESETS.items() if preset.config is JsonSourceConfig}
    assert json_presets == {"json", *preset_defaults()}
    for name in json_presets:
        build = PRESETS[name].build
        assert isinstance(build, type), name
        assert issubclass(build, JsonSource), name
    assert not any("pkgutil" in module.read_text() for module in sources.glob("*.py"))
