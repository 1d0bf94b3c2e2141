"""The `json` preset: a source written in YAML only (a made-up service, Acme, signing its
body with a hex HMAC-SHA256 in a header), received end to end by the ingest handler, and
the selectors, form bodies and auth rows it is made of."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import pytest

from qomon_sync.handlers.ingest import handle
from qomon_sync.sources.base import BadPayload, NoContact, Unauthenticated
from qomon_sync.sources.config import MappingConfigError
from qomon_sync.sources.json_source import JsonSource, JsonSourceConfig
from qomon_sync.sources.registry import build_sources, parse_mapping
from tests.unit.ingest_harness import api_event, local_ingest, queued
from tests.unit.webhooks import NOW, dumped, example, request

SECRET = "acme-signing-7f3a"
ACME_YAML = """
acme:
  preset: json
  auth: {scheme: hmac-sha256, header: X-Acme-Signature, encoding: hex, prefix: "sha256="}
  event_type: type
  event_id: id
  occurred_at: created_at
  contact: {mail: member.email}
  events:
    member.signed_up:
      set: {firstname: member.first_name, surname: member.last_name}
      fields:
        - {answer: member.job, field: Profession}
        - answer: member.interests
          field: Quels sujets vous intéressent ?
          op: add
          values: {transport: transport, health: health}
      tags: {add: [acme]}
      notes: ["Acme : {answer.comment}"]
      if_missing: create
"""


def acme_config(yaml_text: str = ACME_YAML) -> JsonSourceConfig:
    from qomon_sync.sources.config import read_yaml

    config = parse_mapping({"sources": read_yaml(yaml_text, "test")}).sources["acme"]
    assert isinstance(config, JsonSourceConfig)
    return config


def acme_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Acme-Signature": f"sha256={digest}"}


EXPECTED = {
    "event_id": "acme-evt_01HZX4K9V2",
    "source": "acme",
    "occurred_at": "2026-11-20T17:45:03Z",
    "contact": {"mail": "lea.brunet@example.org"},
    "set": {"firstname": "Léa", "surname": "Brunet"},
    "tags": {"add": ["acme"]},
    "fields": [
        {"field": "Profession", "op": "set", "value": "Infirmière"},
        {"field": "Quels sujets vous intéressent ?", "op": "add", "value": "transport"},
        {"field": "Quels sujets vous intéressent ?", "op": "add", "value": "health"},
    ],
    "notes": [
        {"data": "Acme : Disponible le samedi matin.", "pinned": False, "only_super_admin": False}
    ],
    "if_missing": "create",
}


def test_a_source_written_only_in_yaml_is_received_end_to_end_by_the_ingest() -> None:
    body = example("acme/signup.json")
    with local_ingest() as ingest:
        sources = build_sources(parse_mapping({"sources": {"acme": acme_config().model_dump()}}))
        acme = replace(
            ingest, sources=sources, secret=lambda source: SECRET if source == "acme" else None
        )
        headers = {"content-type": "application/json", **acme_headers(body)}
        answer = handle(api_event("acme", "POST", headers, body.decode()), acme)
        assert answer["statusCode"] == 202, answer["body"]
        assert json.loads(answer["body"]) == {"accepted": 1, "event_ids": ["acme-evt_01HZX4K9V2"]}
        [message] = queued(acme)
    assert message["body"] == EXPECTED

    forged = handle(api_event("acme", "POST", acme_headers(body, "guess"), body.decode()), acme)
    assert forged["statusCode"] == 401
    assert json.loads(forged["body"])["errors"][0]["location"] == "X-Acme-Signature"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing header X-Acme-Signature"),
        ({"X-Acme-Signature": "md5=abc"}, "malformed header X-Acme-Signature"),
        ({"X-Acme-Signature": "sha256=" + "z" * 64}, "malformed header X-Acme-Signature"),
        ({"X-Acme-Signature": "sha256=" + "0" * 64}, "wrong signature in X-Acme-Signature"),
    ],
)
def test_a_missing_malformed_or_wrong_hmac_never_passes(
    headers: dict[str, str], detail: str
) -> None:
    source = JsonSource("acme", acme_config())
    with pytest.raises(Unauthenticated) as refused:
        source.authenticate(request("acme", example("acme/signup.json"), headers), SECRET)
    assert refused.value.detail.startswith(detail)
    assert SECRET not in refused.value.detail


def test_an_event_type_no_rule_maps_is_acknowledged_and_changes_nothing() -> None:
    source = JsonSource("acme", acme_config())
    body = json.dumps({**json.loads(example("acme/signup.json")), "type": "member.opened"})
    assert source.change_events(request("acme", body.encode())) == []


def test_a_rule_may_ignore_events_that_name_no_one_instead_of_refusing_them() -> None:
    config = acme_config(ACME_YAML.replace("if_missing: create", "without_contact: ignore"))
    payload = json.loads(example("acme/signup.json"))
    del payload["member"]["email"]
    body = json.dumps(payload).encode()
    assert JsonSource("acme", config).change_events(request("acme", body)) == []
    with pytest.raises(NoContact):
        JsonSource("acme", acme_config()).change_events(request("acme", body))


def test_several_events_per_delivery_are_selected_by_each_and_deduplicated() -> None:
    config = acme_config(
        ACME_YAML.replace("  event_type: type", "  each: events\n  event_type: type")
    )
    item = json.loads(example("acme/signup.json"))
    other = {
        **item,
        "id": "evt_2",
        "member": {**item["member"], "email": "hugo.lefort@example.org"},
    }
    body = json.dumps({"events": [item, other, item]}).encode()
    events = dumped(JsonSource("acme", config).change_events(request("acme", body)))
    assert [(e["event_id"], e["contact"]["mail"]) for e in events] == [
        ("acme-evt_01HZX4K9V2", "lea.brunet@example.org"),
        ("acme-evt_2", "hugo.lefort@example.org"),
    ]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"member": {"email": {"a": 1}}}, "body (member.email)"),
        ({"member": {"email": "a@example.org", "job": "a\u0000b"}}, "body (member.job)"),
        ({"id": {"no": 1}}, "body"),
        ({"created_at": "hier"}, "body (occurred_at)"),
    ],
)
def test_a_value_the_selectors_cannot_use_names_where_it_is_and_never_what(
    change: dict[str, Any], path: str
) -> None:
    payload = {**json.loads(example("acme/signup.json")), **change}
    body = json.dumps(payload).encode()
    with pytest.raises(BadPayload) as refused:
        JsonSource("acme", acme_config()).change_events(request("acme", body))
    assert refused.value.field == path
    assert "a@example.org" not in refused.value.detail


def test_a_selector_that_does_not_compile_is_named_by_its_path_in_the_file() -> None:
    with pytest.raises(MappingConfigError) as refused:
        acme_config(ACME_YAML.replace("event_id: id", 'event_id: "id["'))
    [problem] = refused.value.problems
    assert problem.startswith("sources.acme.event_id: `id[` is not a JMESPath expression")
    broken = ACME_YAML.replace("firstname: member.first_name", 'firstname: "member[first_name"')
    with pytest.raises(MappingConfigError) as refused:
        acme_config(broken.replace("{answer.comment}", "{answer.comment[}"))
    assert [problem.split(" is not")[0] for problem in refused.value.problems] == [
        "sources.acme.events.member.signed_up.set.firstname.answer: `member[first_name`",
        "sources.acme.events.member.signed_up.notes[0].template: `comment[`",
    ]


def test_a_rule_without_any_contact_is_refused_at_load() -> None:
    with pytest.raises(MappingConfigError) as refused:
        acme_config(ACME_YAML.replace("  contact: {mail: member.email}\n", ""))
    assert refused.value.problems == [
        "sources.acme.events.member.signed_up: needs a `contact` (here or for the whole source)"
    ]


def test_a_form_encoded_body_is_selected_like_json() -> None:
    config = acme_config(
        ACME_YAML.replace("preset: json", "preset: json\n  body: form").replace(
            "contact: {mail: member.email}", "contact: {mail: 'data.merges.EMAIL'}"
        )
    )
    body = (
        b"type=member.signed_up&id=f1&created_at=2026-11-20T17%3A45%3A03Z"
        b"&data%5Bmerges%5D%5BEMAIL%5D=lea.brunet%40example.org&member[first_name]=L%C3%A9a"
    )
    [event] = dumped(JsonSource("acme", config).change_events(request("acme", body)))
    assert event["contact"] == {"mail": "lea.brunet@example.org"}
    assert event["set"] == {"firstname": "Léa"}


@pytest.mark.parametrize(
    ("auth", "headers", "query", "passes"),
    [
        ({"scheme": "bearer"}, {"Authorization": f"Bearer {SECRET}"}, {}, True),
        ({"scheme": "bearer"}, {"Authorization": "Bearer nope"}, {}, False),
        ({"scheme": "basic"}, {"Authorization": "Basic dTpwdw=="}, {}, False),
        ({"scheme": "token", "header": "X-Token"}, {"X-Token": SECRET}, {}, True),
        ({"scheme": "query", "param": "key"}, {}, {"key": SECRET}, True),
        ({"scheme": "query", "param": "key"}, {}, {"key": SECRET + "x"}, False),
        ({"scheme": "query"}, {}, {}, False),
    ],
)
def test_each_auth_row_compares_the_secret_and_nothing_else(
    auth: dict[str, Any], headers: dict[str, str], query: dict[str, str], passes: bool
) -> None:
    config = acme_config().model_copy(update={"auth": parse_auth(auth)})
    source = JsonSource("acme", config)
    delivery = request("acme", example("acme/signup.json"), headers)
    delivery = type(delivery)(**{**delivery.__dict__, "query": query})
    if passes:
        source.authenticate(delivery, SECRET)
    else:
        with pytest.raises(Unauthenticated):
            source.authenticate(delivery, SECRET)


def parse_auth(auth: dict[str, Any]) -> Any:
    return acme_config().model_validate({**acme_config().model_dump(), "auth": auth}).auth


def test_a_timestamped_hmac_over_a_canonical_string_refuses_a_stale_delivery() -> None:
    auth = parse_auth(
        {
            "scheme": "hmac-sha256",
            "header": "X-Sig",
            "encoding": "base64",
            "signed": "{method}{uri}{body}{timestamp}",
            "timestamp_header": "X-Stamp",
            "timestamp_unit": "ms",
        }
    )
    delivery = request("acme", b"{}")
    delivery = type(delivery)(**{**delivery.__dict__, "uri": "https://h.example.org/webhooks/acme"})
    signed = auth.sign(SECRET, delivery)
    auth.check(signed, SECRET, lambda: None)
    late = type(signed)(**{**signed.__dict__, "received_at": NOW.replace(minute=NOW.minute + 6)})
    with pytest.raises(Unauthenticated, match="stale timestamp in X-Stamp"):
        auth.check(late, SECRET, lambda: None)
