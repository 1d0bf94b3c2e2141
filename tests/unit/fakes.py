"""Test doubles shared by the unit tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@contextlib.contextmanager
def offline_aws() -> Iterator[None]:
    """moto in-process, with fake credentials and no endpoint that could leave the process."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_DEFAULT_REGION": "eu-west-3",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            yield


@contextlib.contextmanager
def staging_table_in_moto(table: str) -> Iterator[Any]:
    """A DynamoDB client on moto holding one table shaped as the staging table (pk, sk)."""
    # Imported here: FakeClock needs none of local mode.
    from qomon_sync_dev.local_aws import create_staging_table

    with offline_aws():
        client = boto3.client("dynamodb")
        create_staging_table(client, table)
        yield client
