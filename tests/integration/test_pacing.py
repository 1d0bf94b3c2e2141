"""A client paced by its token bucket meets no 429 from a tight Qomon bucket."""

from __future__ import annotations

import httpx
import pytest

from qomon_sync_dev.pacing_check import run_pacing_check
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

pytestmark = pytest.mark.integration


def test_paced_mixed_traffic_meets_no_429() -> None:
    # The refill is high to keep the suite quick; `make pacing-check` runs burst 20 / 5 per s.
    report = run_pacing_check(burst=20, refill=100, calls=120)
    assert report.calls == 120
    assert report.gets > 0
    assert report.patches > 0
    assert report.tokens_server > 20  # more than the burst: pacing had to wait for refills
    assert report.tokens_client == report.tokens_server
    assert report.rate_limited_server == 0
    assert report.rate_limited_client == 0


def test_the_same_traffic_unpaced_does_meet_429s() -> None:
    """The negative control: the bucket is tight enough that pacing matters."""
    with StandinServer(StandinConfig(token="t", burst=20, refill=1)) as server:
        headers = {"Authorization": "Bearer t"}
        statuses = [
            httpx.patch(
                f"{server.url}/contacts/700103",
                json={"data": {"contact": {"firstname": "X"}}},
                headers=headers,
            ).status_code
            for _ in range(10)
        ]
    assert 429 in statuses
