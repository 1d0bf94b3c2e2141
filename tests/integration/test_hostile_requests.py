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
from tests.probe.logs import Capture, Personal, Scanner, ScanResult, read_lines
from tests.probe.traffic import TrafficBuilder, seed_personal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def answered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], list[str], ScanResult]]:
    log = tmp_path_factory.mktemp("hostile") / "captured.log"
    with LocalMode(LocalOptions(paused=True)) as local:
        assert local.endpoints is not None
        secrets = dict(local.endpoints.webhook_secrets or {})
        personal = Personal()
        seed = build_seed()["contacts"]
        seed_personal(personal, seed)
        personal.add("secret", *secrets.values())
        traffic = TrafficBuilder(random.Random(2024), seed, personal)
        requests = HostileBuilder(traffic, secrets, personal).build()
        port = urlsplit(local.endpoints.webhook_url.format(source="x")).port or 80
        # Every line the refusals log, by any path, is kept and scanned (as the probe did
        # when it sent these): the refusal paths are the likeliest to quote what came in.
        capture = Capture(log).start()
        try:
            answers = send_all("127.0.0.1", port, requests, deadline=time.monotonic() + 120)
        finally:
            capture.stop()
        problems: list[str] = []
        yield hostile_figures(answers, problems), problems, Scanner(personal).scan(read_lines(log))


def test_every_hostile_request_gets_a_4xx_problem(
    answered: tuple[dict[str, Any], list[str], ScanResult],
) -> None:
    hostile, problems, _ = answered
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


def test_no_line_the_refusals_log_holds_personal_data_or_a_secret(
    answered: tuple[dict[str, Any], list[str], ScanResult],
) -> None:
    _, _, scan = answered
    assert scan.records > 0  # the refusals were logged, and the capture saw them
    assert scan.lines_with_hits == 0, dict(scan.hits_by_kind)
