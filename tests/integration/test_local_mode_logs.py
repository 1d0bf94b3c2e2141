"""Local mode runs the ingest and the sync handlers as threads of one process, sharing
Powertools' Logger and Metrics: its output must still be one JSON line per record, each
naming its own function, with each function's metrics in its own EMF blobs."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from qomon_sync_dev.local_lambda import INGEST_FUNCTION, SYNC_FUNCTION
from tests.integration.local_process import Delivery, LocalProcess, note_event

pytestmark = pytest.mark.integration

CONTACTS = [700103, 700106, 700109, 700112, 700115, 700118, 700121, 700124, 700127, 700130]
INGEST_MESSAGES = {"webhook accepted", "webhook refused", "queue unavailable"}
SYNC_MESSAGES = {"event processed", "events left for redelivery"}
INGEST_METRICS = {"Webhooks202", "Webhooks400", "Webhooks401", "EventsEnqueued"}


def test_ingest_and_sync_at_once_write_whole_json_lines_each_with_its_function(
    tmp_path: Path,
) -> None:
    local = LocalProcess(
        tmp_path / "state", "logs", "--webhook-port", "0", "--aws-port", "0", "--qomon-port", "0"
    ).start()
    deliveries = [
        Delivery(note_event(cid, f"log line note {n} for {cid}"))
        for n in range(20)
        for cid in CONTACTS
    ]
    try:
        # A fast Qomon: the sync works while the webhooks keep coming.
        local.standin("config", {"refill": 2000.0, "burst": 2000})

        def send(share: list[Delivery]) -> None:
            with httpx.Client(timeout=15) as http:
                for delivery in share:
                    delivery.send(http, local.endpoints)

        senders = [
            threading.Thread(target=send, args=(deliveries[i::6],), daemon=True) for i in range(6)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=60)
        assert all(d.status == 202 for d in deliveries)
        local.wait_until_drained(timeout=60)
        assert local.terminate() == 0
    finally:
        local.ensure_gone()

    records: list[dict[str, Any]] = []
    broken = []
    for stream in (local.stdout, local.stderr):
        for line in stream.read_text(encoding="utf-8").splitlines():
            if line.startswith("qomon-sync local mode"):  # its own words, not a log record
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                broken.append(line[:300])
    assert not broken, f"{len(broken)} lines are not one JSON record each: {broken[:3]}"

    misnamed = []
    emf = {"ingest": 0, "sync": 0}
    for record in records:
        message = record.get("message")
        if message in INGEST_MESSAGES and record.get("function_name") != INGEST_FUNCTION:
            misnamed.append(record)
        if message in SYNC_MESSAGES and record.get("function_name") != SYNC_FUNCTION:
            misnamed.append(record)
        if "_aws" in record:
            names = {m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            ingest = bool(names & INGEST_METRICS)
            assert not ingest or names <= INGEST_METRICS, f"metrics of both functions: {names}"
            emf["ingest" if ingest else "sync"] += 1
    assert not misnamed, f"{len(misnamed)} records name the wrong function: {misnamed[:2]}"
    accepted = sum(r.get("message") == "webhook accepted" for r in records)
    processed = sum(r.get("message") == "event processed" for r in records)
    assert accepted == len(deliveries)
    assert processed == len(deliveries)
    assert emf["ingest"] == len(deliveries)  # one blob per ingest invocation
    assert emf["sync"] > 0
    print(
        f"{len(records)} records, all whole JSON lines: {accepted} accepted, "
        f"{processed} processed, EMF blobs {emf}"
    )
