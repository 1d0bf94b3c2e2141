"""The time a person waits: from a webhook's 202 to its contact written in Qomon.

The stand-in notes when it answers each write of a contact (`written_at` in its stats).

- **Idle**: local mode as shipped (the ingest behind its HTTP API, the queue, one poller
  playing the event source mapping), at Qomon's refill rate, fed one signed generic
  delivery every few seconds, half naming the person by Qomon id and half by e-mail. A
  delivery's latency runs from its 202 to the first write of its contact after it. What
  bounds it: the poller's receive (local mode polls without waiting; Lambda's event source
  mapping long-polls), the staging and the flush of a batch that is not full (no marker
  round trip), a search for an e-mail not remembered, the GET and the PATCH.
- **Backlog**: the benchmark's workload queued at once (the ingest answers 202 right after
  its message is on the queue, so the queueing is the 202) and drained by one consumer.
  An event's latency runs from its queueing to its contact's last write (its contact
  reaching the state the backlog leaves it in; an upper bound for the events folded into
  an earlier write). What bounds it: tokens (every contact's GET and PATCH at 10 tokens/s,
  in queue order), the flush markers (a contact's backlog is applied when its last batch,
  or its marker, comes round) and, for people named by an e-mail not remembered, the
  marker round that looks them up together.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.signing import sign
from qomon_sync_dev.standin.config import StandinConfig

TOKEN = "bench-token"
IDLE_DELIVERIES = 20
IDLE_GAP_S = 3.0


@dataclass(frozen=True)
class Latency:
    count: int
    p50_s: float
    p95_s: float
    max_s: float

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "p50_s": self.p50_s, "p95_s": self.p95_s, "max_s": self.max_s}


def summarise(samples: Sequence[float]) -> Latency:
    ordered = sorted(samples)
    if not ordered:
        return Latency(0, 0.0, 0.0, 0.0)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)

    return Latency(len(ordered), at(0.5), at(0.95), round(ordered[-1], 2))


def backlog_latencies(
    events: Sequence[Mapping[str, Any]],
    queued_at: Sequence[float],
    written_at: Mapping[str, Sequence[float]],
    ids_by_mail: Mapping[str, int],
) -> list[float]:
    """Each event's wait from its queueing to its contact's last write (events whose
    contact was never written, unchanged or unknown, have none)."""
    waits = []
    for event, queued in zip(events, queued_at, strict=True):
        ref = event["contact"]
        contact_id = ref.get("id") or ids_by_mail.get(str(ref.get("mail", "")).casefold())
        writes = written_at.get(str(contact_id), []) if contact_id is not None else []
        if writes:
            waits.append(max(writes) - queued)
    return waits


def run_idle(
    seed_contacts: Sequence[Mapping[str, Any]],
    *,
    deliveries: int = IDLE_DELIVERIES,
    gap_s: float = IDLE_GAP_S,
    refill: float = 10.0,
) -> Latency:
    """Deliveries one every `gap_s` through the local HTTP API; their latencies."""
    mails = [str(c.get("mail") or "").casefold() for c in seed_contacts]
    people = [
        c
        for c, mail in zip(seed_contacts, mails, strict=True)
        if mail and mails.count(mail) == 1 and not c.get("black_list")
    ]
    options = LocalOptions(standin=StandinConfig(token=TOKEN, burst=100, refill=refill))
    with LocalMode(options) as local:
        endpoints = local.endpoints
        assert endpoints is not None
        assert endpoints.webhook_secrets is not None
        secret = endpoints.webhook_secrets["generic"]
        url = endpoints.webhook_url.format(source="generic")
        sent: list[tuple[int, float]] = []
        for n in range(deliveries):
            person = people[n % len(people)]
            ref = {"id": person["id"]} if n % 2 else {"mail": person["mail"]}
            body = json.dumps(
                {
                    "event_id": f"idle-{uuid.uuid4().hex}",
                    "source": "bench",
                    "occurred_at": "2026-11-24T10:00:00Z",
                    "contact": ref,
                    "set": {"firstname": f"Attente {n}"},
                }
            ).encode()
            headers = {"content-type": "application/json", **sign("generic", secret, body)}
            response = httpx.post(url, content=body, headers=headers, timeout=30)
            if response.status_code != 202:
                raise RuntimeError(f"the ingest answered {response.status_code}")
            sent.append((int(person["id"]), time.time()))
            time.sleep(gap_s)
        written = _written(endpoints.qomon_url, until=time.monotonic() + 60, expected=sent)
    waits = []
    for contact_id, accepted in sent:
        after = [w for w in written.get(str(contact_id), []) if w >= accepted]
        if after:
            waits.append(min(after) - accepted)
    return summarise(waits)


def _written(
    qomon_url: str, *, until: float, expected: Sequence[tuple[int, float]]
) -> dict[str, list[float]]:
    """The stand-in's write times, once every delivery's contact has been written."""
    while True:
        written: dict[str, list[float]] = httpx.get(
            f"{qomon_url}/_standin/stats", timeout=10
        ).json()["written_at"]
        done = all(
            any(w >= accepted for w in written.get(str(cid), [])) for cid, accepted in expected
        )
        if done or time.monotonic() > until:
            return written
        time.sleep(0.2)
