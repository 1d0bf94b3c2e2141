"""What a source parses is bounded: nesting depth, number of values, numbers that are
numbers. A signed body beyond them is a 400 naming the problem, for every source, never a
RecursionError turned 503 (issue 11)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from qomon_sync.application.ingest import Ingest
from qomon_sync.handlers.ingest import handle
from qomon_sync.sources.base import BadPayload
from qomon_sync.sources.payload import MAX_DEPTH, MAX_VALUES, parse_json
from tests.unit.ingest_harness import local_ingest, signed_event
from tests.unit.webhooks import example_json

SOURCES = ["generic", "typeform", "tally", "brevo"]


@pytest.fixture(scope="module")
def ingest() -> Iterator[Ingest]:
    with local_ingest() as running:
        yield running


def nested(depth: int, inner: str = "1") -> str:
    """`depth` levels: lists and objects alternating, `inner` at the bottom."""
    text = inner
    for level in range(depth):
        text = f'{{"k": {text}}}' if level % 2 else f"[{text}]"
    return text


def refusal(body: bytes | str) -> BadPayload:
    with pytest.raises(BadPayload) as caught:
        parse_json(body.encode() if isinstance(body, str) else body)
    return caught.value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_beyond_the_limit_is_refused_naming_the_body(depth: int) -> None:
    error = refusal(nested(depth))
    assert error.field == "body"
    assert f"nested deeper than {MAX_DEPTH} levels" in error.detail


def test_nesting_up_to_the_limit_is_read() -> None:
    assert parse_json(nested(MAX_DEPTH).encode()) is not None


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = json.dumps({"note": "[" * 5000 + "{" * 5000, "q": 'a "quoted" \\ [ ] { }'})
    assert parse_json(body.encode())["note"].startswith("[[[")


def test_an_unclosed_deep_body_is_refused_without_a_crash() -> None:
    assert refusal("[" * 5000).field == "body"


def test_more_values_than_the_limit_are_refused() -> None:
    error = refusal(json.dumps([0] * MAX_VALUES))  # the list itself is one more
    assert error.field == "body"
    assert f"more than {MAX_VALUES} values" in error.detail


def test_values_up_to_the_limit_are_read() -> None:
    assert len(parse_json(json.dumps([0] * (MAX_VALUES - 1)).encode())) == MAX_VALUES - 1


def test_keys_and_values_of_objects_count() -> None:
    body = json.dumps({str(i): i for i in range(MAX_VALUES)})
    assert "values" in refusal(body).detail


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" * 5000])
def test_a_number_no_float_or_int_holds_is_refused(number: str) -> None:
    error = refusal(f'{{"n": {number}}}')
    assert error.field == "body"
    assert "number" in error.detail


def _example(source: str) -> dict[str, Any]:
    """The source's documented example, as one JSON object."""
    if source == "generic":
        return dict(example_json("generic/two-change-events.json")[0])
    name = {"typeform": "typeform/form-response.json", "tally": "tally/form-response.json"}
    return dict(example_json(name.get(source, "brevo/unsubscribed.json")))


def with_extra(source: str, extra: str) -> bytes:
    """The example with one more key, `extra`, holding the JSON text `extra`."""
    return (json.dumps(_example(source))[:-1] + f', "extra": {extra}}}').encode()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000])
def test_a_signed_body_nested_too_deep_is_400_for_every_source(
    ingest: Ingest, source: str, depth: int
) -> None:
    response = handle(signed_event(source, with_extra(source, nested(depth))), ingest)
    problem = json.loads(response["body"])
    assert response["statusCode"] == 400, problem
    assert problem["errors"] == [{"location": "body", "message": problem["detail"]}]
    assert "nested deeper" in problem["detail"]


@pytest.mark.parametrize("source", SOURCES)
def test_a_signed_body_with_too_many_values_is_400_for_every_source(
    ingest: Ingest, source: str
) -> None:
    too_many = json.dumps([0] * MAX_VALUES)
    response = handle(signed_event(source, with_extra(source, too_many)), ingest)
    problem = json.loads(response["body"])
    assert response["statusCode"] == 400, problem
    assert problem["errors"][0]["location"] == "body"
    assert "values" in problem["detail"]
