"""Local mode plays DynamoDB's TransactWriteItems at its own door (local_transactions),
through moto's single-item calls: moto's own copies every table it touches first, which
made the ledger's claims cost time in proportion to every event ever applied. The
outcome must stay DynamoDB's: all or nothing, one reason per item, the same refusals.
Checked through boto3 against local mode's endpoint, by cases and by random
transactions against a model of what DynamoDB documents."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qomon_sync_dev.local_aws import create_staging_table
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.local_transactions import Transaction

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions(paused=True)) as running:
        yield running


@pytest.fixture
def table(local: LocalMode) -> tuple[Any, str]:
    """A client of local mode's DynamoDB and a fresh table shaped like the staging table."""
    assert local.endpoints is not None
    db = boto3.client(
        "dynamodb",
        endpoint_url=local.endpoints.aws_endpoint_url,
        region_name=local.endpoints.region,
    )
    name = f"t-{uuid.uuid4().hex[:12]}"
    create_staging_table(db, name)
    return db, name


def _key(pk: str, sk: str = "a") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _put(name: str, pk: str, value: int, *, if_absent: bool = False) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": name, "Item": {**_key(pk), "v": {"N": str(value)}}}
    if if_absent:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Put": put}


def _items(db: Any, name: str) -> dict[str, int]:
    return {i["pk"]["S"]: int(i["v"]["N"]) for i in db.scan(TableName=name)["Items"]}


def test_a_transaction_writes_every_item(table: tuple[Any, str]) -> None:
    db, name = table
    db.transact_write_items(TransactItems=[_put(name, f"p{n}", n) for n in range(5)])
    assert _items(db, name) == {f"p{n}": n for n in range(5)}


def test_a_failed_condition_writes_nothing_and_gives_each_items_reason(
    table: tuple[Any, str],
) -> None:
    db, name = table
    db.put_item(TableName=name, Item={**_key("taken"), "v": {"N": "7"}})
    db.put_item(TableName=name, Item={**_key("kept"), "v": {"N": "1"}})
    clash = _put(name, "taken", 8, if_absent=True)
    clash["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    with pytest.raises(ClientError) as raised:
        db.transact_write_items(
            TransactItems=[
                _put(name, "new", 1),
                {
                    "Update": {
                        "TableName": name,
                        "Key": _key("kept"),
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": "2"}},
                    }
                },
                {"Delete": {"TableName": name, "Key": _key("gone-anyway")}},
                clash,
            ]
        )
    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    reasons = error["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "None", "None", "ConditionalCheckFailed"]
    assert reasons[3]["Item"]["v"] == {"N": "7"}
    # All or nothing: the put, the update and the delete before the clash are undone.
    assert _items(db, name) == {"taken": 7, "kept": 1}


def test_an_item_named_twice_is_refused_before_anything_is_written(
    table: tuple[Any, str],
) -> None:
    db, name = table
    with pytest.raises(ClientError) as raised:
        db.transact_write_items(TransactItems=[_put(name, "x", 1), _put(name, "x", 2)])
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in raised.value.response["Error"]["Message"]
    assert _items(db, name) == {}


def test_an_empty_transaction_is_refused_without_a_call() -> None:
    # boto3 refuses one before sending it; another client might not.
    def call(action: str, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise AssertionError(f"{action} called")

    status, answer = Transaction(call, lambda _: ("pk", "sk")).play({"TransactItems": []})
    assert status.startswith("400")
    assert answer["__type"].endswith("#ValidationException")


def test_a_condition_check_changes_nothing_and_can_cancel(table: tuple[Any, str]) -> None:
    db, name = table
    db.put_item(TableName=name, Item={**_key("here"), "v": {"N": "3"}})
    check = {
        "ConditionCheck": {
            "TableName": name,
            "Key": _key("here"),
            "ConditionExpression": "v = :v",
            "ExpressionAttributeValues": {":v": {"N": "3"}},
        }
    }
    db.transact_write_items(TransactItems=[check, _put(name, "other", 1)])
    assert _items(db, name) == {"here": 3, "other": 1}
    check["ConditionCheck"]["ExpressionAttributeValues"] = {":v": {"N": "4"}}
    with pytest.raises(ClientError) as raised:
        db.transact_write_items(TransactItems=[_put(name, "third", 1), check])
    assert [r["Code"] for r in raised.value.response["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
    ]
    assert _items(db, name) == {"here": 3, "other": 1}


def test_racing_claims_win_each_item_exactly_once(local: LocalMode, table: tuple[Any, str]) -> None:
    """The ledger's claim: conditional puts of many keys, several consumers at once."""
    db, name = table
    assert local.endpoints is not None
    endpoints = local.endpoints
    threads, keys = 6, [f"k{n}" for n in range(20)]
    won: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def claim(n: int) -> None:
        mine = boto3.client(
            "dynamodb", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
        )
        start.wait()
        pending = list(keys)
        while pending:
            try:
                mine.transact_write_items(
                    TransactItems=[_put(name, k, n, if_absent=True) for k in pending]
                )
            except ClientError as exc:
                reasons = exc.response["CancellationReasons"]
                lost = {k for k, r in zip(pending, reasons, strict=True) if r["Code"] != "None"}
                pending = [k for k in pending if k not in lost]
                continue
            won[n] = pending
            return

    workers = [threading.Thread(target=claim, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(k for mine in won for k in mine) == sorted(keys)
    stored = _items(db, name)
    assert all(stored[k] == n for n, mine in enumerate(won) for k in mine)


# -- random transactions against a model of DynamoDB's documented semantics ------------------

KEYS = ["a", "b", "c", "d"]
Op = tuple[str, str, int, bool]
_operation = st.tuples(
    st.sampled_from(["put", "update", "delete", "check"]),
    st.sampled_from(KEYS),
    st.integers(0, 3),
    st.booleans(),
)


def _entry(name: str, op: Op) -> dict[str, Any]:
    """A transaction item. Its condition, when `conditional`: absent, or `v < value`; a
    check's: present and `v >= value`. An update sets `v` to `value + 10`."""
    kind, key, value, conditional = op
    condition: dict[str, Any] = {}
    if conditional:
        condition = {
            "ConditionExpression": "attribute_not_exists(pk) OR v < :v",
            "ExpressionAttributeValues": {":v": {"N": str(value)}},
        }
    if kind == "put":
        item = {**_key(key), "v": {"N": str(value)}}
        return {"Put": {"TableName": name, "Item": item, **condition}}
    if kind == "update":
        values = {**condition.get("ExpressionAttributeValues", {}), ":n": {"N": str(value + 10)}}
        return {
            "Update": {
                "TableName": name,
                "Key": _key(key),
                "UpdateExpression": "SET v = :n",
                **condition,
                "ExpressionAttributeValues": values,
            }
        }
    if kind == "delete":
        return {"Delete": {"TableName": name, "Key": _key(key), **condition}}
    return {
        "ConditionCheck": {
            "TableName": name,
            "Key": _key(key),
            "ConditionExpression": "attribute_exists(pk) AND v >= :v",
            "ExpressionAttributeValues": {":v": {"N": str(value)}},
        }
    }


def _model(state: dict[str, int], transaction: list[Op]) -> Any:
    """What DynamoDB documents: an item named twice is refused; otherwise every condition
    is checked, and either every write is made or none, with one reason per item."""
    if len({key for _, key, _, _ in transaction}) < len(transaction):
        return "ValidationException", []
    reasons = []
    for kind, key, value, conditional in transaction:
        if kind == "check":
            holds = key in state and state[key] >= value
        else:
            holds = not conditional or key not in state or state[key] < value
        reasons.append("None" if holds else "ConditionalCheckFailed")
    if any(reason != "None" for reason in reasons):
        return "TransactionCanceledException", reasons
    for kind, key, value, _ in transaction:
        if kind == "put":
            state[key] = value
        elif kind == "update":
            state[key] = value + 10
        elif kind == "delete":
            state.pop(key, None)
    return "ok"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(transactions=st.lists(st.lists(_operation, min_size=1, max_size=4), min_size=1, max_size=6))
def test_random_transactions_end_as_dynamodb_documents(
    table: tuple[Any, str], transactions: list[list[Op]]
) -> None:
    db, name = table
    for item in db.scan(TableName=name)["Items"]:  # the fixture's table, once per example
        db.delete_item(TableName=name, Key={"pk": item["pk"], "sk": item["sk"]})
    model: dict[str, int] = {}
    for transaction in transactions:
        expected = _model(model, transaction)
        try:
            db.transact_write_items(TransactItems=[_entry(name, op) for op in transaction])
            answer: Any = "ok"
        except ClientError as exc:
            reasons = [r["Code"] for r in exc.response.get("CancellationReasons", [])]
            answer = (exc.response["Error"]["Code"], reasons)
        assert answer == expected
        assert _items(db, name) == model
