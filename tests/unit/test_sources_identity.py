"""Each source's identity rule: an event's id names one change (two changes, two ids) and
stays the same when the sender retries the delivery (the ledger applies an id once), and a
documented delivery without the sender's id is accepted under a derived one, never a 400.
The deliveries are the senders' documented examples (events/webhooks/)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from qomon_sync.handlers.ingest import handle
from qomon_sync.sources.base import BadPayload
from qomon_sync.sources.json_source import JsonSource
from qomon_sync_dev.signing import deployment_sources, local_webhook_secrets, signed_request
from tests.unit.ingest_harness import local_ingest, queued, signed_event
from tests.unit.test_sources_json import ACME_YAML, acme_config
from tests.unit.webhooks import NOW, WEBHOOKS, as_body, dumped, example, example_json, request

SOURCES = deployment_sources()
SECRETS = local_webhook_secrets()
URL = "https://hooks.example.org/webhooks/{source}"
DIGEST = "[0-9a-f]{32}"


def mapped(name: str, body: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    """The change events `body` makes, signed as its sender signs it (at `NOW` unless told)."""
    delivery = signed_request(SOURCES[name], SECRETS[name], body, url=URL, **{"at": NOW, **kwargs})
    SOURCES[name].authenticate(delivery, SECRETS[name])
    return dumped(SOURCES[name].change_events(delivery))


def ingested(name: str, body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ingest's answer to `body` (its JSON body) and the change events it queued."""
    with local_ingest() as ingest:
        answer = handle(signed_event(name, body), ingest)
        messages = queued(ingest)
    return {"status": answer["statusCode"], **json.loads(answer["body"])}, [
        message["body"] for message in messages
    ]


# -- HubSpot: `eventId` "is not guaranteed to be unique" -----------------------------------


def test_two_hubspot_changes_sharing_one_event_id_stay_two_events() -> None:
    body = example("hubspot/shared-event-id.json")
    firstname, lastname = example_json("hubspot/shared-event-id.json")[1:]
    assert firstname["eventId"] == lastname["eventId"]  # as HubSpot documents it may

    events = mapped("hubspot", body)

    assert [e.get("set") for e in events] == [None, {"firstname": "Inès"}, {"surname": "Giraud"}]
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == 3
    assert re.fullmatch(rf"hubspot-3816279491-{DIGEST}", ids[1])
    assert re.fullmatch(rf"hubspot-3816279491-{DIGEST}", ids[2])
    answer, messages = ingested("hubspot", body)
    assert (answer["status"], answer["accepted"]) == (202, 3)
    assert sorted(m["event_id"] for m in messages) == sorted(ids)
    assert {"surname": "Giraud"} in [m.get("set") for m in messages]


def test_a_retried_hubspot_delivery_keeps_every_event_id() -> None:
    """HubSpot retries a delivery with `attemptNumber` counted up, signed anew, and may
    batch the events of a retry differently: each event keeps its id all the same."""
    first = mapped("hubspot", example("hubspot/shared-event-id.json"))
    payload = example_json("hubspot/shared-event-id.json")
    retried = [{**item, "attemptNumber": item["attemptNumber"] + 3} for item in payload]
    again = mapped("hubspot", as_body(retried[::-1]), at=NOW + timedelta(minutes=40))
    assert sorted(e["event_id"] for e in again) == sorted(e["event_id"] for e in first)
    assert mapped("hubspot", example("hubspot/shared-event-id.json")) == first


def test_a_hubspot_property_changed_twice_under_one_event_id_is_two_changes() -> None:
    payload = example_json("hubspot/shared-event-id.json")
    changed_again = {**payload[1], "propertyValue": "Inés", "occurredAt": 1462216309001}
    events = mapped("hubspot", as_body([*payload, changed_again]))
    firstnames = [e for e in events if "firstname" in e.get("set", {})]
    assert [e["set"]["firstname"] for e in firstnames] == ["Inès", "Inés"]
    assert firstnames[0]["event_id"] != firstnames[1]["event_id"]


# -- Action Network: `action_network:action` carries no `identifiers` -----------------------


def test_an_action_network_action_without_identifiers_is_accepted_under_a_derived_id() -> None:
    body = example("actionnetwork/subscription-action.json")
    action = example_json("actionnetwork/subscription-action.json")[0]["action_network:action"]
    assert "identifiers" not in action

    [event] = mapped("actionnetwork", body)

    assert re.fullmatch(rf"actionnetwork-{DIGEST}", event["event_id"])
    assert event["contact"] == {"mail": "lea.brunet@example.org"}
    assert event["set"] == {
        "firstname": "Léa",
        "surname": "Brunet",
        "address": {"postalcode": "33000", "city": "Bordeaux"},
    }
    # The same delivery again (a retry, later): the same id.
    assert mapped("actionnetwork", body, at=NOW + timedelta(hours=2)) == [event]
    answer, [message] = ingested("actionnetwork", body)
    assert (answer["status"], answer["event_ids"]) == (202, [event["event_id"]])
    assert message["event_id"] == event["event_id"]


def test_two_action_network_actions_of_one_delivery_get_two_ids() -> None:
    action = example_json("actionnetwork/subscription-action.json")[0]
    later = json.loads(json.dumps(action))
    later["action_network:action"]["created_date"] = "2014-03-28T10:00:00Z"
    later["action_network:action"]["modified_date"] = "2014-03-28T10:00:00Z"
    later["action_network:action"]["add_tags"] = ["echelle-benevoles"]
    events = mapped("actionnetwork", as_body([action, later]))
    assert len({e["event_id"] for e in events}) == 2
    assert events[1]["tags"] == {"add": ["echelle-benevoles"]}


def test_an_action_network_signature_changed_again_is_a_new_change_under_its_identifier() -> None:
    """`identifiers` name the signature, not the delivery: a person who signs again
    changes the same signature, whose new tags must not be taken for a retry."""
    [first] = mapped("actionnetwork", example("actionnetwork/signature.json"))
    payload = example_json("actionnetwork/signature.json")
    payload[0]["osdi:signature"]["modified_date"] = "2014-04-02T08:30:00Z"
    payload[0]["osdi:signature"]["add_tags"] = ["volontaire", "relais-quartier"]
    [again] = mapped("actionnetwork", as_body(payload))
    prefix = "actionnetwork-action_network:d6bdf50e-c3a4-4981-a948-3d8c086066d7-"
    assert first["event_id"].startswith(prefix)
    assert again["event_id"].startswith(prefix)
    assert first["event_id"] != again["event_id"]
    assert again["tags"] == {"add": ["volontaire", "relais-quartier"]}


# -- Typeform: partial responses ----------------------------------------------------------


def test_a_typeform_partial_response_is_acknowledged_and_changes_nothing() -> None:
    payload = example_json("typeform/form-response.json")
    payload["event_type"] = "form_response_partial"
    body = as_body(payload)
    assert SOURCES["typeform"].change_events(request("typeform", body)) == []
    answer, messages = ingested("typeform", body)
    assert (answer["status"], answer["accepted"], messages) == (202, 0, [])


# -- every preset's documented examples ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fixture"),
    sorted(
        (name, path.name)
        for name in SOURCES
        if name != "generic" and (WEBHOOKS / name).is_dir()
        for path in (WEBHOOKS / name).iterdir()
    ),
)
def test_every_documented_delivery_is_accepted_and_keeps_its_ids_when_retried(
    name: str, fixture: str
) -> None:
    body = (WEBHOOKS / name / fixture).read_bytes()
    first = mapped(name, body)
    assert mapped(name, body, at=NOW + timedelta(minutes=3)) == first
    assert len({e["event_id"] for e in first}) == len(first)
    answer, _ = ingested(name, body)
    assert answer["status"] == 202, answer


# -- the json preset: the rule any sender described in YAML gets -------------------------


ACME_EACH = ACME_YAML.replace("  event_type: type", "  each: events\n  event_type: type")


def acme_events(items: list[dict[str, Any]], *, more_yaml: str = "") -> list[str]:
    """The ids of Acme's events `items`, delivered together (`more_yaml` added to its
    configuration after `event_id`)."""
    config = acme_config(ACME_EACH.replace("  event_id: id\n", f"  event_id: id\n{more_yaml}"))
    body = json.dumps({"events": items}).encode()
    return [e.event_id for e in JsonSource("acme", config).change_events(request("acme", body))]


def test_a_json_event_without_its_senders_id_is_named_by_a_digest_of_itself() -> None:
    item = example_json("acme/signup.json")
    del item["id"]
    other = {**item, "comment": "Disponible le dimanche."}
    ids = acme_events([item, other])
    assert all(re.fullmatch(rf"acme-{DIGEST}", i) for i in ids)
    assert ids[0] != ids[1]
    [null_id] = acme_events([{**item, "id": None}])  # a null id is no id: no refusal
    assert re.fullmatch(rf"acme-{DIGEST}", null_id)


def test_a_json_senders_id_that_may_name_several_changes_gets_a_digest_of_each() -> None:
    item = example_json("acme/signup.json")
    other = {**item, "member": {**item["member"], "job": "Urbaniste"}, "attempt": 1}
    unique = acme_events([item, other])
    assert unique == ["acme-evt_01HZX4K9V2"]  # the sender's word: one change, once
    shared_ids = "  event_id_unique: false\n  attempt_fields: [attempt]\n"
    shared = acme_events([item, other], more_yaml=shared_ids)
    assert len(set(shared)) == 2
    assert all(re.fullmatch(rf"acme-evt_01HZX4K9V2-{DIGEST}", i) for i in shared)
    # The second one retried: only its attempt differs, and so it keeps its id.
    assert acme_events([{**other, "attempt": 2}], more_yaml=shared_ids) == shared[1:]


def test_a_json_senders_id_of_the_wrong_kind_is_still_a_bad_payload() -> None:
    item = {**example_json("acme/signup.json"), "id": {"no": 1}}
    with pytest.raises(BadPayload) as refused:
        acme_events([item])
    assert refused.value.field == "[0]"


def test_a_derived_id_holds_no_personal_data() -> None:
    [event] = mapped("actionnetwork", example("actionnetwork/subscription-action.json"))
    assert re.fullmatch(rf"actionnetwork-{DIGEST}", event["event_id"])  # a digest, not the e-mail
