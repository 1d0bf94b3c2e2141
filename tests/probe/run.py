"""The probe (`make probe`, `python -m tests.probe`): local mode under load and a Qomon
outage; then every accepted event accounted for and every log line searched for personal
data. A test in all but name (each figure is checked, a problem fails the run), so it
lives with the tests; tests/integration/test_probe.py runs `--quick` and checks its report.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx

from qomon_sync_dev.local_lambda import STACK, take_dead_letters, wait_until_drained
from qomon_sync_dev.local_mode import LOCAL_WEBHOOK_SECRETS, STANDIN_TOKEN, LocalMode, LocalOptions
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.seed import build_seed
from tests.probe.account import account, print_report
from tests.probe.logs import (
    Capture,
    Personal,
)
from tests.probe.traffic import Delivery, TrafficBuilder, seed_personal

LOOPBACK = "127.0.0.1"
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
    pause: dict[str, Any] = field(default_factory=dict)
    """The space-wide pause the outage brought (issue 20): told, probes, resumes."""
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
        observed.pause = _pause_figures(local)


def _pause_figures(local: LocalMode) -> dict[str, Any]:
    """What the pause did: how often it started and ended, the probes that found Qomon
    still down, and what a person was told (subjects only: no personal data in them)."""
    told = [subject for subject, _ in local.told()]
    probe = local.probe
    return {
        "paused": sum(1 for subject in told if subject.startswith("qomon-sync paused")),
        "resumed": list(probe.resumed) if probe is not None else [],
        "probes_that_failed": probe.failed_probes if probe is not None else 0,
        "told": told,
        "mapping_switches": list(local.aws.mapping_switches) if local.aws is not None else [],
    }


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


# -- the command ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.probe", description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


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
        print(f"probe: {error}", flush=True)
        return 2
    report = run_probe(spec, log_file=args.log_file)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print_report(report)
    return 1 if report["problems"] else 0
