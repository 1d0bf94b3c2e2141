"""Where the contract tests run: the stand-in over real HTTP, always; a real Qomon space
too when QOMON_SANDBOX_URL and QOMON_SANDBOX_TOKEN are set (skipped, and said so, else).

Tests that must provoke a fault or look behind the API (`/_standin/...`) need the
stand-in's control surface; against a real space they are skipped with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from qomon_sync.adapters.qomon import Deadline, QomonClient, RetryPolicy
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

TOKEN = "contract-test-token"


class StandinControl:
    """The stand-in's inspection and fault surface, outside Qomon's paths."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10)

    def stored(self, contact_id: int) -> dict[str, Any]:
        response = self._http.get(f"/_standin/contacts/{contact_id}")
        response.raise_for_status()
        return dict(response.json()["contact"])

    def stats(self) -> dict[str, Any]:
        return dict(self._http.get("/_standin/stats").raise_for_status().json())

    def configure(self, **changes: Any) -> None:
        self._http.post("/_standin/config", json=changes).raise_for_status()

    def schedule(self, **fault: Any) -> None:
        self._http.post("/_standin/faults", json=fault).raise_for_status()

    def reset(self) -> None:
        self._http.post("/_standin/reset").raise_for_status()


@dataclass
class Target:
    name: str
    url: str
    token: str
    control: StandinControl | None

    def client(self, token: str | None = None, **kwargs: Any) -> QomonClient:
        kwargs.setdefault("read_timeout_s", 5.0)
        kwargs.setdefault("retry", RetryPolicy(max_attempts=5, base_backoff_s=0.05))
        return QomonClient(self.url, token or self.token, **kwargs)

    def require_control(self) -> StandinControl:
        if self.control is None:
            pytest.skip(f"{self.name}: needs the stand-in's control surface to provoke this")
        return self.control


@pytest.fixture(scope="session")
def standin() -> Iterator[StandinServer]:
    with StandinServer(StandinConfig(token=TOKEN, random_seed=7)) as server:
        yield server


@pytest.fixture(params=["standin", "sandbox"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "sandbox":
        url, token = os.environ.get("QOMON_SANDBOX_URL"), os.environ.get("QOMON_SANDBOX_TOKEN")
        if not (url and token):
            pytest.skip(
                "QOMON_SANDBOX_URL and QOMON_SANDBOX_TOKEN are not set: no real Qomon space"
            )
        yield Target("sandbox", url, token, None)
        return
    server: StandinServer = request.getfixturevalue("standin")
    control = StandinControl(server.url)
    control.reset()
    control.configure(
        naming="current",
        retry_after="seconds",
        forms_v1=True,
        include_deleted=False,
        burst=100,
        refill=10.0,
        search_max_conditions=250,
    )
    yield Target("standin", server.url, TOKEN, control)


@pytest.fixture
def deadline() -> Deadline:
    return Deadline.after(30)
