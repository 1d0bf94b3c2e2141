"""The typeform preset: `Typeform-Signature`, and `form_response` payloads through
functions/sources.yaml."""

from __future__ import annotations

from typing import Any

import pytest

from qomon_sync.sources.answers import FormSourceConfig
from qomon_sync.sources.base import BadPayload, NoContact, Unauthenticated
from qomon_sync.sources.typeform import TypeformSource, flatten_form_response
from tests.unit.webhooks import (
    as_body,
    deployment_config,
    dumped,
    example,
    example_json,
    request,
    typeform_headers,
)

SECRET = "a4f1c0b6e5d84e1f9a3b2c7d6e5f4a3b2c1d0e9f"
EXAMPLE = "typeform/form-response.json"


@pytest.fixture(scope="module")
def source() -> TypeformSource:
    config = deployment_config().sources["typeform"]
    assert isinstance(config, FormSourceConfig)
    return TypeformSource("typeform", config)


def events_of(source: TypeformSource, payload: Any) -> list[dict[str, Any]]:
    return dumped(source.change_events(request("typeform", as_body(payload))))


def test_the_documented_example_maps_to_exactly_one_change_event(source: TypeformSource) -> None:
    events = source.change_events(request("typeform", example(EXAMPLE)))
    assert dumped(events) == [
        {
            "event_id": "typeform-a3a12ec67a1365927098a606107fac15",
            "source": "typeform",
            "occurred_at": "2018-01-18T18:17:02Z",
            "contact": {"mail": "ana.martin@example.org"},
            "set": {"firstname": "Ana", "surname": "Martin"},
            "tags": {"add": ["petition-pistes-cyclables"]},
            "fields": [
                {"field": "Consentements", "op": "add", "value": "consent_email"},
                {"field": "Niveau de soutien", "op": "set", "value": "very_favorable"},
                {"field": "Quels sujets vous intéressent ?", "op": "add", "value": "Logement"},
                {"field": "Quels sujets vous intéressent ?", "op": "add", "value": "Transports"},
                {
                    "field": "Combien de personnes vivent dans votre foyer ?",
                    "op": "set",
                    "value": 5,
                },
                {"field": "Date de votre dernier vote", "op": "set", "value": "2005-10-15"},
                {"field": "Souhaitez-vous être recontacté·e ?", "op": "set", "value": "no"},
                {"field": "De 0 à 10, votre intérêt pour la campagne", "op": "set", "value": 2},
            ],
            "notes": [
                {
                    "data": "Formulaire Des pistes cyclables sur les quais : Les quais sont "
                    "dangereux à vélo le soir : il faut une piste séparée.",
                    "pinned": False,
                    "only_super_admin": False,
                }
            ],
            "if_missing": "create",
        }
    ]


def test_the_payload_is_flattened_by_ref_with_typed_values() -> None:
    payload = example_json(EXAMPLE)
    answers = payload["form_response"]["answers"]
    del answers[0]["field"]["ref"]  # no ref: the question's id is the key
    answers[7]["choice"] = {"other": "Ça dépend du tracé"}
    answers[4]["choices"]["other"] = "Sécurité"
    submission = flatten_form_response(payload)
    assert submission.event_id == "typeform-a3a12ec67a1365927098a606107fac15"
    assert submission.form_id == "lT4Z3j"
    assert dict(submission.answers) == {
        "DlXFaesGBpoF": "Les quais sont dangereux à vélo le soir : il faut une piste séparée.",
        "email": "ana.martin@example.org",
        "nom_complet": "Ana Martin",
        "date_dernier_vote": "2005-10-15",
        "sujets": ["Logement", "Transports", "Sécurité"],
        "taille_foyer": 5,
        "consentement_email": True,
        "soutien": "Ça dépend du tracé",
        "recontact": False,
        "interet_campagne": 2,
        "note_reunion": 3,
        "heures_benevolat": 4,
        "rendez_vous": "https://calendly.com/scheduled_events/EVENT_TYPE/invitees/INVITEE",
        "hidden.user_id": "abc123456",
        "variables.score": 4,
        "variables.name": "typeform",
        "calculated.score": 9,
        "form_id": "lT4Z3j",
        "form_title": "Des pistes cyclables sur les quais",
    }


def test_blank_and_missing_answers_change_nothing(source: TypeformSource) -> None:
    payload = example_json(EXAMPLE)
    answers = payload["form_response"]["answers"]
    answers[0]["text"] = "   "  # commentaire: blank
    answers[2]["text"] = ""  # nom_complet: blank
    answers[4]["choices"]["labels"] = []  # sujets: nothing ticked
    del answers[5:]  # the rest were skipped by the form's logic
    (event,) = events_of(source, payload)
    assert "set" not in event
    assert "notes" not in event
    assert event["fields"] == [
        {"field": "Date de votre dernier vote", "op": "set", "value": "2005-10-15"}
    ]


def test_the_delivery_id_is_the_response_token(source: TypeformSource) -> None:
    body = example(EXAMPLE)
    assert source.delivery_id(request("typeform", body)) == "a3a12ec67a1365927098a606107fac15"
    assert source.delivery_id(request("typeform", b"not json")) is None


def test_a_correctly_signed_delivery_is_accepted(source: TypeformSource) -> None:
    body = example(EXAMPLE)
    source.authenticate(request("typeform", body, typeform_headers(SECRET, body)), SECRET)


def test_a_missing_signature_is_refused(source: TypeformSource) -> None:
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("typeform", example(EXAMPLE)), SECRET)
    assert refused.value.detail == "missing header Typeform-Signature"


@pytest.mark.parametrize(
    "signature",
    [
        "9d2f...",  # no scheme
        "sha1=2jmj7l5rSw0yVb/vlWAYkK/YBwk=",  # another algorithm
        "sha256=",
        "sha256=not-base64!",
        "sha256=c2hvcnQ=",  # base64, but not a SHA-256
    ],
)
def test_a_malformed_signature_is_refused(source: TypeformSource, signature: str) -> None:
    body = example(EXAMPLE)
    headers = {"Typeform-Signature": signature}
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("typeform", body, headers), SECRET)
    assert refused.value.detail.startswith("malformed header Typeform-Signature")


def test_a_wrong_signature_is_refused(source: TypeformSource) -> None:
    body = example(EXAMPLE)
    signed_by_another = typeform_headers("another-secret", body)
    tampered = body.replace(b"ana.martin@example.org", b"eve.martin@example.org")
    for headers, sent in ((signed_by_another, body), (typeform_headers(SECRET, body), tampered)):
        with pytest.raises(Unauthenticated) as refused:
            source.authenticate(request("typeform", sent, headers), SECRET)
        assert refused.value.detail.startswith("wrong signature in Typeform-Signature")


def test_no_secret_lets_nothing_pass(source: TypeformSource) -> None:
    body = example(EXAMPLE)
    with pytest.raises(Unauthenticated):
        source.authenticate(request("typeform", body, typeform_headers("", body)), "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(event_type="form_submitted"), "event_type"),
        (lambda p: p.pop("event_type"), "event_type"),
        (lambda p: p.pop("form_response"), "form_response"),
        (lambda p: p.update(form_response=[]), "form_response"),
        (lambda p: p["form_response"].pop("token"), "form_response.token"),
        (lambda p: p["form_response"].update(token="a b"), "form_response.token"),
        (lambda p: p["form_response"].update(submitted_at="hier"), "form_response.submitted_at"),
        (lambda p: p["form_response"].update(answers={}), "form_response.answers"),
        (lambda p: p["form_response"]["answers"].append("x"), "form_response.answers[13]"),
        (
            lambda p: p["form_response"]["answers"][5].update(number="cinq"),
            "form_response.answers[5].number",
        ),
        (
            lambda p: p["form_response"]["answers"][1].update(field={"type": "email"}),
            "form_response.answers[1].field",
        ),
        (
            lambda p: p["form_response"]["answers"][4]["choices"].update(labels="Logement"),
            "form_response.answers[4].choices.labels",
        ),
        (lambda p: p["form_response"].update(hidden=["x"]), "form_response.hidden"),
        (lambda p: p["form_response"].update(form_id="xYz123"), "form_id"),
    ],
)
def test_a_malformed_body_is_a_bad_payload_naming_the_field(
    source: TypeformSource, change: Any, field: str
) -> None:
    payload = example_json(EXAMPLE)
    change(payload)
    with pytest.raises(BadPayload) as refused:
        events_of(source, payload)
    assert refused.value.field == field


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'{"n": NaN}'])
def test_a_body_that_is_not_a_json_object_is_a_bad_payload(
    source: TypeformSource, body: bytes
) -> None:
    with pytest.raises(BadPayload) as refused:
        source.change_events(request("typeform", body))
    assert refused.value.field == "body"


def test_a_response_without_an_email_names_no_contact(source: TypeformSource) -> None:
    payload = example_json(EXAMPLE)
    del payload["form_response"]["answers"][1]
    with pytest.raises(NoContact) as refused:
        events_of(source, payload)
    assert refused.value.field == "email"
