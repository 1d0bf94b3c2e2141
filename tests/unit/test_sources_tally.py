"""The tally preset: `Tally-Signature`, and `FORM_RESPONSE` payloads through
functions/sources.yaml."""

from __future__ import annotations

from typing import Any

import pytest

from qomon_sync.sources.answers import FormSourceConfig
from qomon_sync.sources.base import BadPayload, NoContact, Unauthenticated
from qomon_sync.sources.tally import TallySource, flatten_form_response
from tests.unit.webhooks import (
    as_body,
    deployment_config,
    dumped,
    example,
    example_json,
    request,
    tally_headers,
)

SECRET = "tly-signing-5d0c2e9b7a41"
EXAMPLE = "tally/form-response.json"


@pytest.fixture(scope="module")
def source() -> TallySource:
    config = deployment_config().sources["tally"]
    assert isinstance(config, FormSourceConfig)
    return TallySource("tally", config)


def events_of(source: TallySource, payload: Any) -> list[dict[str, Any]]:
    return dumped(source.change_events(request("tally", as_body(payload))))


def field(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return next(f for f in payload["data"]["fields"] if f["key"] == key)


def test_the_documented_example_maps_to_exactly_one_change_event(source: TallySource) -> None:
    events = source.change_events(request("tally", example(EXAMPLE)))
    topics = "Quels sujets vous intéressent ?"
    assert dumped(events) == [
        {
            "event_id": "tally-a4cb511e-d513-4fa5-baee-b815d718dfd1",
            "source": "tally",
            "occurred_at": "2023-06-28T15:00:21.889000Z",
            "contact": {"mail": "hugo.lefort@example.org"},
            "set": {"mobile": "+32491223344"},
            "tags": {"add": ["bénévole", "source-newsletter"]},
            "fields": [
                {"field": "Profession", "op": "set", "value": "Infirmier"},
                {
                    "field": "Combien de personnes vivent dans votre foyer ?",
                    "op": "set",
                    "value": 10,
                },
                {"field": "Date de votre dernier vote", "op": "set", "value": "2023-06-28"},
                {"field": "Niveau de soutien", "op": "set", "value": "Favorable"},
                {"field": "Consentements", "op": "add", "value": "consent_sms"},
                {"field": "Consentements", "op": "add", "value": "consent_phone"},
                {"field": "Souhaitez-vous être recontacté·e ?", "op": "set", "value": "Non"},
                {"field": topics, "op": "add", "value": "Transports"},
                {"field": topics, "op": "add", "value": "Logement"},
                {"field": "De 0 à 10, votre intérêt pour la campagne", "op": "set", "value": 7},
            ],
            "notes": [
                {
                    "data": "Inscription Rejoindre l'équipe de campagne : Disponible le samedi "
                    "matin pour tracter au marché.",
                    "pinned": False,
                    "only_super_admin": False,
                }
            ],
            "if_missing": "create",
        }
    ]


def test_fields_are_flattened_by_key_and_label_with_option_texts() -> None:
    answers = flatten_form_response(example_json(EXAMPLE)).answers
    assert answers["question_3qL4Gm"] == "Favorable"  # one choice: its text
    assert answers["Niveau de soutien"] == "Favorable"  # the same field by its label
    assert answers["question_wQ1K7w"] == ["Par SMS", "Par téléphone"]
    assert answers["question_wQ1K7w_9bbb6bd7-1e3b-4e48-b4b9-a221d5aad87e"] is False
    assert answers["Me contacter (Par SMS)"] is True
    assert answers["question_n9BqQm"] == "Non"  # a dropdown
    assert answers["question_meMqem"] == ["Transports", "Logement"]
    assert answers["question_w7qRZm"] == ["Transports", "Logement", "Santé"]  # ranked
    assert answers["question_nr5yNw"] == 10
    assert answers["utm_campaign"] == answers["hidden.utm_campaign"] == "newsletter"
    assert answers["question_nPpjVn_84b69d73-0a85-4577-89f4-8632632cc222"] == 20
    assert answers["question_nW2ONw"] == [
        "https://storage.googleapis.com/tally-response-assets-dev/vBXMXN/"
        "34fd1ee5-4ead-4929-9a4a-918ac9f0b416/Tally_Icon.png"
    ]
    assert answers["question_wa9QBw_price"] == 9
    assert answers["question_mBazQn"] is None  # a matrix: nothing a Qomon field takes
    assert answers["form_id"] == "VwbNEw"
    assert answers["form_title"] == "Rejoindre l'équipe de campagne"


def test_a_label_two_fields_share_names_neither_and_unknown_option_ids_stay() -> None:
    payload = example_json(EXAMPLE)
    field(payload, "question_3EKz4n")["label"] = "Téléphone portable"
    field(payload, "question_3qL4Gm")["value"] = [
        "deleted-option",
        "ec321dc4-b50d-4270-8df0-0e38c898762a",
    ]
    answers = flatten_form_response(payload).answers
    assert "Téléphone portable" not in answers
    assert answers["question_3jZaa3"] == "+32491223344"
    assert answers["question_3qL4Gm"] == ["deleted-option", "Très favorable"]


def test_blank_answers_change_nothing(source: TallySource) -> None:
    payload = example_json(EXAMPLE)
    for key in ("question_3EKz4n", "question_3jZaa3", "question_3Nrpl3", "question_3qL4Gm"):
        field(payload, key)["value"] = None
    field(payload, "question_meMqem")["value"] = []
    field(payload, "question_wQ1K7w")["value"] = []
    field(payload, "question_mVGEg3_8b5711e3-f6a2-4e25-9e68-5d730598c681")["value"] = "  "
    (event,) = events_of(source, payload)
    assert "set" not in event
    assert "notes" not in event
    assert event["tags"] == {"add": ["bénévole"]}
    assert {f["field"] for f in event["fields"]} == {
        "Combien de personnes vivent dans votre foyer ?",
        "Date de votre dernier vote",
        "Souhaitez-vous être recontacté·e ?",
        "De 0 à 10, votre intérêt pour la campagne",
    }


def test_the_delivery_id_is_the_event_id(source: TallySource) -> None:
    delivery = source.delivery_id(request("tally", example(EXAMPLE)))
    assert delivery == "a4cb511e-d513-4fa5-baee-b815d718dfd1"
    assert source.delivery_id(request("tally", b"[]")) is None


def test_a_correctly_signed_delivery_is_accepted(source: TallySource) -> None:
    body = example(EXAMPLE)
    source.authenticate(request("tally", body, tally_headers(SECRET, body)), SECRET)


def test_a_missing_signature_is_refused(source: TallySource) -> None:
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("tally", example(EXAMPLE)), SECRET)
    assert refused.value.detail == "missing header Tally-Signature"


@pytest.mark.parametrize(
    "signature", ["sha256=" + "A" * 43 + "=", "not base64!", "c2hvcnQ=", "A" * 43]
)
def test_a_malformed_signature_is_refused(source: TallySource, signature: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(
            request("tally", example(EXAMPLE), {"Tally-Signature": signature}), SECRET
        )
    assert refused.value.detail.startswith("malformed header Tally-Signature")


def test_a_wrong_signature_is_refused(source: TallySource) -> None:
    body = example(EXAMPLE)
    tampered = body.replace(b"hugo.lefort@example.org", b"hugo.lefort@example.net")
    attempts = (
        (tally_headers("another-secret", body), body),
        (tally_headers(SECRET, body), tampered),
    )
    for headers, sent in attempts:
        with pytest.raises(Unauthenticated) as refused:
            source.authenticate(request("tally", sent, headers), SECRET)
        assert refused.value.detail.startswith("wrong signature in Tally-Signature")


@pytest.mark.parametrize(
    ("change", "field_path"),
    [
        (lambda p: p.update(eventType="FORM_UPDATED"), "eventType"),
        (lambda p: p.pop("eventId"), "eventId"),
        (lambda p: p.pop("data"), "data"),
        (lambda p: p.update(createdAt="28/06/2023"), "createdAt"),
        (lambda p: p["data"].pop("fields"), "data.fields"),
        (lambda p: p["data"]["fields"][2].pop("key"), "data.fields[2].key"),
        (lambda p: p["data"]["fields"][4].update(value="dix"), "data.fields[4].value"),
        (lambda p: p["data"]["fields"][5].update(value=["a@b.c"]), "data.fields[5].value"),
        (
            lambda p: p["data"]["fields"][11].update(options=[{"id": 1}]),
            "data.fields[11].options[0].id",
        ),
        (lambda p: p["data"].update(formId="abc123"), "form_id"),
    ],
)
def test_a_malformed_body_is_a_bad_payload_naming_the_field(
    source: TallySource, change: Any, field_path: str
) -> None:
    payload = example_json(EXAMPLE)
    change(payload)
    with pytest.raises(BadPayload) as refused:
        events_of(source, payload)
    assert refused.value.field == field_path


def test_a_body_that_is_not_json_is_a_bad_payload(source: TallySource) -> None:
    with pytest.raises(BadPayload) as refused:
        source.change_events(request("tally", b"eventId=1"))
    assert refused.value.field == "body"


def test_a_response_without_an_email_names_no_contact(source: TallySource) -> None:
    payload = example_json(EXAMPLE)
    field(payload, "question_w4Q4Xn")["value"] = ""
    with pytest.raises(NoContact) as refused:
        events_of(source, payload)
    assert refused.value.field == "question_w4Q4Xn"
