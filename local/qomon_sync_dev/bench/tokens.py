"""Tokens, throughput and bucket use: our pipeline against the per-record approach.

Both strategies run the same seeded workload against a fresh stand-in configured like
Qomon (burst 100, refill 10 tokens/s, multiplied by the same time scale for both):

- `pipeline`: qomon-sync as shipped, in local mode (FIFO queue, the sync handler fed by
  N consumer processes playing the event source mapping, as N Lambda instances would),
  with the whole workload queued as a backlog first;
- `per-record`: what existing connectors do, in the same harness: for each event, find the
  contact, GET it, overlay the change, PATCH it, one at a time, no coalescing, no skipping.

Each run's final Qomon state is checked against the workload's reference model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
import httpx

from qomon_sync.adapters.qomon import Deadline, QomonClient, QomonNotFound
from qomon_sync.adapters.qomon.client import SEARCH_GROUP_SIZE
from qomon_sync.adapters.qomon.port import fetch_forms
from qomon_sync.domain.assembly import (
    AssemblyPolicy,
    Rejected,
    Replace,
    Unchanged,
    assemble_contact,
)
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_shape import ShapePolicy, to_write_shape
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync_dev.bench.consumers import Consumers
from qomon_sync_dev.bench.latency import backlog_latencies, summarise
from qomon_sync_dev.bench.workload import Workload, state_of
from qomon_sync_dev.local_lambda import queue_is_empty, take_dead_letters
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

BURST, REFILL = 100, 10.0
TOKEN = "bench-token"
POLICY = AssemblyPolicy(
    shape=ShapePolicy(
        passthrough=frozenset({"address.citycode", "external_id", "membership_number"})
    )
)


@dataclass
class StrategyRun:
    strategy: str
    events: int
    tokens: int
    tokens_per_event: float
    floor_tokens: int
    ratio_to_floor: float
    calls: dict[str, int]
    rate_limited: int
    dead_letters: int
    lost: int
    wall_s: float
    budget_s: float
    """What the token bucket alone forces: (tokens - burst) / refill."""
    bucket_use: float
    """budget_s / wall_s: the share of the refill rate spent while there was a backlog."""
    state_mismatches: list[str]
    time_scale: float = 1.0
    consumers: int = 1
    returned: int = 0
    """Messages an invocation left on the queue (for want of time or tokens, or a failure)."""
    deferred: int = 0
    """Flushes put off for want of time or tokens (a marker queued, nothing sent back)."""
    markers: int = 0
    held_markers: int = 0
    """Flush markers held on the queue while their contact waited for an e-mail search."""
    staged_left: int = 0
    """Events still staged at the end: stranded (must be 0)."""
    crashes: int = 0
    lookup_floor_tokens: int = 0
    """The floor with the lookups any client must make and the forms' one load
    (workload.lookup_floor): above it is only what is ours."""
    ratio_to_lookup_floor: float = 0.0
    searches_per_email: float = 0.0
    tokens_per_changed_contact: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    """From each event's queueing (its webhook's 202) to its contact's last write, in s
    (bench.latency): count, p50_s, p95_s, max_s."""


def _config(scale: float) -> StandinConfig:
    return StandinConfig(token=TOKEN, burst=BURST, refill=REFILL * scale)


def _finish(
    strategy: str,
    workload: Workload,
    stats: dict[str, Any],
    stored: dict[int, dict[str, Any]],
    *,
    dead_letters: int,
    accounted: int,
    wall_s: float,
    scale: float,
) -> StrategyRun:
    tokens = int(stats["tokens_spent"])
    floor = workload.token_floor()
    lookup_floor = workload.lookup_floor(SEARCH_GROUP_SIZE)
    mismatches = []
    for cid, expected in workload.expected.items():
        if cid not in stored:  # a new person whose events changed nothing: never created
            if expected != workload.initial[cid] or workload.notes.get(cid):
                mismatches.append(f"contact {cid} never created")
            continue
        actual = state_of(stored[cid])
        for key in sorted(expected):
            if actual.get(key) != expected[key]:
                mismatches.append(f"contact {cid} {key}")
        notes = [n["data"] for n in stored[cid].get("notes", [])]
        for note in workload.notes.get(cid, []):
            if notes.count(note) != 1:
                mismatches.append(f"contact {cid} note {note!r} x{notes.count(note)}")
    budget = max(0.0, tokens - BURST) / (REFILL * scale)
    return StrategyRun(
        time_scale=scale,
        strategy=strategy,
        events=len(workload.events),
        tokens=tokens,
        tokens_per_event=round(tokens / len(workload.events), 3),
        floor_tokens=floor,
        ratio_to_floor=round(tokens / floor, 3),
        calls=dict(stats["calls"]),
        rate_limited=int(stats["rate_limited"]),
        dead_letters=dead_letters,
        lost=len(workload.events) - accounted,
        wall_s=round(wall_s, 2),
        budget_s=round(budget, 2),
        bucket_use=round(budget / wall_s, 3) if wall_s else 0.0,
        state_mismatches=mismatches,
        lookup_floor_tokens=lookup_floor,
        ratio_to_lookup_floor=round(tokens / lookup_floor, 3),
        searches_per_email=round(
            int(stats["calls"].get("POST /search", 0)) / max(1, len(workload.mails)), 3
        ),
        tokens_per_changed_contact=round(tokens / max(1, len(workload.changed)), 2),
    )


def run_pipeline(
    workload: Workload, *, scale: float, consumers: int = 1, timeout_s: float = 1800
) -> StrategyRun:
    # Visibility above the function timeout, as AWS requires: a batch still in a
    # consumer's hands never comes back to another one.
    options = LocalOptions(
        standin=_config(scale), visibility_timeout_s=90, function_timeout_s=60, paused=True
    )
    with LocalMode(options) as local:
        assert local.endpoints is not None
        endpoints = local.endpoints
        sqs = boto3.client(
            "sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
        )
        assert local.pseudonyms is not None
        queued_at = _queue_backlog(sqs, endpoints.changes_queue_url, workload, local.pseudonyms)
        with Consumers(endpoints, consumers, function_timeout_s=60) as running:
            started = time.monotonic()
            running.start()
            _wait_until_drained(sqs, endpoints.changes_queue_url, started + timeout_s)
            wall = time.monotonic() - started
            report = running.stop()
        dead = len(take_dead_letters(sqs, endpoints.dead_letter_queue_url))
        stats = httpx.get(f"{endpoints.qomon_url}/_standin/stats", timeout=10).json()
        stored = _everyone(endpoints.qomon_url, workload)
        latencies = backlog_latencies(
            workload.events, queued_at, stats["written_at"], _ids_by_mail(endpoints.qomon_url)
        )
        remaining = sqs.get_queue_attributes(
            QueueUrl=endpoints.changes_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        staged_left = _staged_left(endpoints)
    # Every event neither left on the queue nor stranded in the staging table was applied,
    # found unchanged, or dead-lettered (the final state checks the first two).
    accounted = len(workload.events) - int(remaining) - staged_left
    run = _finish(
        "pipeline",
        workload,
        stats,
        stored,
        dead_letters=dead,
        accounted=accounted,
        wall_s=wall,
        scale=scale,
    )
    counts = report.counts
    run.consumers = consumers
    # A flush marker held hidden while its contact waits for an e-mail search is reported
    # to SQS as a batch item failure, by design: it is not sent back for want of anything.
    run.held_markers = int(counts.get("FlushMarkersHeld", 0))
    run.returned = report.returned - run.held_markers
    run.deferred = int(counts.get("FlushesDeferred", 0))
    run.markers = int(counts.get("FlushMarkersSent", 0))
    run.staged_left = staged_left
    run.crashes = report.crashes
    run.latency = summarise(latencies).as_dict()
    return run


def _queue_backlog(
    sqs: Any, queue_url: str, workload: Workload, pseudonyms: Pseudonyms
) -> list[float]:
    """Queue every event (as the ingest would, in order); when each was queued (Unix s)."""
    queued_at: list[float] = []
    for start in range(0, len(workload.events), 10):
        chunk = workload.events[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(event),
                    "MessageGroupId": ChangeEvent.model_validate(event).contact.group(pseudonyms),
                    "MessageDeduplicationId": event["event_id"],
                }
                for i, event in enumerate(chunk)
            ],
        )
        queued_at += [time.time()] * len(chunk)
    return queued_at


def _wait_until_drained(sqs: Any, queue_url: str, deadline: float) -> None:
    """Nothing waiting and nothing in a consumer's hands, three polls in a row (a staged
    contact always has its flush marker on the queue, so staged events keep it busy)."""
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        quiet = quiet + 1 if queue_is_empty(sqs, queue_url) else 0
        time.sleep(0.05)


def _staged_left(endpoints: Any) -> int:
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
    )
    items = dynamodb.scan(TableName=endpoints.staging_table)["Items"]
    return sum(1 for i in items if i["sk"]["S"].startswith("event#"))


def run_per_record(workload: Workload, *, scale: float) -> StrategyRun:
    """Its tokens do not depend on the time scale (no coalescing, no retries when paced):
    the benchmark may run it faster than the pipeline's real-rate headline."""
    with StandinServer(_config(scale)) as server, QomonClient(server.url, TOKEN) as client:
        forms = fetch_forms(client, Deadline.after(60))
        started = time.monotonic()
        dead = accounted = 0
        for raw in workload.events:
            event = ChangeEvent.model_validate(raw)
            deadline = Deadline.after(60)
            accounted += 1
            if event.contact.id is not None:
                contact_id = event.contact.id
            else:
                matches = client.find_contacts_by_email(event.contact.mail or "", deadline=deadline)
                if not matches and event.if_missing == "create":
                    _create(client, forms, event, deadline)
                    continue
                if len(matches) != 1:
                    dead += 1
                    continue
                contact_id = int(matches[0]["id"])
            try:
                current = client.get_contact(contact_id, deadline=deadline)
            except QomonNotFound:
                dead += 1
                continue
            outcome = assemble_contact(current, forms, [event], POLICY)
            if isinstance(outcome, Rejected):
                dead += 1
                continue
            # No skipping: the per-record approach always writes, changed or not.
            body = (
                outcome.contact
                if isinstance(outcome, Replace)
                else to_write_shape(current, forms, POLICY.shape)
            )
            client.replace_contact(contact_id, body, deadline=deadline)
        wall = time.monotonic() - started
        stats = httpx.get(f"{server.url}/_standin/stats", timeout=10).json()
        stored = _everyone(server.url, workload)
    # The forms are loaded once before the clock starts, as the pipeline loads them once.
    return _finish(
        "per-record",
        workload,
        stats,
        stored,
        dead_letters=dead,
        accounted=accounted,
        wall_s=wall,
        scale=scale,
    )


def _create(client: QomonClient, forms: Any, event: ChangeEvent, deadline: Deadline) -> None:
    """A person Qomon lacks, whose event asks to be created: created with its changes (an
    event that changes nothing creates nobody, as in the pipeline)."""
    outcome = assemble_contact({"mail": event.contact.mail}, forms, [event], POLICY)
    if isinstance(outcome, Replace):
        client.create_contact(outcome.contact, deadline=deadline)
    elif not isinstance(outcome, Unchanged):  # pragma: no cover - the workload is valid
        raise AssertionError(outcome)


def _everyone(qomon_url: str, workload: Workload) -> dict[int, dict[str, Any]]:
    """The stored contact of each person of the model: by id, or, for a new person, by the
    e-mail it was created with (absent: never created)."""
    stored = {cid: _stored(qomon_url, cid) for cid in workload.expected if cid > 0}
    if workload.new_people:
        listing = httpx.get(f"{qomon_url}/_standin/contacts", timeout=30).json()["contacts"]
        by_mail = {str(c.get("mail") or "").casefold(): c for c in listing}
        for cid, mail in workload.new_people.items():
            if mail in by_mail:
                stored[cid] = _stored(qomon_url, int(by_mail[mail]["id"]))
    return stored


def _ids_by_mail(qomon_url: str) -> dict[str, int]:
    listing = httpx.get(f"{qomon_url}/_standin/contacts", timeout=30).json()["contacts"]
    return {str(c["mail"]).casefold(): int(c["id"]) for c in listing if c.get("mail")}


def _stored(qomon_url: str, contact_id: int) -> dict[str, Any]:
    return dict(
        httpx.get(f"{qomon_url}/_standin/contacts/{contact_id}", timeout=10).json()["contact"]
    )


def as_dict(run: StrategyRun) -> dict[str, Any]:
    return asdict(run)
