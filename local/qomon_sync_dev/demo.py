"""`qomon-sync demo`: the main job on embedded local defaults.

Starts `qomon-sync local` (local AWS, the seeded Qomon stand-in, the webhook endpoint and
the sync handler fed by the event source poller), sends signed webhooks: every sample
change event through the generic (Standard Webhooks) source, one documented delivery of
every other source of the mapping file (from the registry: the first fixture of
events/webhooks/<name>/), Mailchimp's URL check, a sender's redelivery, and strangers: a
bad signature, a wrong URL secret, a malformed body. It waits for the queue to drain and
reads the sync's "event processed" log lines, then prints one line per delivery (its HTTP
answer and what became of its events: applied in which write, unchanged, duplicate of
which delivery, dead-lettered and why), each write to Qomon once with the paths it
changed, and what it all cost in Qomon calls and tokens. Exits 0 when every delivery got
the answer it should and every accepted event is accounted for.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from qomon_sync_dev.local_lambda import queue_is_empty, take_dead_letters
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
    account = account_for(answers, outcomes)
    _print_deliveries(account)
    _print_writes(account)
    _print_totals(answers, account, letters, stats)
    actions = Counter(o["action"] for o in outcomes)
    complete = (
        drained
        and account.as_expected == len(answers)
        and account.accounted == account.accepted
        and len(letters) == actions["dead_letter"]
        and stopped == 0
    )
    print(
        "every event accounted for"
        if complete
        else f"NOT every event accounted for ({account.accounted}/{account.accepted}, "
        f"drained={drained}): {log}"
    )
    return 0 if complete else 1


# -- what became of each delivery ------------------------------------------------------------

WRITTEN = ("replaced", "created")
"""The actions of an event applied in a write (a PATCH, or the POST creating the contact)."""


@dataclass
class Write:
    """One write to Qomon: a contact's backlog folded into one PATCH (or one creation).

    The sync logs one "event processed" line per event, each naming the write's contact
    and the paths the write changed; the events of one write are logged one after the
    other by the invocation that made it."""

    contact_id: int
    action: str
    changed: tuple[str, ...]
    warnings: tuple[str, ...]
    invocation: str
    events: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)
    number: int = 0
    """Its number in the demo's table, in the order the deliveries meet it."""


@dataclass
class Account:
    lines: list[tuple[str, int, str]] = field(default_factory=list)
    """One per delivery: its label, its HTTP answer, what became of its events."""
    writes: list[Write] = field(default_factory=list)
    """In the order of their numbers."""
    as_expected: int = 0
    accepted: int = 0
    accounted: int = 0
    applied: int = 0
    unchanged: int = 0
    duplicates: int = 0


def account_for(answers: list[Answer], outcomes: list[dict[str, Any]]) -> Account:
    """Each delivery's events matched with the sync's outcomes, and the writes they made.

    An event delivered twice is staged twice, in queue order (one contact is one message
    group, so its messages keep the order they were sent in): the flush applies the first
    copy and settles the later one as a duplicate, and a copy arriving after the event was
    applied finds it recorded in the ledger. So an event's outcome that is not
    `duplicate` belongs to the first delivery that carried it, and its duplicates to the
    later ones."""
    writes, write_of = _writes(outcomes)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for outcome in sorted(outcomes, key=lambda o: o["action"] == "duplicate"):
        by_event.setdefault(str(outcome["event_id"]), []).append(outcome)
    first_delivery: dict[str, str] = {}
    account = Account()
    for delivery, status, event_ids, detail in answers:
        account.as_expected += status == delivery.expect
        if status == 200:
            fates = ["checked: nothing queued"]
        elif status != 202:
            fates = [f"refused: {detail}"]
        else:
            fates = []
            for event_id in event_ids:
                first = first_delivery.setdefault(event_id, delivery.label)
                fates.append(
                    _event_fate(account, by_event.get(event_id), write_of, first, delivery)
                )
        account.lines.append((delivery.label, status, _in_words(fates)))
    for write in writes:  # a write no delivery of the demo's led to (none is expected)
        if not write.number:
            _number(account, write)
    return account


def _event_fate(
    account: Account,
    found: list[dict[str, Any]] | None,
    write_of: dict[int, Write],
    first: str,
    delivery: Delivery,
) -> str:
    """What became of one accepted event: its next outcome, in the sync's words."""
    account.accepted += 1
    if not found:
        return "MISSING: the sync logged no outcome for it"
    outcome = found.pop(0)
    account.accounted += 1
    write = write_of.get(id(outcome))
    if write is not None:
        _number(account, write)
        if delivery.label not in write.deliveries:
            write.deliveries.append(delivery.label)
    return _fate(outcome, write, first, account)


def _number(account: Account, write: Write) -> None:
    """Numbers the writes in the order the deliveries' table meets them."""
    if not write.number:
        account.writes.append(write)
        write.number = len(account.writes)


def _writes(outcomes: list[dict[str, Any]]) -> tuple[list[Write], dict[int, Write]]:
    """The writes the outcomes tell of, and the write of each applied event's outcome."""
    writes: list[Write] = []
    write_of: dict[int, Write] = {}
    last: Write | None = None
    for outcome in outcomes:
        if outcome["action"] not in WRITTEN:
            last = None
            continue
        write = Write(
            contact_id=int(outcome["contact_id"]),
            action=str(outcome["action"]),
            changed=tuple(outcome.get("changed") or ()),
            warnings=tuple(outcome.get("warnings") or ()),
            invocation=str(outcome.get("function_request_id", "")),
        )
        if last is None or _key(last) != _key(write):
            writes.append(write)
            last = write
        last.events.append(str(outcome["event_id"]))
        write_of[id(outcome)] = last
    return writes, write_of


def _key(write: Write) -> tuple[object, ...]:
    return (write.invocation, write.contact_id, write.action, write.changed)


def _fate(outcome: dict[str, Any], write: Write | None, first: str, account: Account) -> str:
    action = outcome["action"]
    if write is not None:
        account.applied += 1
        return f"applied in write {write.number} (contact {write.contact_id}, {write.action})"
    if action == "unchanged":
        account.unchanged += 1
        contact = outcome.get("contact_id")
        why = "; ".join(outcome.get("warnings") or ()) or "Qomon already holds it"
        return f"unchanged (contact {contact}): {why}" if contact else f"unchanged: {why}"
    if action == "duplicate":
        account.duplicates += 1
        return f"duplicate of {first}, not applied again ({outcome.get('detail')})"
    if action == "dead_letter":
        return f"dead-lettered: {outcome.get('code')}: {outcome.get('detail')}"
    detail = outcome.get("detail")
    return f"{action}: {detail}" if detail else str(action)


def _in_words(fates: list[str]) -> str:
    """One delivery's events' fates: `3 events applied in write 5 (...)` for a batch."""
    counted = Counter(fates)
    return "; ".join(
        fate if counted[fate] == 1 else f"{counted[fate]} events {fate}" for fate in counted
    )


def _print_deliveries(account: Account) -> None:
    print(f"{'delivery':<42} {'HTTP':>4}  what became of its events")
    for label, status, fate in account.lines:
        print(f"{label:<42} {status:>4}  {fate}")


def _print_writes(account: Account) -> None:
    """Each write once, with the paths it changed (never a value)."""
    print("\nwrites to Qomon (a contact's waiting events fold into one), with the paths changed")
    for write in account.writes:
        events = len(write.events)
        deliveries = len(write.deliveries)
        head = (
            f"write {write.number}: contact {write.contact_id} {write.action}, "
            f"{events} event{'s' * (events != 1)} "
            f"from {deliveries} deliver{'ies' if deliveries != 1 else 'y'}"
        )
        paths = ", ".join(write.changed) or "nothing"
        print(textwrap.fill(f"{head}: {paths}", width=100, subsequent_indent="    "))
        for warning in write.warnings:
            print(f"    note: {warning}")


def _print_totals(
    answers: list[Answer],
    account: Account,
    letters: list[dict[str, str]],
    stats: dict[str, Any],
) -> None:
    reasons = Counter(letter.get("error_code") for letter in letters)
    statuses = Counter(status for _, status, _, _ in answers)
    kinds = Counter(write.action for write in account.writes)
    contacts = len({write.contact_id for write in account.writes})
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
        f"events received: {account.accepted}"
    )
    print(
        f"events applied: {account.applied}, in {len(account.writes)} writes to {contacts} "
        f"contacts ({', '.join(f'{kind}: {n}' for kind, n in sorted(kinds.items()))}); "
        f"unchanged: {account.unchanged}; duplicates not applied again: {account.duplicates}; "
        f"dead-lettered: {len(letters)} "
        f"({', '.join(f'{c}: {n}' for c, n in sorted(reasons.items())) or 'none'})"
    )
    print(
        f"Qomon: {event_calls} calls and {event_tokens} tokens "
        f"for the events (+{form_calls} calls, {form_tokens} tokens to load the forms once), "
        f"429s: {stats['rate_limited']}; by endpoint: {json.dumps(calls)}"
    )
