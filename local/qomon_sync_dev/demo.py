"""`qomon-sync demo`: the main job on embedded local defaults.

Starts `qomon-sync local` (local AWS, the seeded Qomon stand-in, the webhook endpoint and
the sync handler fed by the event source poller), sends signed webhooks: every sample
change event through the generic (Standard Webhooks) source, one documented delivery of
every other source of the mapping file (from the registry: the first fixture of
events/webhooks/<name>/), Mailchimp's URL check, a sender's redelivery, and strangers: a
bad signature, a wrong URL secret, a malformed body. It waits for the queue to drain and
prints what each delivery was answered, what became of each event, and what it cost in
Qomon calls and tokens. Exits 0 when every
delivery got the answer it should and every accepted event is accounted for.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from qomon_sync_dev.local_mode import queue_is_empty, take_dead_letters
from qomon_sync_dev.signing import deployment_sources, signed_request

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".local-run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, default=ROOT / "events" / "changes")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the queue"
    )


def run_from_args(args: argparse.Namespace) -> int:
    RUN_DIR.mkdir(exist_ok=True)
    endpoints_file, log_file = RUN_DIR / "demo-endpoints.json", RUN_DIR / "demo-local.log"
    endpoints_file.unlink(missing_ok=True)
    with log_file.open("w", encoding="utf-8") as log:
        local = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [
                sys.executable,
                "-m",
                "qomon_sync_dev.cli",
                "local",
                "--paused",
                "--endpoints-file",
                str(endpoints_file),
                # Its own state folder, started afresh, on free ports: the demo accounts for
                # the events it sends, and runs beside a `qomon-sync local` of your own.
                "--state-dir",
                str(RUN_DIR / "demo-state"),
                "--fresh",
                *("--webhook-port", "0", "--aws-port", "0", "--qomon-port", "0"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            endpoints = _wait_for_endpoints(endpoints_file, local)
            answers = _send_webhooks(endpoints, _deliveries(args.events))
            local.send_signal(signal.SIGUSR1)  # the backlog is queued: let the poller start
            drained = _wait_until_drained(endpoints, args.timeout)
            letters = take_dead_letters(_sqs(endpoints), endpoints["dead_letter_queue_url"])
            stats = httpx.get(f"{endpoints['qomon_url']}/_standin/stats", timeout=10).json()
        finally:
            local.send_signal(signal.SIGTERM)
            stopped = local.wait(timeout=30)
    outcomes = _outcomes(log_file)
    return _report(
        endpoints, answers, outcomes, letters, stats, drained=drained, stopped=stopped, log=log_file
    )


def _wait_for_endpoints(path: Path, local: subprocess.Popen[bytes]) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if local.poll() is not None:
            log = RUN_DIR / "demo-local.log"
            raise SystemExit(f"qomon-sync local exited early ({local.returncode}); see {log}")
        if path.exists():
            return dict(json.loads(path.read_text(encoding="utf-8")))
        time.sleep(0.2)
    raise SystemExit("qomon-sync local did not start within 60 s")


def _sqs(endpoints: dict[str, str]) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoints["aws_endpoint_url"],
        region_name=endpoints["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
    )


@dataclass(frozen=True)
class Delivery:
    label: str
    source: str
    body: bytes
    expect: int = 202
    secret: str | None = None
    """Sign with this instead of the source's secret (the bad-signature delivery)."""
    method: str = "POST"


def _deliveries(changes_dir: Path) -> list[Delivery]:
    samples = sorted(changes_dir.glob("*.json"))
    deliveries = [Delivery(p.stem, "generic", p.read_bytes()) for p in samples]
    # A sender delivering the same event again later (a new delivery, so a new webhook-id).
    deliveries.append(
        Delivery(f"{samples[0].stem} (sent again)", "generic", samples[0].read_bytes())
    )
    # One documented delivery of every other source of the mapping file, from the registry:
    # the first fixture of events/webhooks/<name>/.
    for name in deployment_sources():
        fixtures = sorted((ROOT / "events" / "webhooks" / name).glob("*"))
        if name != "generic" and fixtures:
            deliveries.append(
                Delivery(f"{name}: {fixtures[0].stem}", name, fixtures[0].read_bytes())
            )
    deliveries.append(Delivery("URL check by mailchimp (GET)", "mailchimp", b"", 200, method="GET"))
    deliveries.append(
        Delivery("stranger at mailchimp", "mailchimp", b"type=subscribe", 401, secret="guess")  # noqa: S106
    )
    deliveries.append(
        Delivery(
            "bad signature", "generic", samples[2].read_bytes(), 401, secret="whsec_" + "A" * 43
        )
    )
    deliveries.append(
        Delivery("malformed body", "generic", b'{"event_id": "broken", "contact": ', 400)
    )
    return deliveries


Answer = tuple[Delivery, int, list[str], str]


def _send_webhooks(endpoints: dict[str, Any], deliveries: list[Delivery]) -> list[Answer]:
    """POSTs each delivery signed as its sender would: (delivery, status, event ids, detail)."""
    answers = []
    sources = deployment_sources()
    with httpx.Client(timeout=30) as http:
        for delivery in deliveries:
            source = sources[delivery.source]
            secret = delivery.secret or endpoints["webhook_secrets"][delivery.source]
            form = getattr(getattr(source, "config", None), "body", "json") == "form"
            content_type = "application/x-www-form-urlencoded" if form else "application/json"
            url = endpoints["webhook_url"].format(source=delivery.source)
            # The URL API Gateway would show the sender (HTTPS), as schemes that sign it do.
            https = "https://" + url.split("://", 1)[1]
            request = signed_request(
                source, secret, delivery.body, url=https, method=delivery.method,
                headers={"content-type": content_type},
            )  # fmt: skip
            response = http.request(
                delivery.method,
                url,
                params=dict(request.query),
                content=request.body if delivery.method == "POST" else None,
                headers=dict(request.headers),
            )
            answer = response.json()
            event_ids = list(answer.get("event_ids", [])) if response.status_code == 202 else []
            answers.append(
                (delivery, response.status_code, event_ids, str(answer.get("detail", "")))
            )
    return answers


def _wait_until_drained(endpoints: dict[str, str], timeout: float) -> bool:
    sqs, quiet_since = _sqs(endpoints), None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_is_empty(sqs, endpoints["changes_queue_url"]):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:
                return True
        else:
            quiet_since = None
        time.sleep(0.3)
    return False


def _outcomes(log_file: Path) -> list[dict[str, Any]]:
    """The handler's one structured line per event ("event processed")."""
    outcomes = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("{") and '"event processed"' in line:
            record = json.loads(line)
            outcomes.append(record)
    return outcomes


def _report(
    endpoints: dict[str, Any],
    answers: list[Answer],
    outcomes: list[dict[str, Any]],
    letters: list[dict[str, str]],
    stats: dict[str, Any],
    *,
    drained: bool,
    stopped: int,
    log: Path,
) -> int:
    aws, qomon = endpoints["aws_endpoint_url"], endpoints["qomon_url"]
    print(f"qomon-sync demo: local AWS at {aws}, Qomon stand-in at {qomon}")
    print(f"webhooks: {endpoints['webhook_url']}\n")
    tally = _print_deliveries(answers, outcomes)
    actions = Counter(o["action"] for o in outcomes)
    _print_totals(answers, outcomes, letters, stats, tally.accepted)
    complete = (
        drained
        and tally.as_expected == len(answers)
        and tally.accounted == tally.accepted
        and len(letters) == actions["dead_letter"]
        and stopped == 0
    )
    print(
        "every event accounted for"
        if complete
        else f"NOT every event accounted for ({tally.accounted}/{tally.accepted}, "
        f"drained={drained}): {log}"
    )
    return 0 if complete else 1


@dataclass
class _Tally:
    as_expected: int = 0
    accepted: int = 0
    accounted: int = 0


def _print_deliveries(answers: list[Answer], outcomes: list[dict[str, Any]]) -> _Tally:
    """One line per delivery and event: its HTTP answer and what became of it."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    for outcome in outcomes:
        by_event.setdefault(str(outcome["event_id"]), []).append(outcome)
    print(f"{'delivery':<42} {'HTTP':>4}  {'event outcome':<12} {'contact':>8}  detail")
    tally = _Tally()
    for delivery, status, event_ids, detail in answers:
        tally.as_expected += status == delivery.expect
        if status == 200:
            print(f"{delivery.label:<42} {status:>4}  {'checked':<12} {'-':>8}")
            continue
        if status != 202:
            print(f"{delivery.label:<42} {status:>4}  {'refused':<12} {'-':>8}  {detail}")
            continue
        for event_id in event_ids:
            tally.accepted += 1
            found = by_event.get(event_id, [])
            if not found:
                print(f"{delivery.label:<42} {status:>4}  {'MISSING':<12}")
                continue
            outcome = found.pop(0)
            tally.accounted += 1
            action = outcome["action"]
            shown = (
                f"{outcome.get('code')}: {outcome.get('detail')}"
                if action == "dead_letter"
                else outcome.get("detail") or ", ".join(outcome.get("changed") or [])
            )
            contact = outcome.get("contact_id") or "-"
            print(f"{delivery.label:<42} {status:>4}  {action:<12} {contact:>8}  {shown}")
    return tally


def _print_totals(
    answers: list[Answer],
    outcomes: list[dict[str, Any]],
    letters: list[dict[str, str]],
    stats: dict[str, Any],
    accepted: int,
) -> None:
    actions = Counter(o["action"] for o in outcomes)
    contacts = {
        (o["action"], o.get("contact_id"))
        for o in outcomes
        if o["action"] in ("replaced", "created", "unchanged")
    }
    per_contact = Counter(action for action, _ in contacts)
    reasons = Counter(letter.get("error_code") for letter in letters)
    statuses = Counter(status for _, status, _, _ in answers)
    calls, tokens = stats["calls"], stats["tokens_by_endpoint"]
    form_calls = sum(n for name, n in calls.items() if "forms" in name)
    form_tokens = sum(n for name, n in tokens.items() if "forms" in name)
    event_calls, event_tokens = (
        sum(calls.values()) - form_calls,
        stats["tokens_spent"] - form_tokens,
    )
    print(
        f"\nwebhooks sent: {len(answers)} "
        f"({', '.join(f'{n} x {code}' for code, n in sorted(statuses.items()))}); "
        f"events received: {accepted}; contacts replaced: {per_contact['replaced']}, "
        f"created: {per_contact['created']}, unchanged: {per_contact['unchanged']}; "
        f"duplicates not applied again: {actions['duplicate']}; "
        f"events dead-lettered: {len(letters)} "
        f"({', '.join(f'{c}: {n}' for c, n in sorted(reasons.items())) or 'none'})"
    )
    print(
        f"Qomon: {event_calls} calls and {event_tokens} tokens "
        f"for the events (+{form_calls} calls, {form_tokens} tokens to load the forms once), "
        f"429s: {stats['rate_limited']}; by endpoint: {json.dumps(calls)}"
    )
