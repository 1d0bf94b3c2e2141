"""The Qomon stand-in over real HTTP on 127.0.0.1, talked to with plain httpx."""

from __future__ import annotations

import argparse
import email.utils
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer, add_arguments, config_from_args
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

TOKEN = "standin-test-token"
ANA = 700103  # ana.martin@example.org
DECOY = 700106  # ana.martin@example.org.example.com
CAMILLE = [700109, 700112]  # one e-mail in two cases
CONSENT, SUPPORT, PROFESSION = 3101, 3102, 3401
MICROS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

Start = Callable[..., httpx.Client]


@pytest.fixture
def start() -> Iterator[Start]:
    """Starts a stand-in with the given settings; answers an authorised client for it."""
    servers: list[StandinServer] = []
    clients: list[httpx.Client] = []

    def _start(**settings: Any) -> httpx.Client:
        server = StandinServer(StandinConfig(token=TOKEN, **settings)).start()
        servers.append(server)
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        clients.append(client)
        return client

    yield _start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


@pytest.fixture
def qomon(start: Start) -> httpx.Client:
    return start()


def stats(client: httpx.Client) -> dict[str, Any]:
    return client.get("/_standin/stats").json()  # type: ignore[no-any-return]


def stored(client: httpx.Client, contact_id: int) -> dict[str, Any]:
    return client.get(f"/_standin/contacts/{contact_id}").json()["contact"]  # type: ignore[no-any-return]


def patch(client: httpx.Client, contact_id: int, contact: dict[str, Any]) -> httpx.Response:
    return client.patch(f"/contacts/{contact_id}", json={"data": {"contact": contact}})


def post_search(
    client: httpx.Client, query: Any, per_page: int = 100, page: int = 0
) -> httpx.Response:
    body = {"data": {"advanced_search": {"query": query, "per_page": per_page, "page": page}}}
    return client.post("/search", json=body)


def mail_query(value: str, ope: str) -> dict[str, Any]:
    return {"$all": [{"$all": [{"$condition": {"attr": "mail", "ope": ope, "value": value}}]}]}


def configure(client: httpx.Client, **changes: Any) -> httpx.Response:
    return client.post("/_standin/config", json=changes)


def schedule(client: httpx.Client, **fault: Any) -> None:
    client.post("/_standin/faults", json=fault).raise_for_status()


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["title"]
    assert body["detail"]
    assert isinstance(body["errors"], list)
    return body


# -- key, envelope, errors --------------------------------------------------------------


def test_a_missing_or_wrong_key_is_a_401_problem_that_costs_nothing(qomon: httpx.Client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}):
        response = qomon.get(f"/contacts/{ANA}", headers=headers)
        is_problem(response, 401)
        assert response.headers["x-ratelimit-cost"] == "0"
        assert response.headers["x-ratelimit-remaining"] == "100"
    assert stats(qomon)["tokens_spent"] == 0


def test_unknown_paths_wrong_methods_and_bad_json_are_problems(qomon: httpx.Client) -> None:
    is_problem(qomon.get("/nowhere"), 404)
    is_problem(qomon.get("/contacts/1"), 404)
    response = qomon.put(f"/contacts/{ANA}", json={})
    is_problem(response, 405)
    assert set(response.headers["allow"].split(",")) == {"GET", "PATCH", "DELETE"}
    body = is_problem(
        qomon.patch(
            f"/contacts/{ANA}", content=b"{oops", headers={"content-type": "application/json"}
        ),
        400,
    )
    assert body["errors"][0]["location"] == "body"
    assert all("x-ratelimit-cost" in r.headers for r in (response,))


def test_the_legacy_error_style(start: Start) -> None:
    qomon = start(error_style="legacy")
    response = qomon.get("/contacts/1")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "fail", "message": "no contact has id 1"}


# -- the read shape ---------------------------------------------------------------------


def test_get_answers_the_current_read_shape(qomon: httpx.Client) -> None:
    response = qomon.get(f"/contacts/{ANA}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    contact = body["data"]["contact"]
    assert contact["id"] == ANA
    assert contact["mail"] == "ana.martin@example.org"
    assert MICROS.fullmatch(contact["CreatedAt"])
    assert MILLIS.fullmatch(contact["lastchange"])
    assert {"birth_city", "action_ids", "custom_fields"} <= set(contact)
    assert contact["address"]["postalcode"] == "69003"
    assert {"id", "score", "latitude", "longitude", "location", "invalid"} <= set(
        contact["address"]
    )
    assert contact["external_id"] == "nb-100231"
    assert all(e["deleted_at"] is None for e in contact["formdatas"])


def test_get_answers_the_legacy_read_shape(start: Start) -> None:
    qomon = start(naming="legacy")
    assert patch(
        qomon, ANA, {"notes": [{"data": "n"}], "address": {"postalcode": "01000"}}
    ).is_success
    contact = qomon.get(f"/contacts/{ANA}").json()["data"]["contact"]
    assert {"birthcity", "actions_ids", "customfields"} <= set(contact)
    assert not {"birth_city", "action_ids", "custom_fields"} & set(contact)
    assert contact["notes"][0]["content"] == "n"
    assert contact["address"]["postalcode"] == 1000


def test_include_deleted_shows_soft_deleted_entries(start: Start) -> None:
    qomon = start(include_deleted=True)
    entries = qomon.get(f"/contacts/{ANA}").json()["data"]["contact"]["formdatas"]
    assert [e["data"] for e in entries if e["deleted_at"] is not None] == ["undecided"]


# -- the replacement PATCH --------------------------------------------------------------


def test_patch_replaces_the_whole_contact(qomon: httpx.Client) -> None:
    response = patch(qomon, ANA, {"firstname": "Ana", "mail": "ana.martin@example.org"})
    assert response.status_code == 200
    assert response.headers["x-ratelimit-cost"] == "5"
    contact = response.json()["data"]["contact"]
    assert contact["surname"] is None
    assert contact["tags"] == []
    assert contact["formdatas"] == []
    assert contact["address"]["city"] is None
    assert "external_id" not in contact
    record = stored(qomon, ANA)
    assert record["unknown_fields"] == {}
    assert record["address"] == {}


def test_patch_recreates_entries_with_new_ids_and_keeps_the_old_ones_soft_deleted(
    qomon: httpx.Client,
) -> None:
    before = stored(qomon, ANA)
    live_before = [e["id"] for e in before["formdatas"] if e["deleted_at"] is None]
    entry = {"form_id": SUPPORT, "form_ref_id": 31022, "data": "favorable"}
    first = patch(qomon, ANA, {"formdatas": [entry]}).json()["data"]["contact"]
    second = patch(qomon, ANA, {"formdatas": [entry]}).json()["data"]["contact"]
    assert first["formdatas"][0]["id"] != second["formdatas"][0]["id"]
    assert [e["data"] for e in second["formdatas"]] == ["favorable"]
    record = stored(qomon, ANA)
    by_id = {e["id"]: e for e in record["formdatas"]}
    assert all(by_id[i]["deleted_at"] is not None for i in live_before)
    assert by_id[first["formdatas"][0]["id"]]["deleted_at"] is not None
    assert [e["id"] for e in record["formdatas"] if e["deleted_at"] is None] == [
        second["formdatas"][0]["id"]
    ]
    assert record["lastchange"] == before["lastchange"]
    assert record["UpdatedAt"] > before["UpdatedAt"]


def test_a_radio_keeps_a_single_entry(qomon: httpx.Client) -> None:
    entries = [
        {"form_id": SUPPORT, "form_ref_id": 31023, "data": "undecided"},
        {"form_id": SUPPORT, "form_ref_id": 31021, "data": "very_favorable"},
        {"form_id": CONSENT, "form_ref_id": 31011, "data": "consent_email"},
        {"form_id": CONSENT, "form_ref_id": 31012, "data": "consent_sms"},
    ]
    contact = patch(qomon, ANA, {"formdatas": entries}).json()["data"]["contact"]
    assert [e["data"] for e in contact["formdatas"]] == [
        "very_favorable",
        "consent_email",
        "consent_sms",
    ]


def test_an_invalid_patch_is_refused_with_every_location(qomon: httpx.Client) -> None:
    before = stored(qomon, ANA)
    body = {
        "gender": "X",
        "formdatas": [
            {"form_id": CONSENT, "form_ref_id": 31011, "data": "consent_email"},
            {"form_id": CONSENT, "form_ref_id": 31021, "data": "favorable"},
            {"form_id": SUPPORT, "form_ref_id": 31021, "data": "Très favorable"},
        ],
        "custom_fields": [{"form_id": SUPPORT, "form_ref_id": 31021, "data": "x"}],
    }
    problem = is_problem(patch(qomon, ANA, body), 422)
    assert [(e["location"], e["value"]) for e in problem["errors"]] == [
        ("body.data.contact.gender", "X"),
        ("body.data.contact.formdatas[1].form_ref_id", 31021),
        ("body.data.contact.formdatas[2].data", "Très favorable"),
        ("body.data.contact.custom_fields[0].form_id", SUPPORT),
    ]
    assert stored(qomon, ANA) == before


def test_a_patch_without_the_envelope_names_it(qomon: httpx.Client) -> None:
    for body, location in (
        ({"contact": {}}, "body.data"),
        ({"data": {"firstname": "x"}}, "body.data.contact"),
        ([], "body"),
    ):
        problem = is_problem(qomon.patch(f"/contacts/{ANA}", json=body), 422)
        assert problem["errors"][0]["location"] == location


def test_the_validation_status_can_be_400(start: Start) -> None:
    qomon = start(validation_status=400)
    problem = is_problem(patch(qomon, ANA, {"gender": "X"}), 400)
    assert problem["errors"][0]["location"] == "body.data.contact.gender"


def test_post_creates_and_delete_removes(qomon: httpx.Client) -> None:
    response = qomon.post("/contacts", json={"data": {"contact": {"firstname": "Nina"}}})
    assert response.status_code == 200
    assert response.headers["x-ratelimit-cost"] == "5"
    new_id = response.json()["data"]["contact"]["id"]
    assert new_id > DECOY
    assert qomon.get(f"/contacts/{new_id}").json()["data"]["contact"]["firstname"] == "Nina"
    deleted = qomon.delete(f"/contacts/{new_id}")
    assert deleted.status_code == 204
    assert deleted.headers["x-ratelimit-cost"] == "1"
    is_problem(qomon.get(f"/contacts/{new_id}"), 404)


# -- documented types -------------------------------------------------------------------

SHOWCASE = 700190  # every key of the documented contact holds a value


def test_a_write_of_undocumented_types_is_a_422_naming_each_path(qomon: httpx.Client) -> None:
    before = stored(qomon, SHOWCASE)
    body = {
        "firstname": "Idriss",
        "age_category": "3",
        "user_contact_id": 9003,
        "notes": [{"data": "n", "pinned": "yes", "user": {"id": "9002"}}],
        "formdatas": [{"form_id": 3202, "form_ref_id": 32021, "data": 4}],
    }
    problem = is_problem(patch(qomon, SHOWCASE, body), 422)
    assert [(e["location"], e["value"]) for e in problem["errors"]] == [
        ("body.data.contact.age_category", "3"),
        ("body.data.contact.notes[0].pinned", "yes"),
        ("body.data.contact.notes[0].user.id", "9002"),
        ("body.data.contact.formdatas[0].data", 4),
    ]
    assert "body.data.contact.age_category: must be an integer" in problem["detail"]
    assert stored(qomon, SHOWCASE) == before
    response = qomon.post("/contacts", json={"data": {"contact": {"birthdate": "1990-01-01"}}})
    assert is_problem(response, 422)["errors"][0]["location"] == "body.data.contact.birthdate"


def test_the_type_check_follows_the_validation_status(start: Start) -> None:
    qomon = start(validation_status=400)
    problem = is_problem(patch(qomon, SHOWCASE, {"black_list": "no"}), 400)
    assert problem["errors"][0]["location"] == "body.data.contact.black_list"


def test_the_type_check_is_on_by_default_and_can_be_turned_off(start: Start) -> None:
    body = {"age_category": "3", "birthdate": "1986-04-23"}
    qomon = start()
    assert qomon.get("/_standin/config").json()["config"]["strict_types"] is True
    is_problem(patch(qomon, SHOWCASE, body), 422)
    assert configure(qomon, strict_types=False).status_code == 200
    contact = patch(qomon, SHOWCASE, body).json()["data"]["contact"]
    assert (contact["age_category"], contact["birthdate"]) == ("3", "1986-04-23")

    lenient = start(strict_types=False)
    assert patch(lenient, SHOWCASE, body).status_code == 200
    # What was always refused still is.
    is_problem(patch(lenient, SHOWCASE, {"black_list": "no"}), 422)


def test_a_contact_read_by_get_can_be_patched_back_as_it_is(qomon: httpx.Client) -> None:
    read = qomon.get(f"/contacts/{SHOWCASE}").json()["data"]["contact"]
    assert isinstance(read["age_category"], int)
    assert isinstance(read["notes"][0]["user"]["id"], int)
    written = patch(qomon, SHOWCASE, read)
    assert written.status_code == 200, written.json()
    after = written.json()["data"]["contact"]
    assert after["notes"] == read["notes"]  # ids, times and authors kept
    assert [(e["form_id"], e["data"], e["survey_id"]) for e in after["formdatas"]] == [
        (e["form_id"], e["data"], e["survey_id"]) for e in read["formdatas"]
    ]
    assert not {e["id"] for e in after["formdatas"]} & {e["id"] for e in read["formdatas"]}
    assert (after["age_category"], after["user_contact_id"]) == (
        read["age_category"],
        read["user_contact_id"],
    )
    assert after["address"] == read["address"]


def test_a_note_written_without_an_id_is_by_the_api_user(qomon: httpx.Client) -> None:
    read = qomon.get(f"/contacts/{SHOWCASE}").json()["data"]["contact"]
    kept = read["notes"][0]
    body = {"notes": [kept, {"data": "Appelé ce jour", "pinned": True}]}
    contact = patch(qomon, SHOWCASE, body).json()["data"]["contact"]
    old, new = contact["notes"]
    assert old == kept
    assert new["id"] not in {n["id"] for n in read["notes"]}
    assert (new["contact_id"], new["group_id"]) == (SHOWCASE, read["group_id"])
    assert new["created_at"] == new["updated_at"]
    assert MILLIS.fullmatch(new["created_at"])
    assert new["user"]["id"] == contact["user_id"] == 9001
    assert new["user"]["firstname"] == "Intégration"
    created = qomon.post("/contacts", json={"data": {"contact": {"notes": [{"data": "x"}]}}})
    assert created.json()["data"]["contact"]["notes"][0]["user"] == new["user"]


def test_the_command_line_can_turn_the_type_check_off() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--token", "t"])).strict_types is True
    lenient = parser.parse_args(["--token", "t", "--lenient-types"])
    assert config_from_args(lenient).strict_types is False


# -- search -----------------------------------------------------------------------------


def test_strict_search_finds_the_exact_e_mail_and_loose_search_the_decoy(
    qomon: httpx.Client,
) -> None:
    def ids(response: httpx.Response) -> list[int]:
        assert response.status_code == 200
        return [c["id"] for c in response.json()["data"]["contacts"]]

    assert ids(post_search(qomon, mail_query("ana.martin@example.org", "eql:strictdata"))) == [ANA]
    assert ids(post_search(qomon, mail_query("ana.martin@example.org", "eql"))) == [ANA, DECOY]
    # Documented: `eql:strictdata` is case-sensitive; `eql` (observed) is not.
    assert ids(post_search(qomon, mail_query("Ana.Martin@example.org", "eql:strictdata"))) == []
    assert ids(post_search(qomon, mail_query("Ana.Martin@example.org", "eql"))) == [ANA, DECOY]
    assert ids(post_search(qomon, mail_query("camille.roux@example.com", "eql:strictdata"))) == [
        CAMILLE[0]
    ]
    assert ids(post_search(qomon, mail_query("camille.roux@example.com", "eql"))) == CAMILLE
    found = post_search(qomon, mail_query("ana.martin@example.org", "eql:strictdata"))
    assert found.json()["data"]["contacts"][0]["external_id"] == "nb-100231"


def test_search_wants_exactly_two_levels(qomon: httpx.Client) -> None:
    flat = {"$all": [{"$condition": {"attr": "mail", "ope": "eql", "value": "a"}}]}
    problem = is_problem(post_search(qomon, flat), 422)
    assert problem["errors"][0]["location"] == "body.data.advanced_search.query.$all[0]"
    deep: dict[str, Any] = {"$all": [{"$all": [{"$at_least_one": []}]}]}
    problem = is_problem(post_search(qomon, deep), 422)
    assert problem["errors"][0]["location"] == "body.data.advanced_search.query.$all[0].$all[0]"
    problem = is_problem(post_search(qomon, {"$all": []}, per_page=1001), 422)
    assert problem["errors"][0]["location"] == "body.data.advanced_search.per_page"


def test_search_pages_until_a_short_page(qomon: httpx.Client) -> None:
    seen: list[int] = []
    sizes: list[int] = []
    for page in range(10):
        body = post_search(qomon, {"$all": []}, per_page=150, page=page).json()
        assert "total" not in body["data"]
        contacts = body["data"]["contacts"]
        sizes.append(len(contacts))
        seen += [c["id"] for c in contacts]
        if len(contacts) < 150:
            break
    assert sizes == [150, 150, 40]
    assert seen == sorted(seen)
    assert len(seen) == len(qomon.get("/_standin/contacts").json()["contacts"]) == 340


def any_mail(*values: str, ope: str = "eql") -> dict[str, Any]:
    conditions = [{"$condition": {"attr": "mail", "ope": ope, "value": v}} for v in values]
    return {"$all": [{"$at_least_one": conditions}]}


def test_one_search_finds_many_e_mails_each_by_its_operator(qomon: httpx.Client) -> None:
    # Issue 21: an `$at_least_one` group of `mail` conditions, each matched as documented.
    def ids(response: httpx.Response) -> list[int]:
        assert response.status_code == 200
        return [c["id"] for c in response.json()["data"]["contacts"]]

    loose = any_mail("ANA.MARTIN@example.org", "camille.roux@example.com")
    assert ids(post_search(qomon, loose)) == sorted([ANA, DECOY, *CAMILLE])
    strict = any_mail("Ana.Martin@example.org", "camille.roux@example.com", ope="eql:strictdata")
    assert ids(post_search(qomon, strict)) == [CAMILLE[0]]  # the first misses: another case
    paged = [ids(post_search(qomon, loose, per_page=2, page=n)) for n in range(3)]
    assert paged[0] + paged[1] + paged[2] == sorted([ANA, DECOY, *CAMILLE])
    assert [len(p) for p in paged] == [2, 2, len(CAMILLE) + 2 - 4]
    assert stats(qomon)["tokens_by_endpoint"]["POST /search"] == 5  # 1 token a page


def test_a_search_above_the_condition_limit_is_refused_with_422(qomon: httpx.Client) -> None:
    configure(qomon, search_max_conditions=3).raise_for_status()
    mails = [f"p{n}@example.org" for n in range(4)]
    problem = is_problem(post_search(qomon, any_mail(*mails)), 422)
    assert problem["errors"][0]["location"] == "body.data.advanced_search.query"
    assert "at most 3" in problem["errors"][0]["message"]
    assert post_search(qomon, any_mail(*mails[:3])).status_code == 200
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--token", "t", "--search-max-conditions", "7"])
    assert config_from_args(args).search_max_conditions == 7


# -- forms ------------------------------------------------------------------------------


def test_forms_by_type_by_deprecated_path_and_by_id(qomon: httpx.Client) -> None:
    v1 = qomon.get("/v1/forms/type/consent")
    assert v1.status_code == 200
    [form] = v1.json()["data"]["forms"]
    assert form["id"] == CONSENT
    assert form["type"] == "checkbox"
    assert {r["value"] for r in form["refvalues"]} >= {"consent_email", "refuse_all"}
    custom = qomon.get("/v1/forms/type/custom_fields").json()["data"]["forms"]
    assert {f["section"] for f in custom} == {"custom_fields"}
    assert len(custom) == 4
    old = qomon.get("/forms/consent")
    assert old.headers["deprecation"] == "true"
    assert old.json() == v1.json()
    assert qomon.get(f"/forms/{PROFESSION}").json()["data"]["form"]["type"] == "text"
    is_problem(qomon.get("/forms/999"), 404)
    is_problem(qomon.get("/v1/forms/type/petitions"), 404)


def test_an_older_space_has_no_v1_forms(start: Start) -> None:
    qomon = start(forms_v1=False)
    response = qomon.get("/v1/forms/type/consent")
    is_problem(response, 404)
    assert response.headers["x-ratelimit-cost"] == "1"
    assert qomon.get("/forms/consent").json()["data"]["forms"][0]["id"] == CONSENT


# -- rate limit -------------------------------------------------------------------------


def test_rate_limit_headers_and_the_429(start: Start) -> None:
    qomon = start(burst=6, refill=1.0)
    first = qomon.get(f"/contacts/{ANA}")
    assert first.headers["x-ratelimit-limit"] == "burst:6;rate:1.0"
    assert first.headers["x-ratelimit-cost"] == "1"
    assert first.headers["x-ratelimit-remaining"] == "5"
    limited = patch(qomon, ANA, {"firstname": "A"})
    limited_again = patch(qomon, ANA, {"firstname": "A"})
    assert limited.status_code == 200
    is_problem(limited_again, 429)
    assert limited_again.headers["x-ratelimit-cost"] == "0"
    assert limited_again.headers["x-ratelimit-remaining"] == "0"
    # Five tokens at one a second: the whole wait, rounded up.
    assert int(limited_again.headers["retry-after"]) in (4, 5)
    counted = stats(qomon)
    assert counted["rate_limited"] == 1
    assert counted["tokens_spent"] == 6
    assert counted["tokens_by_endpoint"] == {"GET /contacts/{id}": 1, "PATCH /contacts/{id}": 5}
    assert counted["calls"] == {"GET /contacts/{id}": 1, "PATCH /contacts/{id}": 2}
    assert counted["statuses"] == {"200": 2, "429": 1}


def reset_s(response: httpx.Response) -> float:
    return float(response.headers["x-ratelimit-reset"])


def test_every_answer_carries_the_four_documented_headers_and_a_429_whole_seconds(
    start: Start,
) -> None:
    # Documented ("Rate limits"): Limit, Remaining, Cost and Reset (seconds until the bucket
    # is full) on every answer; a 429 adds Retry-After in whole seconds. A slow refill (one
    # token in 100 s) keeps the figures still while the test runs.
    qomon = start(burst=10, refill=0.01)
    read = qomon.get(f"/contacts/{ANA}")
    assert read.status_code == 200
    assert read.headers["x-ratelimit-limit"] == "burst:10;rate:0.01"
    assert (read.headers["x-ratelimit-cost"], read.headers["x-ratelimit-remaining"]) == ("1", "9")
    assert 99 < reset_s(read) <= 100  # 1 token short at 0.01/s
    assert "retry-after" not in read.headers
    written = patch(qomon, ANA, {"firstname": "A"})
    assert written.status_code == 200
    assert (written.headers["x-ratelimit-cost"], written.headers["x-ratelimit-remaining"]) == (
        "5",
        "4",
    )
    assert 599 < reset_s(written) <= 600
    refused = patch(qomon, ANA, {"firstname": "A"})
    is_problem(refused, 429)
    assert refused.headers["x-ratelimit-remaining"] == "4"
    assert 599 < reset_s(refused) <= 600
    # One token short at 0.01/s: just under 100 s, rounded up to whole seconds.
    assert refused.headers["retry-after"] == "100"
    missing_key = qomon.get(f"/contacts/{ANA}", headers={"Authorization": "Bearer nope"})
    is_problem(missing_key, 401)
    assert {
        name: missing_key.headers.get(name)
        for name in ("x-ratelimit-limit", "x-ratelimit-cost", "x-ratelimit-remaining")
    } == {
        "x-ratelimit-limit": "burst:10;rate:0.01",
        "x-ratelimit-cost": "0",
        "x-ratelimit-remaining": "4",
    }
    assert 599 < reset_s(missing_key) <= 600


def test_a_full_bucket_resets_in_no_time(qomon: httpx.Client) -> None:
    qomon.post("/_standin/config", json={"refill": 1000.0}).raise_for_status()
    response = qomon.get("/v1/forms/type/consent")
    assert response.headers["x-ratelimit-remaining"] in ("99", "100")
    assert 0 <= reset_s(response) <= 0.001


@pytest.mark.parametrize("mode", ["seconds", "date", "none"])
def test_each_retry_after_mode(start: Start, mode: str) -> None:
    qomon = start(burst=5, refill=0.5, retry_after=mode)
    for _ in range(5):
        assert qomon.get(f"/contacts/{ANA}").status_code == 200
    response = qomon.get(f"/contacts/{ANA}")
    is_problem(response, 429)
    if mode == "seconds":
        assert response.headers["retry-after"] == "2"
    elif mode == "date":
        when = email.utils.parsedate_to_datetime(response.headers["retry-after"])
        assert 1 <= (when - datetime.now(UTC)).total_seconds() <= 4
    else:
        assert "retry-after" not in response.headers


# -- injected faults --------------------------------------------------------------------


def test_scheduled_server_errors_then_normal_answers(qomon: httpx.Client) -> None:
    schedule(qomon, status=503, count=2)
    first, second, third = (qomon.get(f"/contacts/{ANA}") for _ in range(3))
    is_problem(first, 503)
    is_problem(second, 503)
    assert first.headers["x-ratelimit-cost"] == "0"
    assert third.status_code == 200
    assert stats(qomon)["faults"]["server_errors"] == 2


def test_a_scheduled_fault_comes_before_the_key_check(qomon: httpx.Client) -> None:
    schedule(qomon, status=502)
    is_problem(qomon.get(f"/contacts/{ANA}", headers={"Authorization": "Bearer nope"}), 502)


def test_a_scheduled_429_carries_its_own_retry_after(qomon: httpx.Client) -> None:
    schedule(qomon, status=429, retry_after="date")
    schedule(qomon, status=429, retry_after="none")
    schedule(qomon, status=429)
    dated, bare, default = (qomon.get(f"/contacts/{ANA}") for _ in range(3))
    assert email.utils.parsedate_to_datetime(dated.headers["retry-after"]) > datetime.now(UTC)
    assert "retry-after" not in bare.headers
    assert default.headers["retry-after"] == "1"
    assert stats(qomon)["rate_limited"] == 3


def test_a_rate_limit_storm_refuses_every_call_until_it_ends(qomon: httpx.Client) -> None:
    schedule(qomon, rate_limit_storm_s=3)
    responses = [qomon.get(f"/contacts/{ANA}") for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 429]
    assert responses[0].headers["retry-after"] == "3"
    qomon.post("/_standin/reset").raise_for_status()
    assert qomon.get(f"/contacts/{ANA}").status_code == 200


def test_a_scheduled_drop_closes_the_connection_without_an_answer(qomon: httpx.Client) -> None:
    schedule(qomon, kind="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        qomon.get(f"/contacts/{ANA}")
    assert qomon.get(f"/contacts/{ANA}").status_code == 200
    counted = stats(qomon)
    assert counted["faults"]["dropped"] == 1
    assert counted["calls"]["GET /contacts/{id}"] == 2
    assert counted["statuses"] == {"200": 1}


def test_a_timeout_outlasts_the_client_and_the_write_still_lands(start: Start) -> None:
    qomon = start(hang_s=0.4)
    schedule(qomon, kind="timeout")
    with pytest.raises(httpx.ReadTimeout):
        qomon.patch(
            f"/contacts/{ANA}", json={"data": {"contact": {"firstname": "Late"}}}, timeout=0.1
        )
    deadline = time.monotonic() + 3
    while stored(qomon, ANA)["firstname"] != "Late" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(qomon, ANA)["firstname"] == "Late"
    assert stats(qomon)["faults"]["timeouts"] == 1


def test_random_faults_replay_for_a_given_seed(start: Start) -> None:
    qomon = start(drop_rate=0.1, fail_rate=0.3, random_seed=7)

    def outcomes() -> list[int | str]:
        seen: list[int | str] = []
        for _ in range(30):
            try:
                seen.append(qomon.get(f"/contacts/{ANA}").status_code)
            except httpx.TransportError:
                seen.append("dropped")
        return seen

    first = outcomes()
    qomon.post("/_standin/reset").raise_for_status()
    assert outcomes() == first

    # The documented rule: one uniform draw per call, then one more to pick the 5xx.
    rng = random.Random(7)
    expected: list[int | str] = []
    for _ in range(30):
        draw = rng.random()
        if draw < 0.1:
            expected.append("dropped")
        elif draw < 0.4:
            expected.append(rng.choice((500, 502, 503)))
        else:
            expected.append(200)
    assert first == expected
    assert {"dropped", 200} <= set(first)
    assert set(first) & {500, 502, 503}


# -- the inspection surface -------------------------------------------------------------


def test_reset_brings_back_the_seed_and_zeroes_the_stats(start: Start) -> None:
    qomon = start(burst=10)
    patch(qomon, ANA, {"firstname": "Changed"})
    schedule(qomon, status=503, count=5)
    qomon.post("/_standin/reset").raise_for_status()
    assert stats(qomon)["calls"] == {}
    response = qomon.get(f"/contacts/{ANA}")
    assert response.status_code == 200
    assert response.json()["data"]["contact"]["firstname"] == "Ana"
    assert response.headers["x-ratelimit-remaining"] == "9"


def test_config_changes_at_run_time_and_is_validated(qomon: httpx.Client) -> None:
    response = configure(qomon, naming="legacy", burst=50, refill=2)
    assert response.status_code == 200
    config = response.json()["config"]
    assert (config["naming"], config["burst"], config["refill"]) == ("legacy", 50, 2.0)
    assert "token" not in config
    got = qomon.get(f"/contacts/{ANA}")
    assert "birthcity" in got.json()["data"]["contact"]
    assert got.headers["x-ratelimit-limit"] == "burst:50;rate:2.0"
    assert got.headers["x-ratelimit-remaining"] == "49"

    problem = is_problem(configure(qomon, drop_rate=2), 422)
    assert problem["errors"][0]["location"] == "drop_rate"
    is_problem(configure(qomon, token="other"), 422)
    is_problem(configure(qomon, colour="blue"), 422)
    assert qomon.get("/_standin/config").json()["config"]["naming"] == "legacy"


def test_put_inserts_a_contact_from_the_seed_format(qomon: httpx.Client) -> None:
    record = {"firstname": "Setup", "mail": "setup@example.org", "external_id": "x-1"}
    response = qomon.put("/_standin/contacts/123", json=record)
    assert response.status_code == 201
    assert qomon.put("/_standin/contacts/123", json=record).status_code == 200
    contact = qomon.get("/contacts/123").json()["data"]["contact"]
    assert (contact["firstname"], contact["external_id"]) == ("Setup", "x-1")
    problem = is_problem(qomon.put("/_standin/contacts/124", json={"gender": "?"}), 422)
    assert problem["errors"][0]["location"] == "contact.gender"
    # The inspection surface spends nothing and is not counted.
    assert stats(qomon)["calls"] == {"GET /contacts/{id}": 1}
    is_problem(qomon.get("/_standin/contacts/1"), 404)


def test_bad_fault_requests_are_refused(qomon: httpx.Client) -> None:
    for body in ({"status": 404}, {"kind": "melt"}, {"status": 503, "count": 0}, {}):
        is_problem(qomon.post("/_standin/faults", json=body), 422)
    assert qomon.get("/_standin/faults").json()["faults"] == {
        "pending": [],
        "rate_limit_storm_s": 0.0,
    }


# -- the command line -------------------------------------------------------------------


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT / "local")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "qomon_sync_dev.cli", "standin", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_the_command_serves_until_sigterm() -> None:
    process = _cli("--port", "0", "--token", "t")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"Qomon stand-in listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        assert int(match[2]) > 0
        response = httpx.get(f"{match[1]}/contacts/{ANA}", headers={"Authorization": "Bearer t"})
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_command_refuses_bad_values() -> None:
    process = _cli("--port", "0", "--token", "t", "--drop-rate", "2")
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "--drop-rate" in stderr
    assert "probability" in stderr
