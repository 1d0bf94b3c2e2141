"""`qomon-sync local` as a subprocess, for the tests that stop it, kill it and restart it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from qomon_sync_dev.local_lambda import queue_is_empty, take_dead_letters
from qomon_sync_dev.signing import standard_webhooks
from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalProcess:
    """One run of `qomon-sync local`; stdout and stderr go to files of their own."""

    def __init__(self, state_dir: Path, name: str, *extra: str) -> None:
        self.state_dir = state_dir
        self.stdout = state_dir.parent / f"{name}.out"
        self.stderr = state_dir.parent / f"{name}.err"
        self.endpoints_file = state_dir.parent / f"{name}-endpoints.json"
        self.args = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}

    def start(self, timeout: float = 40.0) -> LocalProcess:
        self.endpoints_file.unlink(missing_ok=True)
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "qomon_sync_dev.cli",
                    "local",
                    "--state-dir",
                    str(self.state_dir),
                    "--endpoints-file",
                    str(self.endpoints_file),
                    *self.args,
                ],
                stdout=out,
                stderr=err,
                cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"local mode exited early: {self.output()}")
            if self.endpoints_file.exists():
                self.endpoints = json.loads(self.endpoints_file.read_text(encoding="utf-8"))
                return self
            time.sleep(0.1)
        raise AssertionError(f"local mode did not start: {self.output()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=40)

    def ensure_gone(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8") + self.stderr.read_text(encoding="utf-8")

    def lines(self) -> list[str]:
        return self.output().splitlines()

    def outcomes(self) -> list[dict[str, Any]]:
        """The sync's one line per event ("event processed")."""
        return [
            json.loads(line)
            for line in self.stdout.read_text(encoding="utf-8").splitlines()
            if '"event processed"' in line
        ]

    # -- talking to it ---------------------------------------------------------------------

    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoints["aws_endpoint_url"],
            region_name=self.endpoints["region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def standin(self, path: str, payload: Any = None) -> Any:
        url = f"{self.endpoints['qomon_url']}/_standin/{path}"
        if payload is None:
            return httpx.get(url, timeout=10).json()
        return httpx.post(url, json=payload, timeout=10).json()

    def wait_until_drained(self, timeout: float) -> None:
        sqs, quiet_since = self.sqs(), None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if queue_is_empty(sqs, self.endpoints["changes_queue_url"]):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    return
            else:
                quiet_since = None
            time.sleep(0.2)
        raise AssertionError("the queue did not drain in time")

    def take_dead_letters(self) -> list[dict[str, str]]:
        return take_dead_letters(self.sqs(), self.endpoints["dead_letter_queue_url"])


@dataclass
class Delivery:
    """One signed generic webhook; a retry keeps its webhook-id, as a sender's does."""

    event: dict[str, Any]
    webhook_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    status: int | None = None

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    def send(self, http: httpx.Client, endpoints: dict[str, Any]) -> int | None:
        body = json.dumps(self.event).encode()
        secret = endpoints["webhook_secrets"]["generic"]
        headers = {
            "content-type": "application/json",
            **standard_webhooks(secret, body, msg_id=self.webhook_id),
        }
        try:
            response = http.post(
                endpoints["webhook_url"].format(source="generic"), content=body, headers=headers
            )
        except httpx.HTTPError:
            return None  # the server went away: not accepted, the sender will retry
        if response.status_code == 202:
            self.status = 202
        return response.status_code


def note_event(contact_id: int, text: str) -> dict[str, Any]:
    return {
        "event_id": f"durable-{uuid.uuid4().hex[:12]}",
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": contact_id},
        "notes": [{"data": text}],
    }


def poison_event(contact_id: int) -> dict[str, Any]:
    return {
        "event_id": f"poison-{uuid.uuid4().hex[:12]}",
        "source": "test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": contact_id},
        "fields": [{"field": "Couleur préférée", "value": "vert"}],
    }
