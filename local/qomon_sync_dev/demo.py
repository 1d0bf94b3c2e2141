"""`qomon-sync demo`: the main job on embedded local defaults.

Starts `qomon-sync local` (local AWS, the seeded Qomon stand-in, the sync handler fed by
the event source poller), sends the sample change events in events/changes to the FIFO
queue, plus a duplicate delivery and a malformed message, waits for the queue to drain,
and prints what became of each event and what it cost in Qomon calls and tokens. Exits 0
when every event sent is accounted for: applied, unchanged, duplicate, or dead-lettered
with a reason.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import httpx

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
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            endpoints = _wait_for_endpoints(endpoints_file, local)
            sent = _send_events(endpoints, sorted(args.events.glob("*.json")))
            local.send_signal(signal.SIGUSR1)  # the backlog is queued: let the poller start
            drained = _wait_until_drained(endpoints, args.timeout)
            letters = _dead_letters(endpoints)
            stats = httpx.get(f"{endpoints['qomon_url']}/_standin/stats", timeout=10).json()
        finally:
            local.send_signal(signal.SIGTERM)
            stopped = local.wait(timeout=30)
    outcomes = _outcomes(log_file)
    return _report(
        endpoints, sent, outcomes, letters, stats, drained=drained, stopped=stopped, log=log_file
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


def _send_events(endpoints: dict[str, str], paths: list[Path]) -> list[tuple[str, str]]:
    """Sends every sample as a source's delivery would: group = the contact, dedup = the
    event id. Returns (label, event id or message id) for each message sent."""
    sqs, sent = _sqs(endpoints), []
    bodies = [(path.stem, path.read_text(encoding="utf-8")) for path in paths]
    first_label, first_body = bodies[0]
    # A sender retrying after SQS's 5-minute deduplication window: same event, new message.
    bodies.append((f"{first_label} (redelivered)", first_body))
    bodies.append(("malformed", '{"event_id": "broken", "contact": '))
    for label, body in bodies:
        try:
            event = json.loads(body)
            contact = event["contact"]
            group = (
                f"id:{contact['id']}" if contact.get("id") else f"mail:{contact['mail'].casefold()}"
            )
            event_id, dedup = (
                event["event_id"],
                event["event_id"] + ("-again" if "redelivered" in label else ""),
            )
        except (ValueError, KeyError, TypeError):
            group, event_id, dedup = "unparsed", None, "malformed-1"
        answer = sqs.send_message(
            QueueUrl=endpoints["changes_queue_url"],
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=dedup,
        )
        sent.append((label, event_id or answer["MessageId"]))
    return sent


def _wait_until_drained(endpoints: dict[str, str], timeout: float) -> bool:
    sqs, quiet_since = _sqs(endpoints), None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = sqs.get_queue_attributes(
            QueueUrl=endpoints["changes_queue_url"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if all(value == "0" for value in counts.values()):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:
                return True
        else:
            quiet_since = None
        time.sleep(0.3)
    return False


def _dead_letters(endpoints: dict[str, str]) -> list[dict[str, str]]:
    sqs, letters = _sqs(endpoints), list[dict[str, str]]()
    while True:
        answer = sqs.receive_message(
            QueueUrl=endpoints["dead_letter_queue_url"],
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
        )
        if not answer.get("Messages"):
            return letters
        for message in answer["Messages"]:
            letters.append(
                {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
            )
            sqs.delete_message(
                QueueUrl=endpoints["dead_letter_queue_url"], ReceiptHandle=message["ReceiptHandle"]
            )


def _outcomes(log_file: Path) -> list[dict[str, Any]]:
    """The handler's one structured line per event ("event processed")."""
    outcomes = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("{") and '"event processed"' in line:
            record = json.loads(line)
            outcomes.append(record)
    return outcomes


def _report(
    endpoints: dict[str, str],
    sent: list[tuple[str, str]],
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
    print(f"sent {len(sent)} messages to {endpoints['changes_queue_url'].rsplit('/', 1)[-1]}\n")
    by_event: dict[str, list[dict[str, Any]]] = {}
    for outcome in outcomes:
        by_event.setdefault(str(outcome["event_id"]), []).append(outcome)
    print(f"{'message':<42} {'outcome':<12} {'contact':>8}  detail")
    accounted = 0
    for label, event_id in sent:
        found = by_event.get(event_id, [])
        if not found:
            print(f"{label:<42} {'MISSING':<12}")
            continue
        outcome = found.pop(0)
        accounted += 1
        action = outcome["action"]
        detail = (
            f"{outcome.get('code')}: {outcome.get('detail')}"
            if action == "dead_letter"
            else outcome.get("detail") or ", ".join(outcome.get("changed") or [])
        )
        print(f"{label:<42} {action:<12} {outcome.get('contact_id') or '-':>8}  {detail}")

    actions = Counter(o["action"] for o in outcomes)
    contacts = {
        (o["action"], o.get("contact_id"))
        for o in outcomes
        if o["action"] in ("replaced", "created", "unchanged")
    }
    per_contact = Counter(action for action, _ in contacts)
    reasons = Counter(letter.get("error_code") for letter in letters)
    calls, tokens = stats["calls"], stats["tokens_by_endpoint"]
    form_calls = sum(n for name, n in calls.items() if "forms" in name)
    form_tokens = sum(n for name, n in tokens.items() if "forms" in name)
    print(
        f"\nevents received: {len(sent)}; contacts replaced: {per_contact['replaced']}, "
        f"created: {per_contact['created']}, unchanged: {per_contact['unchanged']}; "
        f"duplicates not applied again: {actions['duplicate']}; "
        f"events dead-lettered: {len(letters)} "
        f"({', '.join(f'{c}: {n}' for c, n in sorted(reasons.items())) or 'none'})"
    )
    event_calls, event_tokens = (
        sum(calls.values()) - form_calls,
        stats["tokens_spent"] - form_tokens,
    )
    print(
        f"Qomon: {event_calls} calls and {event_tokens} tokens "
        f"for the events (+{form_calls} calls, {form_tokens} tokens to load the forms once), "
        f"429s: {stats['rate_limited']}; by endpoint: {json.dumps(calls)}"
    )
    complete = (
        drained
        and accounted == len(sent)
        and len(letters) == actions["dead_letter"]
        and stopped == 0
    )
    print(
        "every event accounted for"
        if complete
        else f"NOT every event accounted for ({accounted}/{len(sent)}, drained={drained}): {log}"
    )
    return 0 if complete else 1
