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
from tests.unit.webhooks import NOW, as_body, dumped, example, example_json, request

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


def test_a_json_senders_id_of_the_wrong_kind_is_still_a_bad_payload() -> None:
    item = {**example_json("acme/signup.json"), "id": {"no": 1}}
    with pytest.raises(BadPayload) as refused:
        acme_events([item])
    assert refused.value.field == "[0]"


def test_a_derived_id_holds_no_personal_data() -> None:
    [event] = mapped("actionnetwork", example("actionnetwork/subscription-action.json"))
    assert re.fullmatch(rf"actionnetwork-{DIGEST}", event["event_id"])  # a digest, not the e-mail
