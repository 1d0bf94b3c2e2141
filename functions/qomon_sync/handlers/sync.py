"""The sync Lambda: change events from the FIFO queue become complete contacts in Qomon.

SQS hands over up to 10 messages. The FIFO batch processor walks them in order and, when
one fails, skips the rest of that message group only (one contact's trouble never holds
up another's). The first record of a contact folds all of that contact's events in the
batch into one read-modify-write (domain.contact_sync), so a contact costs one GET and at
most one PATCH however many of its events arrive together.

Each event ends in exactly one of:
- applied or found unchanged: its source and event id are recorded (never applied
  twice; the ingest sets `source` to the source it authenticated);
- dead-lettered at once with the reason, for failures a retry cannot fix (an invalid
  event, a rejection, an unknown contact, Qomon refusing the body or the key);
- left on the queue, for failures that may pass (429, 5xx, timeouts, too little time
  left): SQS delivers it again, and after `maxReceiveCount` its redrive policy moves it
  to the dead-letter queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from qomon_sync.adapters.dead_letters import DeadLetter, DeadLetterQueue
from qomon_sync.adapters.dry_run import DryRun
from qomon_sync.adapters.ledger import Claim, EventLedger, ledger_key
from qomon_sync.adapters.qomon import Deadline, QomonClient, QomonError, RetryPolicy, TokenBucket
from qomon_sync.adapters.qomon.port import QomonContacts, fetch_forms
from qomon_sync.adapters.secrets import MissingApiKey, pseudonym_key, qomon_api_key
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_sync import ContactSync, EventOutcome, QomonPort, sync_contact
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.privacy import (
    redact_paths,
    redact_refusal,
    redact_text,
    use_pseudonym_key,
)
from qomon_sync.domain.refusal import Code, Refusal
from qomon_sync.domain.validation import error_paths
from qomon_sync.handlers.observability import logger, metrics, tracer
from qomon_sync.settings import Settings, get_settings

MIN_TIME_FOR_A_CONTACT_S = 5.0
"""A search, a GET and a PATCH, paced: never start a contact with less than this left."""

CONTACT_METRICS = (
    ("replaced", "ContactsReplaced"),
    ("created", "ContactsCreated"),
    ("unchanged", "ContactsUnchanged"),
)
USAGE_METRICS = (
    ("tokens", "QomonTokensSpent"),
    ("calls", "QomonCalls"),
    ("rate_limited", "QomonRateLimited"),
)

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch that is all "retry later" (too little time, Qomon down) is reported as failed
# items, not raised: raising would count as a function error and wake the errors alarm.
processor.raise_on_entire_batch_failure = False


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = SyncBatch(event.get("Records") or [], context, current_runtime())
    try:
        return process_partial_response(
            event=event, record_handler=batch.handle, processor=processor, context=context
        )
    finally:
        batch.emit_usage()


class RetryLater(Exception):
    """Not a verdict on the event: SQS should deliver it again."""


@dataclass(frozen=True)
class Fate:
    retry: RetryLater | None = None


@dataclass
class Runtime:
    """What a warm function keeps between invocations."""

    settings: Settings
    sqs: Any
    bucket: TokenBucket
    ledger: EventLedger | None
    dead_letters: DeadLetterQueue
    _client: QomonClient | None = None
    _client_key: str | None = None
    _forms: FormCatalog | None = None
    _forms_until: float = 0.0

    def client(self) -> QomonClient:
        key = qomon_api_key(self.settings.qomon_api_key_secret)
        if self._client is None or key != self._client_key:
            # A rotated key gets a new client; the token bucket (the space's) is kept.
            self._client = QomonClient(
                str(self.settings.qomon_base_url),
                key,
                connect_timeout_s=self.settings.qomon_connect_timeout_s,
                read_timeout_s=self.settings.qomon_read_timeout_s,
                bucket=self.bucket,
                retry=RetryPolicy(max_attempts=self.settings.qomon_max_attempts),
                on_call=_record_call,
            )
            self._client_key = key
        return self._client

    def forms(self, client: QomonClient, deadline: Deadline) -> FormCatalog:
        # Forms change only in Qomon's web UI: 6 tokens per cold start, not per contact.
        if self._forms is None or time.monotonic() >= self._forms_until:
            self._forms = fetch_forms(client, deadline)
            self._forms_until = time.monotonic() + self.settings.forms_cache_s
        return self._forms


@lru_cache(maxsize=1)
def current_runtime() -> Runtime:
    settings = get_settings()
    use_pseudonym_key(lambda: pseudonym_key(settings.pseudonym_key_secret))
    sqs = boto3.client("sqs")
    return Runtime(
        settings=settings,
        sqs=sqs,
        bucket=TokenBucket(settings.qomon_bucket_size, settings.qomon_refill_per_s),
        ledger=None
        if settings.dry_run
        else EventLedger(settings.idempotency_table, expiry_s=settings.idempotency_expiry_s),
        dead_letters=DeadLetterQueue(sqs, settings.dead_letter_queue_url),
    )


def reset_runtime() -> None:
    """Forget settings, clients and cached secrets (local mode and tests change the
    environment, including the AWS endpoint the cached boto3 clients point at)."""
    current_runtime.cache_clear()
    get_settings.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # drops providers and values


def _record_call(endpoint: str, status: int | None, latency_s: float) -> None:
    metrics.add_metric(name="QomonLatency", unit=MetricUnit.Milliseconds, value=latency_s * 1000)


@dataclass
class SyncBatch:
    raw_records: Sequence[dict[str, Any]]
    context: LambdaContext
    runtime: Runtime
    fates: dict[str, Fate] = field(default_factory=dict)
    http_statuses: dict[str, int | None] = field(default_factory=dict)
    """Qomon's status for events dead-lettered because of a Qomon error."""
    _usage_before: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.records = [SQSRecord(r) for r in self.raw_records]
        metrics.add_metric(name="EventsReceived", unit=MetricUnit.Count, value=len(self.records))

    # -- the record handler the batch processor calls, in order ---------------------------

    def handle(self, record: SQSRecord) -> None:
        if record.message_id not in self.fates:
            group = _group_of(record)
            pending = [
                r for r in self.records if _group_of(r) == group and r.message_id not in self.fates
            ]
            self._sync_group(pending)
        fate = self.fates[record.message_id]
        if fate.retry is not None:
            raise fate.retry

    # -- one contact ----------------------------------------------------------------------

    def _sync_group(self, records: list[SQSRecord]) -> None:
        seconds_left = (
            self.context.get_remaining_time_in_millis() / 1000
            - self.runtime.settings.safety_margin_s
        )
        if seconds_left < MIN_TIME_FOR_A_CONTACT_S:
            self._retry(
                records, "too little time left in this invocation; SQS will deliver it again"
            )
            return
        deadline = Deadline.after(seconds_left)
        events: list[ChangeEvent] = []
        by_event: dict[str, SQSRecord] = {}
        claimed: set[str] = set()
        for index, record in enumerate(records):
            event = self._parse(record)
            if event is None or not self._in_replay_window(event, record):
                continue
            if ledger_key(event) in claimed:
                # A second copy of an event this batch already holds (a sender's retry
                # that reached the queue twice): a duplicate, settled now rather than left
                # to find its own claim busy and wait a whole visibility timeout.
                self._duplicate(event, record, "a copy of an event in the same batch")
                continue
            if event.event_id in by_event:
                # Another source's event with the same id (ids are unique per source): the
                # fold names events by id, so this one and what follows wait for the next
                # delivery, in order, as behind a busy event.
                self._retry(
                    records[index:], "another source's event with this id is in the same batch"
                )
                break
            claim = self._claim(event, record)
            if claim is Claim.DONE:
                continue
            if claim is Claim.BUSY:
                # Another consumer holds this event: it and what follows must wait for it.
                self._retry(
                    records[index:], "an earlier delivery of this event is still in progress"
                )
                break
            events.append(event)
            by_event[event.event_id] = record
            claimed.add(ledger_key(event))
        if events:
            self._apply(events, by_event, deadline)

    def _parse(self, record: SQSRecord) -> ChangeEvent | None:
        try:
            return ChangeEvent.model_validate_json(record.body)
        except ValidationError as exc:
            problems = error_paths(exc)
            detail = "; ".join(f"{path}: {why}" for path, why in problems)
            refusal = Refusal(
                Code.INVALID_EVENT,
                f"not a change event v1: {detail}",
                tuple(path for path, _ in problems),
            )
            self._dead_letter(record, None, refusal)
            return None

    def _claim(self, event: ChangeEvent, record: SQSRecord) -> Claim:
        if self.runtime.ledger is None:
            return Claim.NEW  # dry run: nothing is written, so nothing is recorded
        claim = self.runtime.ledger.claim(event, self.context.get_remaining_time_in_millis())
        if claim is Claim.DONE:
            self._duplicate(event, record, "already applied; not applied again")
        return claim

    def _duplicate(self, event: ChangeEvent, record: SQSRecord, why: str) -> None:
        self.fates[record.message_id] = Fate()
        metrics.add_metric(name="EventsDuplicate", unit=MetricUnit.Count, value=1)
        self._log(event.event_id, "duplicate", source=event.source, detail=why)

    def _in_replay_window(self, event: ChangeEvent, record: SQSRecord) -> bool:
        """Whether the ledger can still tell a replay of `event` from its first delivery.

        Typeform, Tally and Brevo sign no timestamp, so a captured delivery replayed after
        the ledger forgot it would be applied again and could revert later changes: an
        event older than the ledger's retention (or from the future, beyond a clock skew)
        is refused rather than guessed about."""
        settings = self.runtime.settings
        age_s = (datetime.now(UTC) - event.occurred_at).total_seconds()
        if -settings.future_skew_s <= age_s < settings.idempotency_expiry_s:
            return True
        when = "in the future" if age_s < 0 else "longer ago than the ledger remembers"
        refusal = Refusal(
            Code.OUTSIDE_REPLAY_WINDOW,
            f"the event occurred {when} ({settings.ledger_retention_days} days): it could be a "
            "replay, so it is not applied",
            ("occurred_at",),
        )
        self._dead_letter(record, event.event_id, refusal)
        return False

    def _apply(
        self, events: list[ChangeEvent], by_event: dict[str, SQSRecord], deadline: Deadline
    ) -> None:
        result = ContactSync()
        try:
            client = self.runtime.client()
            self._usage_before = self._usage_before or _usage(client)
            port: QomonPort = QomonContacts(client, deadline)
            settings = self.runtime.settings
            if settings.dry_run:
                # Values only on an explicit local-mode flag, never inside AWS Lambda.
                show = settings.dry_run_show_values and not settings.aws_execution_env
                port = DryRun(port, logger.info, show_values=show)
            forms = self.runtime.forms(client, deadline)
            sync_contact(
                events, port, forms, self.runtime.settings.assembly_policy(), result=result
            )
        except (QomonError, MissingApiKey) as exc:
            settled = {o.event_id for o in result.outcomes}
            rest = [e for e in events if e.event_id not in settled]
            if isinstance(exc, QomonError) and exc.retryable:
                for event in rest:
                    self._release(event, exc)
                self._retry([by_event[e.event_id] for e in rest], str(exc))
            else:
                code = exc.code if isinstance(exc, QomonError) else Code.MISSING_API_KEY
                status = exc.status if isinstance(exc, QomonError) else None
                refusal = Refusal(code, str(exc))
                for event in rest:
                    result.outcomes.append(
                        EventOutcome(event.event_id, "dead_letter", refusal=refusal)
                    )
                    self.http_statuses[event.event_id] = status
        self._settle(result, by_event, {event.event_id: event for event in events})

    def _settle(
        self,
        result: ContactSync,
        by_event: dict[str, SQSRecord],
        events: dict[str, ChangeEvent],
    ) -> None:
        actions = set()
        for outcome in result.outcomes:
            record = by_event[outcome.event_id]
            event = events[outcome.event_id]
            self.fates[record.message_id] = Fate()
            if outcome.refusal is not None:
                self._dead_letter(
                    record,
                    outcome.event_id,
                    outcome.refusal,
                    http_status=self.http_statuses.get(outcome.event_id),
                )
                if self.runtime.ledger is not None:
                    self.runtime.ledger.release(event, RuntimeError(outcome.refusal.code))
                continue
            actions.add(outcome.action)
            if self.runtime.ledger is not None:
                self.runtime.ledger.complete(
                    event, {"action": outcome.action, "contact_id": outcome.contact_id}
                )
            action: str = outcome.action
            if self.runtime.settings.dry_run and action != "unchanged":
                action = f"would_be_{action}"
            self._log(
                outcome.event_id,
                action,
                source=event.source,
                contact_id=outcome.contact_id,
                changed=redact_paths(outcome.changed),
                warnings=list(outcome.warnings),
            )
        for action, metric in CONTACT_METRICS:
            if action in actions:
                metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)

    # -- endings --------------------------------------------------------------------------

    def _dead_letter(
        self,
        record: SQSRecord,
        event_id: str | None,
        refusal: Refusal,
        *,
        http_status: int | None = None,
    ) -> None:
        # The one redaction, before the refusal leaves the process by any way.
        shown = redact_refusal(refusal)
        code, detail, fields = shown.code, shown.detail, shown.fields
        self.runtime.dead_letters.send(
            DeadLetter(
                body=record.body,
                group_id=_group_of(record),
                deduplication_id=record.message_id,
                code=code,
                detail=detail,
                fields=fields,
                http_status=http_status,
                attempts=int(record.attributes.approximate_receive_count or 1),
                event_id=event_id,
            )
        )
        self.fates[record.message_id] = Fate()
        with single_metric(
            name="EventsDeadLettered", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="service", value=metrics.service or "qomon-sync")
            metric.add_dimension(name="reason", value=code)
        self._log(
            event_id or record.message_id,
            "dead_letter",
            code=code,
            detail=detail,
            fields=list(fields),
        )

    def _retry(self, records: Sequence[SQSRecord], why: str) -> None:
        for record in records:
            self.fates[record.message_id] = Fate(retry=RetryLater(why))
        metrics.add_metric(name="EventsRetryLater", unit=MetricUnit.Count, value=len(records))
        logger.warning(
            "events left for redelivery",
            extra={
                "messages": [r.message_id for r in records],
                "events": len(records),
                "reason": redact_text(why),
            },
        )

    def _release(self, event: ChangeEvent, why: Exception) -> None:
        if self.runtime.ledger is not None:
            self.runtime.ledger.release(event, why)

    def _log(self, event_id: str, action: str, **details: Any) -> None:
        logger.set_correlation_id(event_id)
        logger.info("event processed", extra={"event_id": event_id, "action": action, **details})

    def emit_usage(self) -> None:
        client = self.runtime._client
        if client is None or not self._usage_before:
            return
        now = _usage(client)
        for name, metric in USAGE_METRICS:
            spent = now[name] - self._usage_before[name]
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=spent)


def _usage(client: QomonClient) -> dict[str, int]:
    stats = client.stats
    return {"tokens": stats.tokens, "calls": stats.calls, "rate_limited": stats.rate_limited}


def _group_of(record: SQSRecord) -> str:
    """The contact's message group; for a standard-queue test event, the contact's key."""
    group = record.attributes.message_group_id
    if group:
        return group
    try:
        body = json.loads(record.body)
        return ChangeEvent.model_validate(body).contact.key
    except (ValueError, ValidationError, TypeError):
        return record.message_id
