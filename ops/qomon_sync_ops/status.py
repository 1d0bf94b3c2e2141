"""`qomon-sync status`: is everything flowing, and is anything waiting for a person?

- the changes queue: how many events wait, how many are being applied, and how long the
  oldest has waited (CloudWatch's AWS/SQS ApproximateAgeOfOldestMessage);
- the staging table: events taken off the queue that wait for their contact's flush (one
  write for a contact's whole backlog), and how many contacts they belong to;
- the dead-letter queue: its letters by code and the oldest one's age (read without
  consuming them);
- the last hour, from the sync function's own metrics (namespace QomonSync, dimension
  service): contacts replaced, created and found unchanged, events received,
  dead-lettered (by reason), duplicates and redeliveries, Qomon tokens and 429s. Local
  mode publishes the very same metrics to its local CloudWatch as the functions emit
  them (AWS does that from the logs' EMF lines), so the same queries answer;
- the stack's alarms in alarm (they are named `<stack>-...`);
- the pause, when Qomon is down or refuses the key: since when, why, the next probe and
  the events waiting (the pause item in the staging table, application.pause).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync.adapters.space_pause import SpacePauses, place_of
from qomon_sync.adapters.table import EVENT as STAGED_EVENT
from qomon_sync.domain.pause import Pause, duration
from qomon_sync_ops import letters as dl
from qomon_sync_ops.cli import execute
from qomon_sync_ops.dlq import by_code
from qomon_sync_ops.target import Target
from qomon_sync_ops.target import add_arguments as add_target_arguments
from qomon_sync_ops.text import age, counted

NAMESPACE = "QomonSync"
SERVICE = "qomon-sync"
"""handlers/observability.py's Metrics (POWERTOOLS_METRICS_NAMESPACE and _SERVICE_NAME
in template.yaml's Globals)."""
HOUR = [
    ("ContactsReplaced", "contacts replaced"),
    ("ContactsCreated", "contacts created"),
    ("ContactsUnchanged", "contacts found unchanged"),
    ("EventsReceived", "events received"),
    ("EventsDuplicate", "duplicates not applied again"),
    ("EventsRetryLater", "events left for redelivery"),
    ("EventsStaged", "events staged"),
    ("FlushesDeferred", "flushes put off to the next invocation"),
    ("QomonTokensSpent", "Qomon tokens spent"),
    ("QomonCalls", "Qomon calls"),
    ("QomonRateLimited", "Qomon 429s"),
]
"""The sync function's metric names (a test checks it still emits each)."""
STAGED_SCAN_PAGES = 20
"""Enough pages of the staging table for any backlog a space's token budget can take on."""
DEAD_LETTERED = "EventsDeadLettered"
"""Emitted with the dimensions service and reason (the refusal code)."""
TOKENS_PER_HOUR = 36_000
"""Qomon refills 10 tokens a second: what the whole space may spend in an hour."""
WAITING_TOO_LONG_S = 15 * 60
"""The changes-waiting-too-long alarm's threshold."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)


def run_from_args(args: argparse.Namespace) -> int:
    return execute(args, run)


@dataclass
class Status:
    waiting: int = 0
    in_flight: int = 0
    oldest_waiting_s: float | None = None
    staged: int | None = None
    """Events in the staging table (None: the target names no staging table)."""
    staged_contacts: int = 0
    staged_more: bool = False
    """The count stopped at STAGED_SCAN_PAGES pages: there are more."""
    letters: list[dl.Letter] = field(default_factory=list)
    unseen_letters: int = 0
    hour: dict[str, float] = field(default_factory=dict)
    dead_lettered: dict[str, float] = field(default_factory=dict)
    alarms: list[tuple[str, str]] = field(default_factory=list)
    move_task: str | None = None
    pause: Pause | None = None
    pause_unread: str | None = None
    """What could not be read of the pause, in words (None: it was read)."""


def run(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    status = collect(target)
    report(status, target, out)
    return 0


def collect(target: Target, now: datetime | None = None) -> Status:
    now = now or datetime.now(UTC)
    sqs, cloudwatch = target.client("sqs"), target.client("cloudwatch")
    status = Status()
    counts = sqs.get_queue_attributes(
        QueueUrl=target.changes_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    status.waiting = int(counts.get("ApproximateNumberOfMessages", 0))
    status.in_flight = int(counts.get("ApproximateNumberOfMessagesNotVisible", 0))
    status.oldest_waiting_s = _oldest_age(cloudwatch, target.changes_queue_name, now)
    if target.staging_table:
        _count_staged(target.client("dynamodb"), target.staging_table, status)
        status.pause, status.pause_unread = read_pause(target)
    with dl.held(sqs, target.dead_letter_queue_url) as seen:
        status.letters, status.unseen_letters = seen.letters, seen.unseen
    status.hour = _sums(cloudwatch, [(n, [("service", SERVICE)]) for n, _ in HOUR], now)
    status.dead_lettered = _dead_lettered(cloudwatch, now)
    status.alarms = _alarms(cloudwatch, target.stack_name)
    status.move_task = _move_task(sqs, target)
    return status


def pause_of(target: Target) -> Pause | None:
    """The space's pause, read where the sync keeps it (None: not paused, or no table)."""
    if not target.staging_table:
        return None
    pauses = SpacePauses(
        target.client("dynamodb"), target.staging_table, place_of(target.qomon_base_url)
    )
    return pauses.get()


def read_pause(target: Target) -> tuple[Pause | None, str | None]:
    """The pause, or what kept it from being read (a refused GetItem): the rest of the
    status is still worth printing."""
    try:
        return pause_of(target), None
    except (ClientError, BotoCoreError) as error:
        code = (
            error.response.get("Error", {}).get("Code", "")
            if isinstance(error, ClientError)
            else type(error).__name__
        )
        return None, (
            f"could not read the pause item in the staging table {target.staging_table} "
            f"({code}; it needs dynamodb:GetItem on it)"
        )


def pause_line(status: Status, now: float | None = None) -> str:
    pause = status.pause
    if status.pause_unread is not None:
        return f"unknown: {status.pause_unread}"
    if pause is None:
        return "not paused"
    now = time.time() if now is None else now
    since = datetime.fromtimestamp(pause.since, UTC).strftime("%H:%M UTC on %Y-%m-%d")
    due = pause.next_probe_at - now
    probe = f"next probe in {duration(due)}" if due > 0 else "a probe is due now"
    staged = f", {counted(status.staged, 'event')} staged" if status.staged else ""
    waiting = f"{counted(status.waiting + status.in_flight, 'message')} on the queue{staged}"
    return (
        f"PAUSED since {since} ({duration(now - pause.since)}): {pause.description}; "
        f"{probe} ({counted(pause.probes, 'probe')} so far); {waiting} wait, nothing is lost"
    )


def _count_staged(dynamodb: Any, table: str, status: Status) -> None:
    """Count the staged events and their contacts, reading only the keys: a staged
    event's key is its contact's queue group (a Qomon id, or an e-mail's pseudonym)."""
    request: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "pk",
        "FilterExpression": "begins_with(sk, :event)",
        "ExpressionAttributeValues": {":event": {"S": STAGED_EVENT}},
    }
    events, contacts = 0, set()
    for _ in range(STAGED_SCAN_PAGES):
        answer = dynamodb.scan(**request)
        for item in answer.get("Items") or []:
            events += 1
            contacts.add(item["pk"]["S"])
        if "LastEvaluatedKey" not in answer:
            break
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    else:
        status.staged_more = True
    status.staged, status.staged_contacts = events, len(contacts)


def _sums(
    cloudwatch: Any, metrics: Sequence[tuple[str, Sequence[tuple[str, str]]]], now: datetime
) -> dict[str, float]:
    """Each metric's sum over the last hour (absent: no data, which is 0 for counters)."""
    if not metrics:
        return {}
    queries = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
                },
                "Period": 300,
                "Stat": "Sum",
            },
        }
        for i, (name, dimensions) in enumerate(metrics)
    ]
    sums: dict[str, float] = {}
    for start in range(0, len(queries), 100):
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=queries[start : start + 100],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=1),
        )
        for result in answer.get("MetricDataResults") or []:
            index = int(result["Id"][1:])
            sums[metrics[index][0] + _key(metrics[index][1])] = float(
                sum(result.get("Values") or [])
            )
    return sums


def _key(dimensions: Iterable[tuple[str, str]]) -> str:
    reason = dict(dimensions).get("reason")
    return f":{reason}" if reason else ""


def _dead_lettered(cloudwatch: Any, now: datetime) -> dict[str, float]:
    found = cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=DEAD_LETTERED).get("Metrics")
    sets = []
    for metric in found or []:
        dimensions = [(d["Name"], d["Value"]) for d in metric.get("Dimensions") or []]
        if ("service", SERVICE) in dimensions and dict(dimensions).get("reason"):
            sets.append((DEAD_LETTERED, dimensions))
    sums = _sums(cloudwatch, sets, now)
    return {key.split(":", 1)[1]: value for key, value in sums.items() if value}


def _oldest_age(cloudwatch: Any, queue_name: str, now: datetime) -> float | None:
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "age",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateAgeOfOldestMessage",
                        "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now,
        ScanBy="TimestampDescending",
    )
    values = (answer.get("MetricDataResults") or [{}])[0].get("Values") or []
    return float(values[0]) if values else None


def _alarms(cloudwatch: Any, stack: str) -> list[tuple[str, str]]:
    answer = cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack}-", StateValue="ALARM")
    return [
        (str(alarm["AlarmName"]), str(alarm.get("StateReason", "")))
        for alarm in answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", [])
    ]


def _move_task(sqs: Any, target: Target) -> str | None:
    """A redrive SQS is running (`dlq redrive --all`), in words; None if none runs."""
    if target.local:
        return None  # local mode's SQS (moto) has no move tasks
    dead_letter_queue_arn = target.dead_letter_queue_arn
    try:
        tasks = sqs.list_message_move_tasks(SourceArn=dead_letter_queue_arn, MaxResults=1)
    except (ClientError, BotoCoreError, NotImplementedError):
        return None
    for task in tasks.get("Results") or []:
        if task.get("Status") == "RUNNING":
            moved, total = (
                task.get("ApproximateNumberOfMessagesMoved", 0),
                task.get("ApproximateNumberOfMessagesToMove", "?"),
            )
            return f"a redrive is moving letters back: {moved} of {total} moved"
    return None


# -- the report ----------------------------------------------------------------------------


def report(status: Status, target: Target, out: TextIO) -> None:
    print(f"qomon-sync status of {target.description}:", file=out)
    print(f"- Pause: {pause_line(status)}", file=out)
    print(f"- Changes queue: {_queue_line(status, target)}", file=out)
    if status.staged is not None:
        print(f"- Staging table: {_staged_line(status)}", file=out)
    print(f"- Dead-letter queue: {_letters_line(status)}", file=out)
    if status.move_task:
        print(f"  ({status.move_task})", file=out)
    print(f"- Last hour: {_hour_line(status)}", file=out)
    print(f"- Alarms: {_alarms_line(status, target)}", file=out)
    for line in next_steps(status):
        print(f"Next: {line}", file=out)


def _queue_line(status: Status, target: Target) -> str:
    line = f"{counted(status.waiting, 'event')} waiting, {status.in_flight} being applied"
    if status.oldest_waiting_s is not None:
        return f"{line}; the oldest has waited {age(status.oldest_waiting_s)}"
    if target.local:
        return f"{line} (local mode does not measure the oldest one's age)"
    if status.waiting:
        return f"{line} (no age reported yet: SQS sends it to CloudWatch every minute)"
    return line


def _staged_line(status: Status) -> str:
    if not status.staged:
        return "no event waits for its contact's flush"
    more = " (at least: the count stopped)" if status.staged_more else ""
    return (
        f"{counted(status.staged, 'event')}{more} of "
        f"{counted(status.staged_contacts, 'contact')} taken off the queue, waiting for "
        "their contact's flush (one write for each contact's whole backlog; a flush marker "
        "on the queue, or in the dead-letter queue as flush_marker, brings it)"
    )


def _letters_line(status: Status) -> str:
    if not status.letters:
        return "empty"
    now = datetime.now(UTC)
    oldest = max((m.age_s(now) or 0.0) for m in status.letters)
    more = f", and {status.unseen_letters} not readable now" if status.unseen_letters else ""
    return (
        f"{counted(len(status.letters), 'letter')} ({by_code(status.letters)}{more}); the "
        f"oldest failed {age(oldest)} ago (letters are kept 14 days)"
    )


def _hour_line(status: Status) -> str:
    hour = status.hour
    parts = [f"{words} {int(hour.get(name, 0)):,}" for name, words in HOUR]
    dead = sum(status.dead_lettered.values())
    reasons = ", ".join(f"{code} {int(n)}" for code, n in sorted(status.dead_lettered.items()))
    parts.insert(4, f"events dead-lettered {int(dead):,}" + (f" ({reasons})" if reasons else ""))
    tokens = hour.get("QomonTokensSpent", 0)
    if tokens:
        share = tokens / TOKENS_PER_HOUR
        said = f"{share:.0%}" if share >= 0.01 else "under 1%"
        at = next(i for i, p in enumerate(parts) if p.startswith("Qomon tokens spent"))
        parts[at] += f" ({said} of the {TOKENS_PER_HOUR:,} the space refills in an hour)"
    return "; ".join(parts)


def _alarms_line(status: Status, target: Target) -> str:
    if status.alarms:
        names = "; ".join(
            f"{name} ({reason})" if reason else name for name, reason in status.alarms
        )
        return f"{counted(len(status.alarms), 'alarm')} in alarm: {names}"
    if target.local:
        return "none in alarm (local mode sets up no alarms)"
    return "none in alarm"


def next_steps(status: Status) -> list[str]:
    steps = []
    if status.pause is not None:
        if status.pause.cause == "key_refused":
            steps.append(
                "Qomon refuses the API key: put a valid key in the API key secret; the sync "
                "resumes at the next probe, or at once with `qomon-sync resume`"
            )
        else:
            steps.append(
                "the sync waits for Qomon and resumes by itself; `qomon-sync resume` probes "
                "now (docs/runbook.md, The pause)"
            )
    if status.letters:
        steps.append(
            "`qomon-sync dlq list` shows the letters; `qomon-sync dlq show EVENT_ID` says "
            "why one failed and what to do"
        )
    if status.oldest_waiting_s is not None and status.oldest_waiting_s > WAITING_TOO_LONG_S:
        steps.append(
            "changes wait more than 15 minutes: Qomon is slow or refusing (see the 429s), "
            "or the backlog exceeds the space's rate; see docs/runbook.md"
        )
    if status.alarms:
        steps.append("docs/runbook.md says what each alarm means and what to do")
    return steps or ["nothing to do: events flow and none waits for a person."]
