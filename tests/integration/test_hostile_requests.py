"""Every kind of hostile request (tests/integration/hostile.py) sent over a raw
connection to local mode's webhook endpoint gets a 4xx problem JSON: never a 2xx, never
a 5xx; only what goes beyond local mode's HTTP server's limits is refused by that server
itself, as API Gateway would. (The probe sent these until they became this test.)"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.standin.seed import build_seed
from tests.integration.hostile import HOSTILE_KINDS, HostileBuilder, hostile_figures, send_all
from tests.probe.logs import Personal
from tests.probe.traffic import TrafficBuilder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def answered() -> Iterator[tuple[dict[str, Any], list[str]]]:
    with LocalMode(LocalOptions(paused=True)) as local:
        assert local.endpoints is not None
        secrets = dict(local.endpoints.webhook_secrets or {})
        personal = Personal()
        traffic = TrafficBuilder(random.Random(2024), build_seed()["contacts"], personal)
        requests = HostileBuilder(traffic, secrets, personal).build()
        port = urlsplit(local.endpoints.webhook_url.format(source="x")).port or 80
        answers = send_all("127.0.0.1", port, requests, deadline=time.monotonic() + 120)
        problems: list[str] = []
        yield hostile_figures(answers, problems), problems


def test_every_hostile_request_gets_a_4xx_problem(
    answered: tuple[dict[str, Any], list[str]],
) -> None:
    hostile, problems = answered
    assert problems == []
    assert hostile["sent"] == 96
    assert set(hostile["by_kind"]) == set(HOSTILE_KINDS)
    assert hostile["accepted_2xx"] == hostile["answered_5xx"] == 0
    assert hostile["wrongly_answered"] == 0
    for answer in hostile["answers"]:
        assert 400 <= answer["status"] < 500, answer
    assert hostile["problem_json_4xx"] + hostile["refused_by_the_http_server"] == hostile["sent"]
    # Only what goes beyond local mode's HTTP server's limits is refused outside the ingest.
    assert hostile["refused_by_the_http_server"] == 2
