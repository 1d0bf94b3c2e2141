"""The soak's pause phases (issue 20): a long Qomon outage, and a refused key, each longer
than the redrive policy's `maxReceiveCount` x the visibility timeout, under the benchmark
workload. `make soak` runs both after its faults phase (`--quick`: shorter ones).

Each phase: the workload is queued while Qomon fails (every call 503, or the key revoked
and a new one issued); the space must pause, Qomon must see only probes from then on, no
message may reach its redrive limit; then Qomon comes back (the outage ends, or the new
key is put in the secret: no command is run) and the queue must drain by itself to the
reference model's state, nothing lost, nothing dead-lettered but the workload's unknown
people, no note added twice.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import httpx

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync_dev.bench.workload import WorkloadSpec, build_workload
from qomon_sync_dev.local_lambda import take_dead_letters, wait_until_drained
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.seed import build_seed

NEW_KEY = "soak-new-key"


@dataclass(frozen=True)
class PauseSpec:
    events: int = 80
    contacts: int = 16
    seed: int = 21
    outage_s: float = 40.0
    visibility_s: int = 5
    max_receive_count: int = 5
    """5 x 5 s = 25 s: the outage outlasts every message's redrive limit."""
    timeout_s: float = 120.0


QUICK_PAUSE = PauseSpec(events=30, contacts=8, outage_s=15.0, visibility_s=3, max_receive_count=3)


class Receives:
    def __init__(self) -> None:
        self.most = 0

    def __call__(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.most = max(self.most, int(message["Attributes"]["ApproximateReceiveCount"]))


def run_pause_phase(kind: str, spec: PauseSpec) -> dict[str, Any]:
    """One phase (`outage` or `key_refused`): its figures, and its problems (none: held)."""
    from tests.soak import SoakSpec, _conservation

    workload = build_workload(
        build_seed()["contacts"],
        WorkloadSpec(events=spec.events, contacts=spec.contacts, seed=spec.seed),
    )
    options = LocalOptions(
        standin=StandinConfig(token="soak-token", refill=50.0),
        visibility_timeout_s=spec.visibility_s,
        max_receive_count=spec.max_receive_count,
        probe_every_s=1.0,
        pause_probe_first_s=2.0,
        pause_probe_max_s=10.0,
        pause_window_s=30.0,
        pause_hold_s=0.3,
    )
    with LocalMode(options) as local, contextlib.redirect_stdout(io.StringIO()):
        figures, letters, stored = _through(local, kind, spec, workload)
    report = _conservation(
        workload,
        letters,
        stored,
        Counter(),
        drained=figures.pop("drained"),
        wall_s=figures["outage_s"] + figures["drain_s"],
        crashes=figures.pop("crashes"),
        spec=SoakSpec(events=spec.events, malformed=0),
    )
    problems = list(report["problems"])
    reasons = report["outcomes"]["dead_letters_by_reason"]
    figures["dead_lettered"] = sum(n for code, n in reasons.items() if code != "contact_not_found")
    figures["doubled"] = sum(1 for p in problems if "note added" in p)
    figures["lost"] = len(problems) - figures["doubled"]
    if not figures["paused"]:
        problems.append("the space never paused")
    if figures["calls_after_trip"] != figures["probes"]:
        problems.append(f"{figures['calls_after_trip']} Qomon calls while paused, not probes only")
    if figures["most_receives"] >= spec.max_receive_count:
        problems.append("a message reached its redrive limit")
    if figures["dead_lettered"]:
        problems.append(f"{figures['dead_lettered']} events dead-lettered")
    figures["problems"] = problems
    return figures


def _through(
    local: LocalMode, kind: str, spec: PauseSpec, workload: Any
) -> tuple[dict[str, Any], list[dict[str, str]], dict[int, dict[str, Any]]]:
    assert local.endpoints is not None
    assert local.poller is not None
    assert local.pseudonyms is not None
    endpoints = local.endpoints
    qomon = endpoints.qomon_url
    sqs = boto3.client("sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region)
    receives = Receives()
    local.poller.before_invoke = receives
    back = _fault(local, kind)
    started = time.monotonic()
    for event in workload.events:
        sqs.send_message(
            QueueUrl=endpoints.changes_queue_url,
            MessageBody=json.dumps(event),
            MessageGroupId=ChangeEvent.model_validate(event).contact.group(local.pseudonyms),
            MessageDeduplicationId=event["event_id"],
        )
    paused = _wait(_pause, 30.0)
    at_trip = _calls(qomon)
    time.sleep(max(0.0, spec.outage_s - (time.monotonic() - started)))
    pause = _pause()
    probes = pause.probes if pause is not None else 0
    during = _calls(qomon) - at_trip
    returned = time.monotonic()
    back()
    deadline = returned + spec.timeout_s
    drained = wait_until_drained(sqs, endpoints.changes_queue_url, local, deadline)
    drained = drained and _wait(lambda: _pause() is None, max(1.0, deadline - time.monotonic()))
    drain_s = time.monotonic() - returned
    letters = take_dead_letters(sqs, endpoints.dead_letter_queue_url)
    stored = {
        cid: httpx.get(f"{qomon}/_standin/contacts/{cid}", timeout=10).json()["contact"]
        for cid in workload.expected
    }
    figures = {
        "phase": kind,
        "events": len(workload.events),
        "outage_s": round(returned - started, 1),
        "redrive_bound_s": spec.max_receive_count * spec.visibility_s,
        "paused": bool(paused),
        "probes": probes,
        "calls_after_trip": during,
        "most_receives": receives.most,
        "drain_s": round(drain_s, 1),
        "mapping_switches": len(local.aws.mapping_switches) if local.aws else 0,
        "told": [subject for subject, _ in local.told()],
        "drained": drained,
        "crashes": len(local.poller.errors),
    }
    return figures, letters, stored


def _fault(local: LocalMode, kind: str) -> Callable[[], None]:
    """Make Qomon fail as `kind` says; what brings it back."""
    assert local.endpoints is not None
    endpoints = local.endpoints
    config = f"{endpoints.qomon_url}/_standin/config"
    if kind == "outage":
        httpx.post(config, json={"outage": True}, timeout=10).raise_for_status()

        def qomon_back() -> None:
            httpx.post(config, json={"outage": False}, timeout=10).raise_for_status()

        return qomon_back
    httpx.post(config, json={"new_token": NEW_KEY}, timeout=10).raise_for_status()
    secrets = boto3.client(
        "secretsmanager", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
    )

    def new_key() -> None:  # an operator puts the new key in the secret; nothing is run
        secrets.put_secret_value(
            SecretId=endpoints.qomon_api_key_secret, SecretString=json.dumps({"api_key": NEW_KEY})
        )

    return new_key


def _pause() -> Any:
    from qomon_sync.handlers.sync import current_runtime

    pauses = current_runtime().pauses
    return pauses.get() if pauses is not None else None


def _calls(qomon: str) -> int:
    stats = httpx.get(f"{qomon}/_standin/stats", timeout=10).json()
    return sum(int(n) for n in stats["calls"].values())


def _wait(found: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    return None


def print_phases(phases: list[dict[str, Any]]) -> bool:
    """The phases' figures as a table; whether every one held."""
    rows = (
        ("outage length (s)", "outage_s"),
        ("redrive bound: receives x visibility (s)", "redrive_bound_s"),
        ("events", "events"),
        ("lost", "lost"),
        ("dead-lettered (but unknown people)", "dead_lettered"),
        ("applied twice (notes)", "doubled"),
        ("probes while paused", "probes"),
        ("Qomon calls while paused", "calls_after_trip"),
        ("highest receive count", "most_receives"),
        ("Qomon back to an empty queue (s)", "drain_s"),
    )
    print(f"\n{'pause phase':<42}" + "".join(f"{p['phase']:>14}" for p in phases))
    for label, key in rows:
        print(f"{label:<42}" + "".join(f"{p[key]!s:>14}" for p in phases))
    held = True
    for phase in phases:
        print(f"told ({phase['phase']}): {'; '.join(phase['told'])}")
        for problem in phase["problems"]:
            print(f"  PAUSE PHASE {phase['phase']}: {problem}")
            held = False
    return held
