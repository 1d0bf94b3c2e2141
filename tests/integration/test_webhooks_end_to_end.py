"""End to end in local mode: a signed webhook over real HTTP changes the right answers of
the right contact in the stand-in, and nothing else on that contact."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qomon_sync.domain.contact_meaning import fingerprint
from qomon_sync.domain.contact_shape import ShapePolicy, to_write_shape
from qomon_sync.domain.forms import FORM_FAMILIES, Form, FormCatalog
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.signing import sign
from tests.conftest import EVENTS

pytestmark = pytest.mark.integration
ANA = 700103
KEEP = ShapePolicy(passthrough=frozenset({"external_id", "membership_number"}))


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions(visibility_timeout_s=2)) as running:
        yield running


def standin(local: LocalMode, path: str) -> Any:
    assert local.endpoints is not None
    return httpx.get(f"{local.endpoints.qomon_url}/_standin/{path}").json()


def qomon_forms(local: LocalMode) -> FormCatalog:
    assert local.endpoints is not None
    with httpx.Client(
        base_url=local.endpoints.qomon_url, headers={"Authorization": "Bearer local-qomon-token"}
    ) as http:
        return FormCatalog(
            Form.model_validate(f)
            for family in FORM_FAMILIES
            for f in http.get(f"/v1/forms/type/{family}").json()["data"]["forms"]
        )


def meaning(local: LocalMode, contact_id: int, forms: FormCatalog) -> dict[str, Any]:
    """What Qomon holds for the contact, read through the public API (ids ignored)."""
    assert local.endpoints is not None
    answer = httpx.get(
        f"{local.endpoints.qomon_url}/contacts/{contact_id}",
        headers={"Authorization": "Bearer local-qomon-token"},
    )
    return fingerprint(to_write_shape(answer.json()["data"]["contact"], forms, KEEP))


def post(local: LocalMode, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    assert local.endpoints is not None
    url = local.endpoints.webhook_url.format(source=source)
    return httpx.post(
        url, content=body, headers={"content-type": "application/json", **headers}, timeout=30
    )


def wait_for_processing(local: LocalMode, contact_id: int, calls_before: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        calls = standin(local, "stats")["calls"].get("PATCH /contacts/{id}", 0)
        if calls > calls_before and local.poller is not None and local.poller.idle.is_set():
            return
        time.sleep(0.2)
    raise AssertionError("the webhook's changes never reached Qomon")


def test_a_signed_typeform_webhook_changes_the_right_answers_and_nothing_else(
    local: LocalMode,
) -> None:
    assert local.endpoints is not None
    assert local.endpoints.webhook_secrets is not None
    forms = qomon_forms(local)
    before = meaning(local, ANA, forms)
    others_before = {c: meaning(local, c, forms) for c in (700106, 700109)}
    patches = standin(local, "stats")["calls"].get("PATCH /contacts/{id}", 0)
    body = (EVENTS / "webhooks" / "typeform" / "form-response.json").read_bytes()

    response = post(
        local, "typeform", body, sign("typeform", local.endpoints.webhook_secrets["typeform"], body)
    )
    assert response.status_code == 202, response.text
    assert response.json()["event_ids"] == ["typeform-a3a12ec67a1365927098a606107fac15"]
    wait_for_processing(local, ANA, patches)

    after = meaning(local, ANA, forms)
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    mapped_forms = {
        forms.find(label).id
        for label in (
            "Consentements",
            "Niveau de soutien",
            "Quels sujets vous intéressent ?",
            "Combien de personnes vivent dans votre foyer ?",
            "Date de votre dernier vote",
            "Souhaitez-vous être recontacté·e ?",
            "De 0 à 10, votre intérêt pour la campagne",
        )
    }
    allowed = {"firstname", "surname", "tags[petition-pistes-cyclables]"} | {
        f"formdatas[form_id={i}]" for i in mapped_forms
    }
    notes = {p for p in changed if p.startswith("notes[")}
    assert changed - notes <= allowed, changed - notes - allowed
    assert len(notes) == 1  # the templated note, added once
    assert "tags[petition-pistes-cyclables]" in changed
    support = forms.find("Niveau de soutien").id
    assert after[f"formdatas[form_id={support}]"] != before.get(f"formdatas[form_id={support}]")
    # Everything the form did not ask about is exactly as it was.
    for path in before.keys() - allowed - notes:
        assert after.get(path) == before[path], path
    # Nobody else moved.
    assert {c: meaning(local, c, forms) for c in (700106, 700109)} == others_before


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"typeform-signature": "sha256=AAAA"}, 401),
        ({"typeform-signature": "garbage"}, 401),
    ],
)
def test_unsigned_or_wrongly_signed_typeform_webhooks_are_refused(
    local: LocalMode, headers: dict[str, str], status: int
) -> None:
    body = (EVENTS / "webhooks" / "typeform" / "form-response.json").read_bytes()
    response = post(local, "typeform", body, headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert "ana.martin" not in json.dumps(problem)


def test_an_unknown_source_is_404_and_a_get_is_405(local: LocalMode) -> None:
    assert post(local, "jotform", b"{}", {}).status_code == 404
    assert local.endpoints is not None
    assert httpx.get(local.endpoints.webhook_url.format(source="generic")).status_code == 405


def test_a_generic_event_claiming_a_tally_id_does_not_suppress_the_real_tally_delivery(
    local: LocalMode,
) -> None:
    """Issue 11, as found: a generic event with id `tally-<eventId>` (and `source: tally`)
    was recorded as applied under that id, and the real Tally delivery, with the same id,
    was then skipped as a duplicate: its answers never reached Qomon."""
    assert local.endpoints is not None
    assert local.endpoints.webhook_secrets is not None
    secrets = local.endpoints.webhook_secrets
    hugo = 700121
    tally_body = (EVENTS / "webhooks" / "tally" / "form-response.json").read_bytes()
    event_id = "tally-" + json.loads(tally_body)["eventId"]
    claim = json.dumps(
        {
            "event_id": event_id,
            "source": "tally",
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": hugo},
            "tags": {"add": ["claimed-by-generic"]},
        }
    ).encode()
    patches = standin(local, "stats")["calls"].get("PATCH /contacts/{id}", 0)
    response = post(local, "generic", claim, sign("generic", secrets["generic"], claim))
    assert response.status_code == 202, response.text
    wait_for_processing(local, hugo, patches)

    patches = standin(local, "stats")["calls"].get("PATCH /contacts/{id}", 0)
    response = post(local, "tally", tally_body, sign("tally", secrets["tally"], tally_body))
    assert response.status_code == 202, response.text
    assert response.json()["event_ids"] == [event_id]
    wait_for_processing(local, hugo, patches)  # before the fix: never, a "duplicate"
    contact = standin(local, f"contacts/{hugo}")["contact"]
    assert contact["mobile"] == "+32491223344"  # the Tally answer, applied
    assert "claimed-by-generic" in json.dumps(contact["tags"])  # and the generic event's


def test_local_mode_refuses_what_sqs_refuses_before_queueing(local: LocalMode) -> None:
    """moto takes U+FFFF; SQS does not. The ingest refuses it itself, so local mode answers
    as AWS does: 400 naming the field, not 202 here and 503 in production."""
    assert local.endpoints is not None
    assert local.endpoints.webhook_secrets is not None
    body = json.dumps(
        {
            "event_id": "crm-uffff",
            "source": "generic",
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": ANA},
            "set": {"firstname": "Ana\uffff"},
        },
        ensure_ascii=False,
    ).encode()
    response = post(
        local, "generic", body, sign("generic", local.endpoints.webhook_secrets["generic"], body)
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["location"] == "set.firstname"
