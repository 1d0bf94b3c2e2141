"""`qomon-sync probe`: local mode under load and a Qomon outage; then every accepted
event accounted for and every log line searched for personal data.

On 127.0.0.1 only, bounded in count and time (it stops by itself):

1. starts local mode in this process (nothing kept, free ports) and captures every line
   the pipeline writes (stdout, stderr and every logging handler, at the file-descriptor
   level too, checked by a marker sent down each path);
2. sends N signed webhooks (generic, Typeform, Tally, Brevo: the documented examples of
   `events/webhooks/` with new people, ids and texts) from C threads, plus redeliveries of
   some, in three phases: before, during (spread over it) and after a Qomon outage of D
   seconds (the stand-in answers every call 500, 502 or 503);
3. waits for the queue to drain (bounded), then accounts for every accepted event from
   the sync's "event processed" lines, the dead-letter queue and what the stand-in holds
   (each note once; each new person created once): applied, unchanged, duplicates not
   applied again, dead-lettered with a reason; lost; applied twice;
4. searches every captured line for every e-mail, phone, name, address part, answer
   text, tag and note it sent (and the seed contacts the sync reads back), and for the
   webhook secrets, the Qomon API key and the pseudonym key;
5. prints the figures and exits non-zero on any loss, double application, legitimate
   delivery refused, or personal-data hit. `--json PATH` writes the figures.

The hostile requests it used to send (header tricks, path traversal, wrong methods,
oversized and deeply nested bodies, refused characters, broken bodies) are a test of
their own: tests/integration/test_hostile_requests.py.

Qomon's rate limit is raised (both the stand-in's and the client's bucket) so that the
probe measures loss and leaks, not pacing (`make pacing-check` measures that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx

from qomon_sync_dev.bench.probe_logs import (
    CAPTURE_PATHS,
    Capture,
    Personal,
    Scanner,
    ScanResult,
    markers_found,
    read_lines,
)
from qomon_sync_dev.bench.probe_traffic import Delivery, TrafficBuilder, seed_personal
from qomon_sync_dev.local_mode import (
    LOCAL_WEBHOOK_SECRETS,
    STACK,
    STANDIN_TOKEN,
    LocalMode,
    LocalOptions,
    take_dead_letters,
    wait_until_drained,
)
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.seed import build_seed

LOOPBACK = "127.0.0.1"
APPLIED = ("replaced", "created")
TERMINAL = (*APPLIED, "unchanged", "dead_letter")
SKIPPED_WARNING = "contact not found: skipped"
REDRIVEN = "no reason (moved by the redrive policy)"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LIMITS = {"webhooks": 5000, "concurrency": 64, "outage_s": 120.0, "max_seconds": 900.0}


@dataclass(frozen=True)
class ProbeSpec:
    webhooks: int = 500
    concurrency: int = 8
    outage_s: float = 30.0
    redelivery_share: float = 0.05
    seed: int = 2024
    drain_timeout_s: float = 100.0
    max_seconds: float = 175.0
    """The whole run's bound: past it nothing more is sent and the drain is not waited for."""
    qomon_burst: int = 400
    qomon_refill: float = 200.0
    log_level: str = "INFO"
    """The handlers' level (template.yaml deploys INFO; DEBUG searches their debug lines too)."""

    def checked(self) -> ProbeSpec:
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if not 0 < value <= limit and not (name == "outage_s" and value == 0):
                raise ValueError(f"{name} must be in (0, {limit:g}], not {value:g}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"the log level must be one of {', '.join(LOG_LEVELS)}")
        if not 0 <= self.redelivery_share <= 0.5:
            raise ValueError("the redelivery share must be in [0, 0.5]")
        return self


QUICK = ProbeSpec(webhooks=60, concurrency=4, outage_s=3.0, drain_timeout_s=22.0, max_seconds=38.0)


# -- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    delivery: Delivery
    phase: str
    status: int
    """0: no answer (a transport error), -1: not sent (the time limit)."""
    event_ids: tuple[str, ...] = ()
    title: str = ""


class Outage:
    """Qomon down (every stand-in call answered 500, 502 or 503) for `seconds` from
    `start`, ended by a timer whatever the senders are doing."""

    def __init__(self, qomon_url: str, seconds: float) -> None:
        self.qomon_url = qomon_url
        self.seconds = seconds
        self.started: float | None = None
        self.ended: float | None = None
        self._lock = threading.Lock()
        self._over = threading.Event()
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self.seconds <= 0:
            self._over.set()
            return
        _qomon_config(self.qomon_url, {"fail_rate": 1.0})
        self.started = time.monotonic()
        self._timer = threading.Timer(self.seconds, self.end)
        self._timer.daemon = True
        self._timer.start()

    def end(self) -> None:
        with self._lock:
            if self.started is not None and self.ended is None:
                _qomon_config(self.qomon_url, {"fail_rate": 0.0})
                self.ended = time.monotonic()
            self._over.set()
        if self._timer is not None:
            self._timer.cancel()

    def wait(self, timeout: float) -> None:
        self._over.wait(timeout)

    def phase(self) -> str:
        if self.started is None:
            return "before the outage"
        return "during the outage" if self.ended is None else "after the outage"

    @property
    def lasted_s(self) -> float:
        if self.started is None:
            return 0.0
        return round((self.ended or time.monotonic()) - self.started, 1)


class Sender:
    """Posts deliveries from `concurrency` threads, each with its own HTTP client; each
    is labelled with the outage's phase at the moment it is sent."""

    def __init__(
        self,
        url: str,
        secrets: Mapping[str, str],
        *,
        concurrency: int,
        deadline: float,
        outage: Outage,
    ) -> None:
        self.outage = outage
        self.url = url
        self.secrets = secrets
        self.concurrency = concurrency
        self.deadline = deadline
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=30.0, trust_env=False)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, delivery: Delivery, at: float | None = None) -> Sent:
        if at is not None:
            time.sleep(max(0.0, min(at, self.deadline) - time.monotonic()))
        phase = self.outage.phase()
        if time.monotonic() > self.deadline:
            return Sent(delivery, phase, -1)
        try:
            response = self._client().post(
                self.url.format(source=delivery.source),
                content=delivery.body,
                headers=delivery.headers(self.secrets),
            )
        except httpx.HTTPError as error:
            return Sent(delivery, phase, 0, title=type(error).__name__)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        ids = tuple(answer.get("event_ids", ())) if response.status_code == 202 else ()
        return Sent(delivery, phase, response.status_code, ids, str(answer.get("title", "")))

    def send_all(self, deliveries: Sequence[Delivery], spread_s: float = 0.0) -> list[Sent]:
        """All of them, at once or spread evenly over `spread_s` seconds."""
        start = time.monotonic()
        step = spread_s / len(deliveries) if deliveries and spread_s else 0.0
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [
                pool.submit(self.send, d, start + i * step if step else None)
                for i, d in enumerate(deliveries)
            ]
            return [f.result() for f in futures]

    def close(self) -> None:
        for client in self._clients:
            client.close()


# -- the run --------------------------------------------------------------------------------


@dataclass
class Observed:
    """Everything the run saw, before accounting."""

    spec: ProbeSpec
    sent: list[Sent] = field(default_factory=list)
    outage_s: float = 0.0
    qomon_faults: int = 0
    drained: bool = False
    timed_out: bool = False
    letters: list[dict[str, str]] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)
    """Event ids still in the changes queue when the run ended (none once drained)."""
    contacts: list[dict[str, Any]] = field(default_factory=list)
    sync_crashes: int = 0
    wall_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)


def run_probe(
    spec: ProbeSpec, *, log_file: Path | None = None, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """One probe run; `say` takes its progress lines (default: the console, outside the
    capture). Returns the figures; the captured lines are kept in `log_file` if given, or
    left in a temporary folder when there are problems (the report says where)."""
    spec = spec.checked()
    started = time.monotonic()
    workdir = None if log_file else Path(tempfile.mkdtemp(prefix="qomon-probe-"))
    path = log_file or Path(str(workdir)) / "pipeline.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    personal = Personal()
    seed = build_seed()["contacts"]
    seed_personal(personal, seed)
    traffic = TrafficBuilder(random.Random(spec.seed), seed, personal)
    capture = Capture(path)
    observed = Observed(spec)
    try:
        with _environment(spec):
            capture.start()
            try:
                capture.check()
                _run(
                    spec,
                    observed,
                    traffic=traffic,
                    personal=personal,
                    say=say or capture.say,
                    started=started,
                )
            finally:
                capture.stop()
    finally:
        capture.close_console()
    observed.wall_s = time.monotonic() - started
    (say or print)("probe: accounting for the events and searching the logs")
    report = account(observed, personal, path, capture.marker)
    report["log_file"] = str(path) if (log_file or report["problems"]) else None
    if workdir is not None and not report["problems"]:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


@contextlib.contextmanager
def _environment(spec: ProbeSpec) -> Iterator[None]:
    env = {
        # The client's bucket as wide as the stand-in's: loss and leaks, not pacing.
        "QOMON_BUCKET_SIZE": str(spec.qomon_burst),
        "QOMON_REFILL_PER_S": str(spec.qomon_refill),
        # Loopback only: no proxy may carry a request elsewhere.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    from qomon_sync.handlers.observability import logger

    env["POWERTOOLS_LOG_LEVEL"] = spec.log_level
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    level = logger.log_level
    logger.setLevel(spec.log_level)
    try:
        yield
    finally:
        logger.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(
    spec: ProbeSpec,
    observed: Observed,
    *,
    traffic: TrafficBuilder,
    personal: Personal,
    say: Callable[[str], None],
    started: float,
) -> None:
    deadline = started + spec.max_seconds
    standin = StandinConfig(token=STANDIN_TOKEN, burst=spec.qomon_burst, refill=spec.qomon_refill)
    with LocalMode(LocalOptions(standin=standin)) as local:
        assert local.endpoints is not None
        assert local.poller is not None
        endpoints = local.endpoints
        _check_loopback(
            endpoints.webhook_url.format(source="generic"),
            endpoints.aws_endpoint_url,
            endpoints.qomon_url,
        )
        secrets = dict(endpoints.webhook_secrets or LOCAL_WEBHOOK_SECRETS)
        _add_secrets(personal, secrets, endpoints.aws_endpoint_url)
        deliveries = traffic.build(spec.webhooks, spec.redelivery_share)
        say(
            f"probe: local mode up; {len(deliveries)} deliveries ({spec.webhooks} webhooks and "
            f"{len(deliveries) - spec.webhooks} redeliveries) from {spec.concurrency} threads, "
            f"a {spec.outage_s:g} s Qomon outage"
        )
        outage = Outage(endpoints.qomon_url, spec.outage_s)
        sender = Sender(
            endpoints.webhook_url,
            secrets,
            concurrency=spec.concurrency,
            deadline=deadline,
            outage=outage,
        )
        try:
            _send_with_outage(sender, deliveries, observed, say)
        finally:
            outage.end()
            sender.close()
        observed.outage_s = outage.lasted_s
        say("probe: waiting for the queue")
        sqs = boto3.client(
            "sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
        )
        phase = time.monotonic()
        bound = min(deadline, time.monotonic() + spec.drain_timeout_s)
        observed.drained = wait_until_drained(sqs, endpoints.changes_queue_url, local, bound)
        observed.phases_s["drain"] = round(time.monotonic() - phase, 1)
        observed.timed_out = time.monotonic() > deadline
        # Nothing moves while the figures are read: the log, the queues and Qomon agree.
        local.poller.pause()
        observed.waiting = _waiting_event_ids(local, endpoints.changes_queue_url)
        observed.letters = take_dead_letters(sqs, endpoints.dead_letter_queue_url)
        qomon = endpoints.qomon_url
        observed.contacts = httpx.get(f"{qomon}/_standin/contacts", timeout=30).json()["contacts"]
        stats = httpx.get(f"{qomon}/_standin/stats", timeout=10).json()
        observed.qomon_faults = int(stats["faults"]["server_errors"])
        observed.sync_crashes = len(local.poller.errors)


def _waiting_event_ids(local: LocalMode, queue_url: str) -> set[str]:
    """The event ids of the messages still in the changes queue, waiting or in flight."""
    assert local.queues is not None
    ids = set()
    for _, body in local.queues.messages(queue_url.rstrip("/").rsplit("/", 1)[-1]):
        with contextlib.suppress(ValueError, AttributeError):
            ids.add(str(json.loads(body).get("event_id")))
    return ids


def _check_loopback(*urls: str) -> None:
    for url in urls:
        host = urlsplit(url).hostname
        if host != LOOPBACK:
            raise RuntimeError(f"the probe runs on {LOOPBACK} only; {url} is not")


def _add_secrets(personal: Personal, secrets: Mapping[str, str], aws_url: str) -> None:
    personal.add("secret", *secrets.values(), STANDIN_TOKEN)
    generic = secrets.get("generic", "")
    if generic.startswith("whsec_"):
        personal.add("secret", generic.removeprefix("whsec_"))
    client = boto3.client("secretsmanager", endpoint_url=aws_url, region_name="eu-west-3")
    key = client.get_secret_value(SecretId=f"{STACK}/pseudonym-key")["SecretString"]
    personal.add("secret", str(key))


def _send_with_outage(
    sender: Sender, deliveries: list[Delivery], observed: Observed, say: Callable[[str], None]
) -> None:
    """40 % at once, then the outage starts and 40 % are spread over most of it; when it
    has ended (on time, however long the sending took), the rest."""
    spec, outage = observed.spec, sender.outage
    before, during = int(len(deliveries) * 0.4), int(len(deliveries) * 0.8)
    phase = time.monotonic()
    observed.sent += sender.send_all(deliveries[:before])
    observed.phases_s["sending before the outage"] = round(time.monotonic() - phase, 1)
    outage.start()
    if spec.outage_s:
        say(f"probe: {len(observed.sent)} answered; Qomon is down for {spec.outage_s:g} s")
    phase = time.monotonic()
    observed.sent += sender.send_all(deliveries[before:during], spread_s=spec.outage_s * 0.8)
    outage.wait(timeout=max(0.0, sender.deadline - time.monotonic()))
    outage.end()
    observed.phases_s["sending from the outage's start to its end"] = round(
        time.monotonic() - phase, 1
    )
    phase = time.monotonic()
    observed.sent += sender.send_all(deliveries[during:])
    observed.phases_s["sending after the outage"] = round(time.monotonic() - phase, 1)
    say(f"probe: {len(observed.sent)} deliveries answered; Qomon is back")


def _qomon_config(qomon_url: str, changes: Mapping[str, Any]) -> None:
    httpx.post(f"{qomon_url}/_standin/config", json=dict(changes), timeout=10).raise_for_status()


# -- accounting -----------------------------------------------------------------------------


@dataclass
class Outcomes:
    """The sync's "event processed" lines, by event id."""

    actions: dict[str, list[str]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, int] = field(default_factory=dict)
    """The Qomon contact each created event made."""
    skipped: set[str] = field(default_factory=set)
    lines: int = 0


def read_outcomes(path: Path) -> Outcomes:
    outcomes = Outcomes()
    for line in read_lines(path):
        record = line.record
        if record is None or record.get("message") != "event processed":
            continue
        outcomes.lines += 1
        event_id = str(record.get("event_id"))
        action = str(record.get("action"))
        outcomes.actions.setdefault(event_id, []).append(action)
        if action == "dead_letter":
            outcomes.codes[event_id] = str(record.get("code"))
        if action == "created" and isinstance(record.get("contact_id"), int):
            outcomes.contacts[event_id] = record["contact_id"]
        if action == "unchanged" and any(
            SKIPPED_WARNING in str(w) for w in record.get("warnings") or []
        ):
            outcomes.skipped.add(event_id)
    return outcomes


def _letters_by_event(letters: list[dict[str, str]]) -> dict[str, str]:
    by_event: dict[str, str] = {}
    for letter in letters:
        event_id = letter.get("event_id")
        if not event_id:
            with contextlib.suppress(ValueError, AttributeError):
                event_id = json.loads(letter["body"]).get("event_id")
        if event_id:
            by_event[str(event_id)] = letter.get("error_code") or REDRIVEN
    return by_event


NOT_DRAINED = "still in the queue (not drained in time)"


def _fate(
    actions: list[str],
    in_queue: str | None,
    outcomes: Outcomes,
    event_id: str,
    waiting: frozenset[str] = frozenset(),
) -> str:
    """What became of one accepted event, in a few words; "LOST: ..." if nothing."""
    terminal = [a for a in actions if a in TERMINAL]
    first = terminal[0] if terminal else None
    if first is None and event_id in waiting:
        fate = NOT_DRAINED
    elif first in APPLIED:
        fate = f"applied ({first})"
    elif first == "unchanged":
        fate = "skipped (unknown person)" if event_id in outcomes.skipped else "unchanged"
    elif in_queue is not None:
        fate = f"dead-lettered: {in_queue}"
    elif first == "dead_letter":
        fate = "LOST: dead-lettered in the log, not in the dead-letter queue"
    elif "duplicate" in actions:
        fate = "LOST: only ever seen as a duplicate"
    else:
        fate = "LOST: no outcome"
    return fate


def account(observed: Observed, personal: Personal, path: Path, marker: str) -> dict[str, Any]:
    """The figures of a run, and the problems found (sentences without personal data)."""
    outcomes = read_outcomes(path)
    problems: list[str] = []
    deliveries = _deliveries_figures(observed, problems)
    events = _event_figures(observed, outcomes, problems)
    writes = _qomon_writes(observed, outcomes, problems)
    logs = _log_figures(path, personal, marker, problems)
    if not observed.drained:
        problems.append("the queue did not drain in time")
    if observed.timed_out:
        problems.append(f"the run reached its time limit ({observed.spec.max_seconds:g} s)")
    return {
        "spec": asdict(observed.spec),
        "wall_s": round(observed.wall_s, 1),
        "phases_s": observed.phases_s,
        "deliveries": deliveries,
        "outage": {"seconds": observed.outage_s, "qomon_calls_failed": observed.qomon_faults},
        "events": events,
        "qomon": writes,
        "logs": logs,
        "drained": observed.drained,
        "problems": problems,
    }


def _event_figures(observed: Observed, outcomes: Outcomes, problems: list[str]) -> dict[str, Any]:
    letters = _letters_by_event(observed.letters)
    accepted: Counter[str] = Counter(e for s in observed.sent for e in s.event_ids)
    waiting = frozenset(observed.waiting)
    fates = {
        e: _fate(outcomes.actions.get(e, []), letters.get(e), outcomes, e, waiting)
        for e in accepted
    }
    lost = sorted(e for e, fate in fates.items() if fate.startswith("LOST"))
    if lost:
        problems.append(f"{len(lost)} accepted events lost: {', '.join(lost[:5])}")
    twice = _applied_twice(accepted, outcomes, problems)
    duplicates = sum(outcomes.actions.get(e, []).count("duplicate") for e in accepted)
    queue_deduplicated = sum(
        max(0, n - 1 - outcomes.actions.get(e, []).count("duplicate")) for e, n in accepted.items()
    )
    counts = Counter(fates.values())
    source_of = {e: s.delivery.source for s in observed.sent for e in s.event_ids}
    by_source: dict[str, Counter[str]] = {}
    for event_id, fate in fates.items():
        by_source.setdefault(source_of.get(event_id, "?"), Counter())[fate] += 1
    return {
        "accepted_deliveries_of_events": sum(accepted.values()),
        "distinct_events_accepted": len(accepted),
        "by_fate": dict(sorted(counts.items())),
        "by_source": {k: dict(sorted(v.items())) for k, v in sorted(by_source.items())},
        "applied": sum(n for f, n in counts.items() if f.startswith("applied")),
        "unchanged_or_skipped": counts["unchanged"] + counts["skipped (unknown person)"],
        "dead_lettered": sum(n for f, n in counts.items() if f.startswith("dead-lettered")),
        "duplicates_not_applied_again": duplicates,
        "redeliveries_deduplicated_by_the_queue": queue_deduplicated,
        "lost": len(lost),
        "not_drained": counts[NOT_DRAINED],
        "applied_twice": twice,
        "event_processed_lines": outcomes.lines,
        "dead_letters_in_queue": len(observed.letters),
        "sync_invocations_that_raised": observed.sync_crashes,
    }


def _status(sent: Sent) -> str:
    return {-1: "not sent (time limit)", 0: "no answer"}.get(sent.status, str(sent.status))


def _deliveries_figures(observed: Observed, problems: list[str]) -> dict[str, Any]:
    statuses = Counter(_status(s) for s in observed.sent)
    by_source: dict[str, Counter[str]] = {}
    for s in observed.sent:
        by_source.setdefault(s.delivery.source, Counter())[_status(s)] += 1
    refused = [s for s in observed.sent if s.status not in (202, -1)]
    if refused:
        shown = Counter(f"{s.delivery.label} -> {_status(s)} {s.title}".strip() for s in refused)
        problems.append(
            f"{len(refused)} legitimate deliveries not accepted: "
            + "; ".join(f"{n} x {what}" for what, n in shown.most_common(5))
        )
    not_sent = sum(1 for s in observed.sent if s.status == -1)
    if not_sent:
        problems.append(f"{not_sent} deliveries not sent: the run's time limit came first")
    return {
        "sent": len(observed.sent),
        "first_deliveries": sum(1 for s in observed.sent if s.delivery.redelivery is None),
        "redeliveries": dict(
            Counter(s.delivery.redelivery for s in observed.sent if s.delivery.redelivery)
        ),
        "by_status": dict(sorted(statuses.items())),
        "by_source": {k: dict(sorted(v.items())) for k, v in sorted(by_source.items())},
        "by_phase": dict(Counter(s.phase for s in observed.sent)),
        "accepted": statuses["202"],
        "with_no_event": sum(1 for s in observed.sent if s.status == 202 and not s.event_ids),
    }


def _applied_twice(accepted: Counter[str], outcomes: Outcomes, problems: list[str]) -> int:
    twice = sorted(
        e for e in accepted if sum(a in APPLIED for a in outcomes.actions.get(e, [])) > 1
    )
    settled = sorted(
        e for e in accepted if sum(a in TERMINAL for a in outcomes.actions.get(e, [])) > 1
    )
    if twice:
        problems.append(f"{len(twice)} events applied more than once: {', '.join(twice[:5])}")
    again = [e for e in settled if e not in twice]
    if again:
        problems.append(
            f"{len(again)} events settled more than once (not as duplicates): "
            + ", ".join(again[:5])
        )
    return len(set(twice) | set(settled))


@dataclass(frozen=True)
class Facts:
    """What the probe knows of one event it sent."""

    source: str
    note: str
    mail: str | None


def _facts(sent: Sequence[Sent]) -> dict[str, Facts]:
    facts: dict[str, Facts] = {}
    for s in sent:
        d = s.delivery
        if d.notes and len(s.event_ids) == len(d.notes) == len(d.mails):
            for event_id, note, mail in zip(s.event_ids, d.notes, d.mails, strict=True):
                facts[event_id] = Facts(d.source, note, mail)
    return facts


def _qomon_writes(observed: Observed, outcomes: Outcomes, problems: list[str]) -> dict[str, Any]:
    """What the stand-in holds: each applied event's note exactly once and no other
    event's; each created contact with the e-mail it was looked up by, each person once."""
    facts = _facts(observed.sent)
    notes = _check_notes(observed, outcomes, facts, problems)
    created = _check_created(observed, outcomes, facts, problems)
    if created["contacts_created_missing_from_qomon"]:
        problems.append(
            f"{created['contacts_created_missing_from_qomon']} contacts logged as created are "
            "not in Qomon"
        )
    return {**notes, **created, "contacts_in_qomon": len(observed.contacts)}


def _check_notes(
    observed: Observed, outcomes: Outcomes, facts: Mapping[str, Facts], problems: list[str]
) -> dict[str, int]:
    stored = [str(n.get("data", "")) for c in observed.contacts for n in c.get("notes") or []]
    counts = {e: sum(f.note in data for data in stored) for e, f in facts.items()}
    applied = {e for e in facts if any(a in APPLIED for a in outcomes.actions.get(e, []))}
    missing = sorted(e for e in applied if counts[e] == 0)
    doubled = sorted(e for e in facts if counts[e] > 1)
    stray = sorted(e for e in facts if e not in applied and counts[e] > 0)
    for found, what in (
        (missing, "applied events' notes not in Qomon"),
        (doubled, "notes added more than once"),
        (stray, "notes in Qomon of events not logged as applied"),
    ):
        if found:
            problems.append(f"{len(found)} {what}: {', '.join(found[:5])}")
    return {
        "notes_checked": len(facts),
        "notes_of_applied_events_found_once": sum(1 for e in applied if counts[e] == 1),
        "notes_missing": len(missing),
        "notes_added_twice": len(doubled),
        "notes_of_events_not_applied": len(stray),
    }


def _check_created(
    observed: Observed, outcomes: Outcomes, facts: Mapping[str, Facts], problems: list[str]
) -> dict[str, Any]:
    by_id = {c.get("id"): c for c in observed.contacts}
    created = {e: cid for e, cid in outcomes.contacts.items() if e in facts}
    without_mail: Counter[str] = Counter()
    contacts_of: dict[str, set[int]] = {}
    for event_id, contact_id in created.items():
        mail = facts[event_id].mail
        if mail is None:
            continue
        contacts_of.setdefault(mail.casefold(), set()).add(contact_id)
        stored = str(by_id.get(contact_id, {}).get("mail") or "")
        if stored.casefold() != mail.casefold():
            without_mail[facts[event_id].source] += 1
    twice = {m: ids for m, ids in contacts_of.items() if len(ids) > 1}
    if without_mail:
        problems.append(
            f"{sum(without_mail.values())} contacts created without the e-mail they were "
            f"looked up by ({_counts(without_mail)}): the next delivery for that person "
            "cannot find them"
        )
    if twice:
        extra = sum(len(ids) - 1 for ids in twice.values())
        problems.append(f"{len(twice)} people created more than once ({extra} extra contacts)")
    return {
        "contacts_created": len(set(created.values())),
        "contacts_created_without_their_mail": dict(sorted(without_mail.items())),
        "people_created_more_than_once": len(twice),
        "extra_contacts": sum(len(ids) - 1 for ids in twice.values()),
        "contacts_created_missing_from_qomon": sum(
            1 for cid in set(created.values()) if cid not in by_id
        ),
    }


def _log_figures(
    path: Path, personal: Personal, marker: str, problems: list[str]
) -> dict[str, Any]:
    captured = markers_found(path, marker)
    missed = [p for p in CAPTURE_PATHS if p not in captured]
    if missed:
        problems.append(f"the log capture missed: {', '.join(missed)}")
    scan: ScanResult = Scanner(personal).scan(read_lines(path))
    if scan.lines_with_hits:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(scan.hits_by_kind.items()))
        problems.append(f"personal data or secrets in {scan.lines_with_hits} log lines ({kinds})")
    return {
        "lines_scanned": scan.lines,
        "log_records": scan.records,
        "metric_blobs": scan.metric_blobs,
        "other_lines": scan.other_lines,
        "capture_paths_checked": f"{len(captured)}/{len(CAPTURE_PATHS)}",
        "values_searched": personal.count(),
        "lines_with_personal_data": scan.lines_with_hits,
        "hits_by_kind": dict(sorted(scan.hits_by_kind.items())),
        "first_hits": [asdict(hit) for hit in scan.first_hits],
    }


# -- the command ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the small run tests and CI use")
    parser.add_argument("--webhooks", type=int, help="signed webhooks to send (default 500)")
    parser.add_argument("--concurrency", type=int, help="sender threads (default 8)")
    parser.add_argument("--outage", type=float, help="seconds of Qomon outage (default 30)")
    parser.add_argument("--seed", type=int, help="the random seed of the traffic")
    parser.add_argument("--max-seconds", type=float, help="the whole run's bound (default 175)")
    parser.add_argument("--drain-timeout", type=float, help="seconds to wait for the queue")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, help="the handlers' log level (default INFO)"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--log-file", type=Path, help="keep the captured lines in this file")


def spec_from_args(args: argparse.Namespace) -> ProbeSpec:
    spec = QUICK if args.quick else ProbeSpec()
    given = {
        "webhooks": args.webhooks,
        "concurrency": args.concurrency,
        "outage_s": args.outage,
        "seed": args.seed,
        "max_seconds": args.max_seconds,
        "drain_timeout_s": args.drain_timeout,
        "log_level": args.log_level,
    }
    return replace(spec, **{k: v for k, v in given.items() if v is not None})


def run_from_args(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_args(args).checked()
    except ValueError as error:
        print(f"qomon-sync probe: {error}", flush=True)
        return 2
    report = run_probe(spec, log_file=args.log_file)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print_report(report)
    return 1 if report["problems"] else 0


# -- the report -----------------------------------------------------------------------------


def _counts(counts: Mapping[str, int], unit: str = "") -> str:
    return ", ".join(f"{n:,} x {k}{unit}" for k, n in counts.items()) or "none"


def _row(label: str, value: object) -> str:
    return f"  {label:<44} {value}"


def print_report(report: Mapping[str, Any], out: Callable[[str], None] = print) -> None:
    spec, deliveries = report["spec"], report["deliveries"]
    redeliveries = deliveries["redeliveries"]
    out(
        f"qomon-sync probe: {deliveries['first_deliveries']:,} webhooks "
        f"(+{sum(redeliveries.values()):,} redeliveries) from {spec['concurrency']} threads, "
        f"a {report['outage']['seconds']:g} s Qomon outage; "
        f"{report['wall_s']:g} s on 127.0.0.1 (seed {spec['seed']})"
    )
    phases = ", ".join(f"{what} {sec:g}" for what, sec in report.get("phases_s", {}).items())
    out(_row("seconds", phases or "-"))
    out("\nwebhooks")
    out(_row("sent", f"{deliveries['sent']:,} ({_counts(redeliveries)} among them)"))
    out(_row("answered", _counts(deliveries["by_status"])))
    for source, statuses in deliveries["by_source"].items():
        out(_row(f"  {source}", _counts(statuses)))
    out(_row("by phase", _counts(deliveries["by_phase"])))
    out(_row("accepted with no event (Brevo `opened`)", deliveries["with_no_event"]))
    out("\nQomon outage")
    out(_row("seconds down", report["outage"]["seconds"]))
    out(_row("calls answered 500/502/503", f"{report['outage']['qomon_calls_failed']:,}"))
    _print_events(report, out)
    _print_logs(report, out)


def _print_events(report: Mapping[str, Any], out: Callable[[str], None]) -> None:
    events, qomon = report["events"], report["qomon"]
    out("\nevents")
    out(_row("accepted (distinct events)", f"{events['distinct_events_accepted']:,}"))
    out(_row("accepted (counting redeliveries)", f"{events['accepted_deliveries_of_events']:,}"))
    for fate, count in events["by_fate"].items():
        out(_row(f"  {fate}", f"{count:,}"))
    for source, fates in events["by_source"].items():
        out(_row(f"  {source}", ", ".join(f"{f} {n:,}" for f, n in fates.items())))
    out(_row("duplicates the sync did not apply again", events["duplicates_not_applied_again"]))
    out(
        _row(
            "redeliveries the queue deduplicated", events["redeliveries_deduplicated_by_the_queue"]
        )
    )
    out(_row("LOST", events["lost"]))
    if events.get("not_drained"):
        out(_row("still in the queue (not drained in time)", events["not_drained"]))
    out(_row("APPLIED TWICE", events["applied_twice"]))
    out(_row("dead letters in the queue", events["dead_letters_in_queue"]))
    out(_row("sync invocations that raised", events["sync_invocations_that_raised"]))
    out("\nwhat Qomon holds")
    out(
        _row(
            "notes of applied events found exactly once",
            f"{qomon['notes_of_applied_events_found_once']:,} (missing {qomon['notes_missing']}, "
            f"added twice {qomon['notes_added_twice']}, of events not applied "
            f"{qomon['notes_of_events_not_applied']})",
        )
    )
    out(_row("contacts created", f"{qomon['contacts_created']:,}"))
    without = qomon["contacts_created_without_their_mail"]
    out(_row("  without the e-mail they were found by", _counts(without) if without else "0"))
    out(
        _row(
            "people created more than once",
            f"{qomon['people_created_more_than_once']} ({qomon['extra_contacts']} extra contacts)",
        )
    )


def _print_logs(report: Mapping[str, Any], out: Callable[[str], None]) -> None:
    logs = report["logs"]
    out("\nlogs")
    out(
        _row(
            "lines scanned",
            f"{logs['lines_scanned']:,} ({logs['log_records']:,} log records, "
            f"{logs['metric_blobs']:,} EMF metric blobs, {logs['other_lines']:,} other)",
        )
    )
    out(_row("capture paths proven", logs["capture_paths_checked"]))
    out(_row("values searched", _counts(logs["values_searched"])))
    out(_row("lines with personal data or a secret", logs["lines_with_personal_data"]))
    out(_row("hits by kind", _counts(logs["hits_by_kind"]) if logs["hits_by_kind"] else "none"))
    for hit in logs["first_hits"]:
        where = f"at `{hit['where']}`" + (f" ({hit['message']})" if hit["message"] else "")
        out(_row(f"  {hit['kind']}", f"line {hit['line']} {where}"))
    if report.get("log_file"):
        out(_row("captured lines kept in", report["log_file"]))
    out("")
    if report["problems"]:
        out("PROBLEMS:")
        for problem in report["problems"]:
            out(f"  {problem}")
        return
    out("no accepted event lost, none applied twice; no personal data or secret in any log line")
