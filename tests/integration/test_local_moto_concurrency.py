"""Local mode's AWS answers each request in a thread of its own: it must still give
DynamoDB's and SQS's own guarantees, or the benchmark and the soak measure moto's races
instead of qomon-sync (a lost booking on the shared bucket was a 429 Qomon answered)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import boto3
import pytest

from qomon_sync.adapters.qomon import Deadline
from qomon_sync.adapters.shared_bucket import SharedBucket
from qomon_sync_dev.local_mode import LocalMode, LocalOptions

pytestmark = pytest.mark.integration

THREADS, BOOKINGS = 8, 60


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions(paused=True)) as running:
        yield running


def test_concurrent_bookings_on_the_shared_bucket_are_never_lost(local: LocalMode) -> None:
    assert local.endpoints is not None
    endpoints = local.endpoints
    space = uuid.uuid4().hex
    start = threading.Barrier(THREADS)

    def book() -> None:
        # Each thread its own client and bucket, as each Lambda instance has.
        dynamodb = boto3.client(
            "dynamodb", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
        )
        # A clock stopped at 0 keeps every booking on the `tat + interval` update, and no
        # sleep makes them all race: tat must end as the sum of every interval.
        bucket = SharedBucket(
            dynamodb, endpoints.staging_table, space, clock=lambda: 0.0, sleep=lambda _: None
        )
        start.wait()
        for _ in range(BOOKINGS):
            bucket.reserve(5, Deadline.after(10**9))  # 5 tokens at 10/s: tat + 0.5

    workers = [threading.Thread(target=book) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    item = boto3.client(
        "dynamodb", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
    ).get_item(
        TableName=endpoints.staging_table,
        Key={"pk": {"S": f"space#{space}"}, "sk": {"S": "bucket"}},
        ConsistentRead=True,
    )
    assert float(item["Item"]["tat"]["N"]) == pytest.approx(THREADS * BOOKINGS * 0.5)
