"""Thousands of generated requests at the ingest handler: it never raises, never answers a
5xx except 503 for a failing queue, and every error is problem JSON."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from qomon_sync.application.ingest import Ingest
from qomon_sync.handlers.ingest import handle
from tests.unit.ingest_harness import (
    GENERIC_SECRET,
    SOURCES,
    api_event,
    local_ingest,
    signed_event,
)
from tests.unit.webhooks import WEBHOOKS

ANSWERS = {200, 202, 400, 401, 404, 405, 413, 422}
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1500")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def ingest() -> Iterator[Ingest]:
    with local_ingest() as running:
        yield running


def assert_well_formed(response: dict[str, Any], *, queue_failing: bool = False) -> None:
    status = response["statusCode"]
    if currently_in_test_context():
        event(f"answered {status}")  # --hypothesis-show-statistics shows the paths reached
    assert status in (ANSWERS | {503} if queue_failing else ANSWERS), response
    body = json.loads(response["body"])
    if status == 202:
        assert body["accepted"] == len(body["event_ids"])
        return
    assert response["headers"]["content-type"] == "application/problem+json"
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    for error in body.get("errors", []):
        assert set(error) == {"location", "message"}


def _auth_headers() -> list[str]:
    """Every header a source's auth reads, from the registry's sources."""
    names = {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    for source in SOURCES.values():
        for key in ("header", "timestamp_header"):
            value = getattr(source.auth, key, None)
            if isinstance(value, str):
                names.add(value.lower())
    return sorted(names)


header_names = st.sampled_from(_auth_headers()) | st.text(max_size=12)
headers = st.none() | st.dictionaries(header_names, st.text(max_size=120), max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
bodies = (
    st.none()
    | st.text(max_size=600)
    | json_values.map(json.dumps)
    | st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())
)


@FUZZ
@given(
    source=st.sampled_from([*sorted(SOURCES), "nope", ""]) | st.text(max_size=15) | st.none(),
    method=st.sampled_from(["POST", "GET", "PUT", ""]),
    headers=headers,
    body=bodies | st.integers(),
    base64_encoded=st.booleans() | st.none(),
)
def test_arbitrary_requests_get_a_well_formed_answer(
    ingest: Ingest, source: Any, method: str, headers: Any, body: Any, base64_encoded: Any
) -> None:
    assert_well_formed(handle(api_event(source, method, headers, body, base64_encoded), ingest))


change_events = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=20),
        "source": st.sampled_from(["crm", "Bad Source", ""]),
        "occurred_at": st.sampled_from(
            ["2026-11-24T10:00:00Z", "yesterday", "2026-11-24T10:00:00"]
        ),
        "contact": st.fixed_dictionaries(
            {},
            optional={
                "id": st.integers(-2, 10**6),
                "mail": st.sampled_from(["ana@example.org", "nope", ""]),
            },
        ),
    },
    optional={
        "set": st.dictionaries(
            st.sampled_from(["firstname", "gender", "mail", "bogus"]), json_values, max_size=3
        ),
        "tags": json_values,
        "fields": st.lists(
            st.fixed_dictionaries(
                {"field": st.text(max_size=10) | st.integers(), "value": json_values}
            ),
            max_size=3,
        ),
    },
)


valid_events = st.fixed_dictionaries(
    {
        "event_id": st.text(
            alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_:", min_size=1, max_size=30
        ),
        "source": st.just("crm"),
        "occurred_at": st.just("2026-11-24T10:00:00Z"),
        "contact": st.sampled_from([{"id": 700103}, {"mail": "ana.martin@example.org"}]),
    },
    optional={
        "set": st.fixed_dictionaries(
            {}, optional={"firstname": st.sampled_from(["Ana", "Zoé"]), "black_list": st.booleans()}
        ),
        "tags": st.fixed_dictionaries({"add": st.lists(st.sampled_from(["a", "b"]), max_size=2)}),
    },
)
payloads = st.one_of(
    valid_events,
    st.lists(valid_events, min_size=1, max_size=5),
    change_events,
    st.lists(change_events, max_size=4),
    json_values,
)


@FUZZ
@given(payload=payloads, age_s=st.sampled_from([0, 0, 0, 400, -400]))
def test_correctly_signed_generic_deliveries_get_a_well_formed_answer(
    ingest: Ingest, payload: Any, age_s: int
) -> None:
    body = json.dumps(payload)
    stamp = int(time.time()) - age_s
    from datetime import UTC, datetime

    signature = Webhook(GENERIC_SECRET).sign("msg_fuzz", datetime.fromtimestamp(stamp, UTC), body)
    signed = {
        "webhook-id": "msg_fuzz",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    response = handle(api_event("generic", "POST", signed, body, False), ingest)
    assert_well_formed(response)
    if age_s:
        assert response["statusCode"] == 401  # stale or from the future: never passes


def _examples() -> dict[str, Any]:
    """Each source's first documented example, parsed as its source reads it."""
    found: dict[str, Any] = {}
    for name, source in SOURCES.items():
        fixtures = sorted((WEBHOOKS / name).glob("*"))
        if fixtures:
            parse = getattr(source, "parse", None)
            body = fixtures[0].read_bytes()
            found[name] = json.loads(body) if parse is None else parse(_request(name, body))
    return found


def _request(name: str, body: bytes) -> Any:
    from datetime import UTC, datetime

    from qomon_sync.sources.base import WebhookRequest

    return WebhookRequest(source=name, body=body, headers={}, received_at=datetime.now(UTC))


EXAMPLES = _examples()
FORM_SOURCES = {
    name for name, source in SOURCES.items() if getattr(source, "config", None) is not None
    and getattr(source.config, "body", "json") == "form"  # type: ignore[attr-defined]
}  # fmt: skip


def _encoded(name: str, payload: Any) -> bytes:
    if name not in FORM_SOURCES:
        return json.dumps(payload, ensure_ascii=False).encode()
    return urllib.parse.urlencode(list(_form_pairs(payload, ""))).encode()


def _form_pairs(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _form_pairs(item, f"{key}[{name}]" if key else str(name))
    elif isinstance(value, list):
        for item in value:
            yield from _form_pairs(item, f"{key}[]")
    else:
        yield key or "value", "" if value is None else str(value)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], tuple(rest), new)
    return copy


hostile_values = st.one_of(
    json_values,
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([1e308, -1e308, 999999999999, 253402300800, 2**63, "999999999999"]),
    st.text(st.characters(codec=None, exclude_categories=["Cs"]), max_size=40),
    st.sampled_from(["\ufffe", "\uffff", "a\u0000b", "\u00b2", "\u0661\u0662", " " * 3]),
    st.integers(min_value=1, max_value=30).map(lambda n: json.loads("[" * n + "]" * n)),
)


@FUZZ
@given(
    source=st.sampled_from(sorted(EXAMPLES)),
    choice=st.integers(min_value=0),
    new=hostile_values,
    deep=st.sampled_from([0, 0, 0, 40, 1000]),
)
def test_correctly_signed_deliveries_of_every_source_never_crash(
    ingest: Ingest, source: str, choice: int, new: Any, deep: int
) -> None:
    """Each source's example with one value replaced by something hostile (or buried
    `deep` levels down): a well-formed answer, never a 5xx."""
    payload = EXAMPLES[source]
    paths = _paths(payload)
    path = paths[choice % len(paths)]
    if deep:
        new = json.loads("[" * deep + "1" + "]" * deep)
    body = _encoded(source, _replaced(payload, path, new))
    response = handle(signed_event(source, body, msg_id=f"msg_{choice}"), ingest)
    assert_well_formed(response)
    if deep > 32 and source not in FORM_SOURCES:
        # A token inside the body cannot be checked in a body that cannot be read (401),
        # unless the deep value was the token itself, which the signer then writes.
        body_token = SOURCES[source].auth.scheme == "body-token"
        assert response["statusCode"] in ({202, 401} if body_token else {400})


class FailingQueue:
    def send_message_batch(self, **_: Any) -> Any:
        raise ConnectionError("SQS is unreachable")


def test_a_failing_queue_is_503_with_retry_after_so_the_sender_retries(ingest: Ingest) -> None:
    body = json.dumps(
        {
            "event_id": "e-503",
            "source": "crm",
            "occurred_at": "2026-11-24T10:00:00Z",
            "contact": {"id": 1},
            "set": {"firstname": "X"},
        }
    )
    from datetime import UTC, datetime

    signature = Webhook(GENERIC_SECRET).sign("msg_503", datetime.now(UTC), body)
    signed = {
        "webhook-id": "msg_503",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": signature,
    }
    failing = replace(ingest, sqs=FailingQueue())
    response = handle(api_event("generic", "POST", signed, body, False), failing)
    assert_well_formed(response, queue_failing=True)
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "30"
    accepted = handle(api_event("generic", "POST", signed, body, False), ingest)
    assert accepted["statusCode"] == 202
