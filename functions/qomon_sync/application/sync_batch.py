"""One batch of queue messages: stage each contact's events, and flush those complete.

SQS hands over up to 10 messages. A FIFO queue shows a contact's (message group's) next
messages only once the earlier ones are deleted, so a batch may hold the start of a long
backlog. For each contact (group) in the batch, in order:

1. its events are checked (a message that is not a change event, or an event outside the
   replay window, is dead-lettered with its reason) and staged (adapters.staging), keyed
   by their SQS sequence number; flush markers (adapters.flush_markers) stage nothing;
2. before the first flush, the e-mails of the contacts named by e-mail that are not known
   yet are looked up together, in one search (application.mail_lookup); on a backlog,
   those contacts may instead wait for their flush marker, to be looked up with others
   (a marker back before the wait is over is held on the queue for the rest of it);
3. the contact is **flushed** (application.flush: every staged event in one GET and at
   most one PATCH) when its backlog is drained: the batch held fewer messages than a batch
   may, or this contact is not the batch's last (SQS returns as many messages of one group
   as it can before the next group, so a group followed by another was complete). A
   contact that is the last of a full batch may have more waiting: its events stay staged,
   and a flush marker is queued behind them in its group, unless one already waits there;
   whoever receives the marker flushes. A contact waiting longer than
   `STAGING_MAX_AGE_S` is flushed anyway;
4. its messages are deleted (reported as done): staged events are kept by the staging
   table from then on. Before another contact's flush starts, the messages of the
   contacts settled so far are deleted at once (adapters.settled_messages), so that a
   crash or a timeout in that flush does not bring them back. On a redelivery, contacts
   whose flush stopped before (the ledger still holds their claims) are run last: one
   contact that crashes the function on every delivery reaches the dead-letter queue
   alone, without taking the contacts batched with it. Only when the flush met a
   failure that may pass (429, 5xx, a timeout, an event held by another consumer) are
   the contact's messages left on the queue, to come back after the visibility timeout
   and be staged again (the same items) and flushed; on their last delivery the staged
   events are dead-lettered with the reason (`retries_exhausted`) rather than stranded.
   A flush that had no time or tokens left queues a marker instead, for the next
   invocation.

What becomes of each contact, and so of its messages, is an application.outcome: done,
deferred or retry. Powertools' FIFO batch processor reports it (SyncBatchProcessor): the
batch runs once, in the processor's `_prepare` hook, and each record is then reported by
its contact's outcome, a retry as a failed item.

Why nothing is stranded: an event is deleted from the queue only once it is settled, or
staged with a flush marker of its group behind it on the queue (sent before the delete,
or still waiting from before). FIFO order delivers that marker after every message ahead
of it, and its delivery flushes the group or queues another marker; a marker goes back
to the queue only when the flush fails, with the receive count bounding how often.

Why nothing is applied twice or lost: one group's messages are in one consumer's hands at
a time (FIFO), and so are its staging and flush. A consumer killed after staging finds
its messages delivered again, and staging them again writes the same items; killed in a
flush, the ledger's claims (expiring with the invocation) and the staged events are still
there for the next delivery, and events the ledger records as applied are settled as
duplicates, never applied again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync.adapters.staging import Head, Staged
from qomon_sync.application.flush import Flush
from qomon_sync.application.invocation import Invocation
from qomon_sync.application.mail_lookup import look_up_mails
from qomon_sync.application.messages import as_staged, group_of, marker, read_event, receives
from qomon_sync.application.outcome import Next, Outcome
from qomon_sync.application.pause import SECOND_OPINION_S, paused_reason, second_opinion
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.privacy import redact_text
from qomon_sync.domain.refusal import Code, Refusal

# `receives` is application.messages': named here too for the soak (local/), which reads it
# from this module.
__all__ = ["ContactRun", "SyncBatch", "SyncBatchProcessor", "receives"]

MIN_TIME_TO_STAGE_S = 1.0
"""One DynamoDB write and maybe one SQS send: below this, the batch goes back untouched."""
NOT_REACHED = Outcome.retry("not reached")
"""A message the batch never came to (it stopped on an unexpected error): it comes back."""


class SyncBatch:
    """One invocation's messages, contact by contact; `outcomes` says what became of each."""

    def __init__(self, raw_records: Sequence[dict[str, Any]], invocation: Invocation) -> None:
        self.invocation = invocation
        self.runtime = invocation.runtime
        self.telemetry = invocation.telemetry
        self.records = [SQSRecord(r) for r in raw_records]
        self.outcomes: dict[str, Outcome] = {}
        """Message id -> its contact's outcome, filled as the contacts run."""
        self._deleted: set[str] = set()
        events = sum(1 for r in self.records if marker(r) is None)
        self.telemetry.count("EventsReceived", events)

    def run(self) -> None:
        groups: dict[str, list[SQSRecord]] = {}
        for record in self.records:
            groups.setdefault(group_of(record, self.runtime.pseudonyms), []).append(record)
        full = len(self.records) >= self.runtime.settings.batch_size
        last = group_of(self.records[-1], self.runtime.pseudonyms) if self.records else None
        # The e-mails of every contact here, in one search before any flush (each flush
        # would search its own), or, on a backlog, with a later batch's (they wait).
        lookups = look_up_mails(self.invocation, groups, full=full, last=last)
        for group in self._stopped_before(groups):
            records = groups[group]
            if group in lookups.held and self._hold(group, records, lookups.held[group]):
                continue
            drained = not (full and group == last) and group not in lookups.waiting
            run = ContactRun(
                self.invocation, group, records, drained=drained, before_flush=self.delete_settled
            )
            try:
                outcome = run.run()
            except Exception as exc:  # DynamoDB or SQS failing: SQS delivers it all again
                outcome = Outcome.retry(f"unexpected error: {type(exc).__name__}")
            self.end(records, outcome)

    def _hold(self, group: str, records: list[SQSRecord], seconds: int) -> bool:
        """Hold a waiting contact's flush marker on the queue for `seconds` (it is back
        before its e-mail's search: application.mail_lookup); False when SQS refused, and
        the contact then waits as before, behind a marker sent again."""
        try:
            for record in records:
                self.runtime.markers.hold(record.receipt_handle, seconds)
        except (BotoCoreError, ClientError) as exc:
            self.telemetry.info("flush marker not held", error=type(exc).__name__)
            return False
        self.telemetry.count("FlushMarkersHeld", len(records))
        try:  # so that the search that finds its e-mail lets it come round at once
            waiting = self.runtime.waiting_lookups()
            for record in records:
                waiting.hold(group, record.receipt_handle)
        except (BotoCoreError, ClientError) as exc:  # it comes round when its hold ends
            self.telemetry.info("held flush marker not noted", error=type(exc).__name__)
        outcome = Outcome.held("waiting for its e-mail to be looked up with others", seconds)
        self.end(records, outcome)
        return True

    def outcome_of(self, record: SQSRecord) -> Outcome:
        return self.outcomes.get(record.message_id, NOT_REACHED)

    def _stopped_before(self, groups: dict[str, list[SQSRecord]]) -> list[str]:
        """The groups in the order to run them: those whose flush did not finish on an
        earlier delivery go last, after every other contact is settled and deleted, so
        that if it stops the function again it brings back no one else. A flush that
        stopped leaves its claims in progress in the ledger; a flush marker comes back
        only when its flush did not finish, or when it was held while its contact waited
        for an e-mail search (it then goes last for nothing). Contacts are independent;
        each keeps its own order."""
        order = list(groups)
        if len(order) < 2 or all(receives(r) < 2 for r in self.records):
            return order
        stopped = {
            group
            for group, records in groups.items()
            if any(marker(r) is not None and receives(r) >= 2 for r in records)
        }
        stopped |= self._held({g: r for g, r in groups.items() if g not in stopped})
        if stopped:
            self.telemetry.info(
                "contacts whose flush may have stopped on an earlier delivery go last",
                contacts=len(stopped),
            )
        return [g for g in order if g not in stopped] + [g for g in order if g in stopped]

    def _held(self, groups: dict[str, list[SQSRecord]]) -> set[str]:
        """The groups with an event the ledger holds in progress."""
        ledger = self.runtime.ledger
        events = [
            (group, event)
            for group, records in groups.items()
            for record in records
            if marker(record) is None and isinstance(event := read_event(record.body), ChangeEvent)
        ]
        if ledger is None or not events:
            return set()
        try:
            held = ledger.in_progress([event for _, event in events])
        except (BotoCoreError, ClientError, RuntimeError):
            return set()  # only an order: the flushes find out for themselves
        return {group for (group, _), busy in zip(events, held, strict=True) if busy}

    # -- endings --------------------------------------------------------------------------

    def end(self, records: Sequence[SQSRecord], outcome: Outcome) -> None:
        """Record what became of a contact's messages, and say so when they come back."""
        for record in records:
            self.outcomes[record.message_id] = outcome
        if not outcome.comes_back or outcome.next is Next.HELD:
            return
        self.telemetry.count("EventsRetryLater", len(records))
        self.telemetry.warning(
            "events left for redelivery",
            messages=[r.message_id for r in records],
            events=len(records),
            reason=redact_text(outcome.reason),
        )

    def delete_settled(self) -> None:
        """Delete the messages settled so far, before another contact's flush: if that
        flush never returns, they do not come back with it."""
        settled = self.runtime.settled
        if settled is None:
            return
        done = [
            r
            for r in self.records
            if r.message_id not in self._deleted
            and (outcome := self.outcomes.get(r.message_id)) is not None
            and not outcome.comes_back
        ]
        if not done:
            return
        self._deleted.update(r.message_id for r in done)
        failed = settled.delete([r.receipt_handle for r in done])
        if failed:
            self.telemetry.warning(
                "settled messages not deleted early; the batch's report deletes them",
                messages=failed,
            )


class ContactRun:
    """One contact's messages in this batch: staged, then flushed or left waiting."""

    def __init__(
        self,
        invocation: Invocation,
        group: str,
        records: list[SQSRecord],
        *,
        drained: bool,
        before_flush: Callable[[], None] = lambda: None,
    ) -> None:
        self.invocation = invocation
        self.runtime = invocation.runtime
        self.settings = invocation.runtime.settings
        self.telemetry = invocation.telemetry
        self.group = group
        self.records = records
        self.drained = drained
        self.before_flush = before_flush
        """Called before the flush starts (the batch deletes the messages settled so far)."""
        self.markers: set[str] = set()
        self.letters: list[tuple[Staged, Refusal, str | None]] = []
        """Messages refused before staging, with why and their event id: sent unless the
        contact's messages come back (they would be refused again)."""

    def run(self) -> Outcome:
        if self.invocation.seconds_left() < MIN_TIME_TO_STAGE_S:
            return Outcome.retry("too little time left in this invocation")
        staged = self._sort()
        if staged:
            self.runtime.staging.stage(self.group, staged)
            self.telemetry.count("EventsStaged", len(staged))
            if self.runtime.on_staged is not None:
                self.runtime.on_staged(self.group)
        try:
            outcome = self._flush_or_wait(bool(staged))
        except Exception as exc:
            if not self._last_delivery():
                raise  # SyncBatch leaves the group's messages for redelivery
            # The last delivery: a failure that is not a verdict (a bug, a poison event,
            # DynamoDB) would otherwise let the redrive policy move these messages without
            # a reason and strand every event staged before them.
            self._give_up(f"unexpected error: {type(exc).__name__}")
            outcome = Outcome.done()
        if not outcome.comes_back:
            for message, refusal, event_id in self.letters:
                self.invocation.dead_letter(self.group, message, refusal, event_id=event_id)
        return outcome

    # -- 1. sort the messages ---------------------------------------------------------------

    def _sort(self) -> list[Staged]:
        staged: list[Staged] = []
        for index, record in enumerate(self.records):
            flush_marker = marker(record)
            if flush_marker is not None:
                self.markers.add(flush_marker)
                continue
            message = as_staged(record, index)
            event = read_event(record.body)
            if isinstance(event, Refusal):
                self.letters.append((message, event, None))
            elif self._in_replay_window(event, message):
                staged.append(message)
        return staged

    def _in_replay_window(self, event: ChangeEvent, message: Staged) -> bool:
        """Whether the ledger can still tell a replay of `event` from its first delivery.

        Typeform, Tally and Brevo sign no timestamp, so a captured delivery replayed after
        the ledger forgot it would be applied again and could revert later changes: an
        event older than the ledger's retention (or from the future, beyond a clock skew)
        is refused rather than guessed about."""
        settings = self.settings
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
        self.letters.append((message, refusal, event.event_id))
        return False

    # -- 2. flush, or wait for the rest -------------------------------------------------------

    def _flush_or_wait(self, staged_now: bool) -> Outcome:
        if not self.drained:
            head = self.runtime.staging.head(self.group)
            waited = time.time() - head.since if head.since is not None else 0.0
            if waited < self.settings.staging_max_age_s:
                self._keep_waiting(head)
                return Outcome.deferred("more of this contact's backlog may be waiting")
        if not staged_now and not self.markers:
            return Outcome.done()  # only letters in this batch for this group: nothing to apply
        self.invocation.note_usage()
        self.before_flush()
        flush = Flush(self.invocation, self.group, keep_back_s=self._kept_back())
        outcome = flush.run()
        if outcome.next is Next.DEFERRED:
            self.telemetry.count("FlushesDeferred")
            self._keep_waiting(flush.head)
        elif outcome.comes_back and self._last_delivery():
            waits = self._second_opinion(flush)
            if waits is not None:
                return waits
            # The last delivery: dead-letter what is staged rather than let the redrive
            # policy move these messages without a reason and strand the rest.
            self._give_up(outcome.reason, flush.given_up_as)
            return Outcome.done()
        return outcome

    def _second_opinion(self, flush: Flush) -> Outcome | None:
        """A systemic failure met by this contact alone, on its last delivery: if Qomon
        fails for another contact too, the space pauses and the events wait staged with a
        marker behind them (deferred) instead of being given up (application.pause)."""
        pauses = self.runtime.pauses
        if flush.systemic is None or pauses is None:
            return None
        pause = second_opinion(
            self.runtime, pauses, self.group, flush.systemic, self.invocation.seconds_left()
        )
        if pause is None:
            return None
        self.invocation.paused = True
        self.telemetry.info("space paused", cause=pause.cause, description=pause.description)
        self.telemetry.count("FlushesDeferred")
        self._keep_waiting(flush.head)
        return Outcome.deferred(paused_reason(pause))

    def _kept_back(self) -> float:
        """On a last delivery, the time the second opinion needs is not the flush's: a
        Qomon that hangs would leave it none, and an outage met by one contact would be
        dead-lettered as retries exhausted."""
        if self.runtime.pauses is not None and self._last_delivery():
            return SECOND_OPINION_S
        return 0.0

    def _give_up(self, why: str, code: Code = Code.RETRIES_EXHAUSTED) -> None:
        Flush(self.invocation, self.group).give_up(why, code)

    def _last_delivery(self) -> bool:
        """Whether the redrive policy moves these messages if they fail once more."""
        return max(receives(r) for r in self.records) >= self.settings.max_receive_count

    def _keep_waiting(self, head: Head) -> None:
        """Make sure a flush marker waits behind this group's staged events."""
        if head.marker is not None and head.marker not in self.markers:
            return  # the marker sent earlier is still on the queue, behind these events
        flush_marker = self.runtime.markers.send(self.group)
        self.runtime.staging.expect_marker(self.group, flush_marker, since=time.time())
        self.telemetry.count("FlushMarkersSent")


class SyncBatchProcessor(SqsFifoPartialProcessor):
    """Powertools' FIFO batch processor over one SyncBatch.

    A contact's messages are staged and flushed together, never one by one, so the batch
    runs once, in the processor's `_prepare` hook (the records handed to the processor
    are the batch's); the record handler, `report`, then tells the processor each
    record's outcome, a retry as a failed item. `skip_group_on_error` fails the rest of
    a retried group too, which one outcome per contact already does."""

    def __init__(self, invocation: Invocation) -> None:
        super().__init__(skip_group_on_error=True)
        # A batch that is all "retry" (too little time, Qomon down) is reported as failed
        # items, not raised: raising would count as a function error and wake the errors
        # alarm.
        self.raise_on_entire_batch_failure = False
        self.invocation = invocation
        self.batch: SyncBatch | None = None

    def _prepare(self) -> None:
        super()._prepare()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped
        self.batch = SyncBatch(self.records, self.invocation)
        try:
            self.batch.run()
        except Exception as exc:
            # A bug outside any contact's run: the messages not settled yet come back
            # ("not reached"), as after a crash, and the settled ones are deleted.
            self.invocation.telemetry.warning(
                "the batch stopped on an unexpected error", error=type(exc).__name__
            )
        self.invocation.hold_if_paused(time.sleep)

    def report(self, record: SQSRecord) -> None:
        """The record handler: raises when `record`'s message must come back."""
        outcome = self.batch.outcome_of(record) if self.batch is not None else NOT_REACHED
        if outcome.comes_back:
            raise LeftForRedelivery(outcome.reason)


class LeftForRedelivery(Exception):
    """How `report` tells the processor that a message goes back to the queue."""
