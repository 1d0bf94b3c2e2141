"""`sam local generate-event sqs receive-message` output is accepted by the handler."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from qomon_sync_dev.local_lambda import LocalContext
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from tests.conftest import load_event

pytestmark = pytest.mark.integration


@pytest.fixture
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions()) as running:
        assert running.poller is not None
        running.poller.pause()  # this test invokes the handler itself
        yield running


def test_the_handler_accepts_sams_generated_sqs_event(local: LocalMode) -> None:
    from qomon_sync.handlers.sync import handler

    assert local.endpoints is not None
    event = load_event("sqs/receive-message.json")
    change = json.loads(event["Records"][0]["body"])
    response = handler(event, LocalContext(60))
    assert response == {"batchItemFailures": []}
    stored = httpx.get(f"{local.endpoints.qomon_url}/_standin/contacts/700103").json()["contact"]
    assert stored["mobile"] == change["set"]["mobile"]
    assert {"name": "bénévole"} in stored["tags"]
