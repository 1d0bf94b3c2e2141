"""Nothing an unauthenticated caller sends gets past authentication, and none of it is a
5xx or a traceback: every such request is a 4xx problem naming what is wrong (issue 11)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from qomon_sync.adapters.secrets import webhook_secret
from qomon_sync.application.ingest import Ingest
from qomon_sync.handlers.ingest import handle
from qomon_sync_dev.signing import signed_request, standard_webhooks
from tests.unit.ingest_harness import SECRETS, SOURCES, api_event, local_ingest, signed_event
from tests.unit.webhooks import example

BODIES = {
    "generic": example("generic/two-change-events.json"),
    "typeform": example("typeform/form-response.json"),
    "tally": example("tally/form-response.json"),
    "brevo": example("brevo/unsubscribed.json"),
}
SIGNATURE_HEADERS = {
    "generic": "webhook-signature",
    "typeform": "typeform-signature",
    "tally": "tally-signature",
    "brevo": "authorization",
}


@pytest.fixture(scope="module")
def ingest() -> Iterator[Ingest]:
    with local_ingest() as running:
        yield running


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The ERROR records (tracebacks included) logged during the test."""
    with caplog.at_level(logging.INFO):
        records: list[logging.LogRecord] = []
        yield records
        records.extend(r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info)


def generic_headers(**overrides: str) -> dict[str, str]:
    headers = standard_webhooks(SECRETS["generic"], BODIES["generic"], at=datetime.now(UTC))
    return {**headers, **overrides}


def answer(ingest: Ingest, source: str, headers: Any, body: Any = None) -> dict[str, Any]:
    response = handle(
        api_event(source, "POST", headers, BODIES[source].decode() if body is None else body),
        ingest,
    )
    response["problem"] = json.loads(response["body"])
    return response


@pytest.mark.parametrize(
    "stamp",
    [
        "999999999999",  # year 33658: no datetime holds it
        "253402300800",  # one second after 9999-12-31T23:59:59Z
        "99999999999999999999",
        "0",
        "-1",
        "+1700000000",
        "1e9",
        "1700000000.5",
        "\u0661\u0667" + "\u0660" * 8,  # Arabic-Indic digits: int() reads them; no signer does
        "1700000000\x00",
    ],
)
def test_a_timestamp_that_cannot_be_a_time_now_is_401_naming_the_header(
    ingest: Ingest, stamp: str, errors: list[logging.LogRecord]
) -> None:
    response = answer(ingest, "generic", generic_headers(**{"webhook-timestamp": stamp}))
    assert response["statusCode"] == 401, response["problem"]
    assert response["problem"]["errors"][0]["location"] == "webhook-timestamp"
    assert errors == []


def test_a_timestamp_that_cannot_be_a_time_even_if_signed_is_401(ingest: Ingest) -> None:
    """Signed by the holder of the secret with an absurd time: still never passes."""
    body = BODIES["generic"].decode()
    signature = Webhook(SECRETS["generic"]).sign("msg_far", datetime(9999, 1, 1, tzinfo=UTC), body)
    headers = {
        "webhook-id": "msg_far",
        "webhook-timestamp": str(int(datetime(9999, 1, 1, tzinfo=UTC).timestamp())),
        "webhook-signature": signature,
    }
    assert answer(ingest, "generic", headers)["statusCode"] == 401


HOSTILE_VALUES = [
    "é" * 50,  # not ASCII
    "\ud800",  # a lone surrogate (JSON escapes in the Lambda event can carry one)
    "v1,\udcff" + "A" * 42 + "=",
    "sha256=\x00\x01\x02",
    "Bearer \ud83d",
    "A" * 100_000,  # far more than API Gateway takes, in case a proxy lets it through
    "v1," + "A" * 44,  # base64 of the wrong length
    "sha256====",
    "Bearer " + "x" * 9000,
    "v1,!!!!",
    " ",
    "\t\r\n",
]


@pytest.mark.parametrize("source", sorted(BODIES))
@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_hostile_signature_headers_are_401_for_every_source(
    ingest: Ingest, source: str, value: str, errors: list[logging.LogRecord]
) -> None:
    headers = signed_event(source, BODIES[source])["headers"]
    headers[SIGNATURE_HEADERS[source]] = value
    response = answer(ingest, source, headers)
    assert response["statusCode"] == 401, response["problem"]
    assert errors == []


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp"])
@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_hostile_standard_webhooks_headers_are_401(
    ingest: Ingest, name: str, value: str, errors: list[logging.LogRecord]
) -> None:
    response = answer(ingest, "generic", generic_headers(**{name: value}))
    assert response["statusCode"] == 401, response["problem"]
    assert errors == []


@pytest.mark.parametrize("source", sorted(BODIES))
def test_a_body_that_is_not_text_is_400_before_any_check(
    ingest: Ingest, source: str, errors: list[logging.LogRecord]
) -> None:
    """A lone surrogate cannot be bytes anyone signed (API Gateway hands over text)."""
    headers = signed_event(source, BODIES[source])["headers"]
    response = answer(ingest, source, headers, body='{"a": "\ud800"}')
    assert response["statusCode"] == 400, response["problem"]
    assert response["problem"]["errors"][0]["location"] == "body"
    assert errors == []


@pytest.mark.parametrize("shape", [[("a", "b")], "headers", 42])
def test_headers_that_are_not_a_mapping_are_as_good_as_none(
    ingest: Ingest, shape: Any, errors: list[logging.LogRecord]
) -> None:
    response = answer(ingest, "typeform", shape)
    assert response["statusCode"] == 401, response["problem"]
    assert errors == []


def test_no_problem_repeats_what_was_sent(ingest: Ingest) -> None:
    marker = "ana.martin-secret-value"
    for source in BODIES:
        headers = signed_event(source, BODIES[source])["headers"]
        headers[SIGNATURE_HEADERS[source]] = marker
        assert marker not in answer(ingest, source, headers)["body"]


stamps = (
    st.integers(min_value=-(10**20), max_value=10**20).map(str)
    | st.text(alphabet="0123456789", min_size=1, max_size=25)
    | st.text(st.characters(codec=None), max_size=20)
    | st.integers(min_value=10**11, max_value=10**12 - 1).map(str)  # past the year 9999
)
header_values = (
    st.text(st.characters(codec=None), max_size=200)
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
    | st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode())
    | st.builds(lambda s: f"v1,{s}", st.text(max_size=60))
    | st.builds(lambda s: f"sha256={s}", st.text(max_size=60))
    | st.builds(lambda s: f"Bearer {s}", st.text(max_size=60))
)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    source=st.sampled_from(sorted(BODIES)),
    stamp=stamps,
    webhook_id=header_values,
    signature=header_values,
)
def test_any_unauthenticated_header_values_are_401(
    ingest: Ingest, source: str, stamp: str, webhook_id: str, signature: str
) -> None:
    headers = signed_event(source, BODIES[source])["headers"]
    headers[SIGNATURE_HEADERS[source]] = signature
    if source == "generic":
        headers["webhook-timestamp"] = stamp
        headers["webhook-id"] = webhook_id
    response = answer(ingest, source, headers)
    assert response["statusCode"] == 401, response["problem"]
    assert response["headers"]["content-type"] == "application/problem+json"


def test_a_genuine_delivery_still_passes(ingest: Ingest) -> None:
    for source, body in BODIES.items():
        response = handle(signed_event(source, body, msg_id=f"msg_{time.time_ns()}"), ingest)
        assert response["statusCode"] == 202, (source, response["body"])


@pytest.mark.parametrize(
    "stored",
    [{"typeform": "REPLACE_ME"}, {"typeform": ""}, {"typeform": 42}, {}, ["typeform"]],
    ids=["placeholder", "empty", "not-text", "absent", "not-an-object"],
)
def test_a_webhook_secret_not_filled_in_lets_nothing_through(
    ingest: Ingest, stored: Any, errors: list[logging.LogRecord]
) -> None:
    """The stack creates the webhook secrets as REPLACE_ME: until an operator fills a
    source's in, even a delivery signed with that very placeholder is refused."""
    name = f"unset-{time.time_ns()}"
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(stored))
    assert webhook_secret(name, "typeform") is None
    unset = replace(ingest, secret=lambda source: webhook_secret(name, source))
    signed = signed_request(
        SOURCES["typeform"], "REPLACE_ME", BODIES["typeform"], url="https://h/webhooks/typeform"
    )
    response = answer(unset, "typeform", dict(signed.headers))
    assert response["statusCode"] == 401, response["problem"]
    assert "no secret is configured" in response["problem"]["detail"]
    assert errors == []


def test_a_filled_in_webhook_secret_is_read_as_its_text(ingest: Ingest) -> None:
    name = f"set-{time.time_ns()}"
    stored = {"typeform": "s3cret", "tally": "REPLACE_ME"}
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(stored))
    assert webhook_secret(name, "typeform") == "s3cret"
    assert webhook_secret(name, "tally") is None
