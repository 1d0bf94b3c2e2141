"""One contact's flush: every staged event, in queue order, in one read-modify-write.

1. read the group's staged events back (adapters.staging), in sequence-number order;
2. settle what needs no Qomon call: a body that no longer reads as a change event is
   dead-lettered, a second copy of an event (same source and id) is a duplicate;
3. claim the rest in the ledger, in batches; events it records as applied are duplicates,
   and an event another consumer holds stops the flush there (it and what follows wait);
4. run domain.contact_sync over all of them, the contact's GET and PATCH booked together
   on the space's shared bucket before its lease is taken (or by its first call, a
   search), never for a contact that needs no call: the GET immediately before the
   PATCH, as for a single event, so the window for an edit made in Qomon's UI meanwhile
   does not grow.
   The GET and the PATCH happen under the contact's lease (adapters.contact_lease): a
   person named by id in one group and by e-mail in another has one writer at a time,
   and a flush that finds the lease held defers, as it does for want of tokens;
5. settle each outcome: dead letters sent, applied events completed in the ledger,
   dead-lettered ones released, and every settled event deleted from the staging table.

It ends in an application.outcome: done, deferred (time, tokens or the contact's lease
ran short) or retry (a failure that may pass). A kill at any point leaves staged events
and in-progress claims that the next delivery of the group's messages finds again (see
application.sync_batch). It takes the invocation (application.invocation) for its clock,
telemetry and dead letters, and nothing of the batch that runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync.adapters.contact_lease import ContactBusy, OneWriter
from qomon_sync.adapters.ledger import Claim, ledger_key
from qomon_sync.adapters.qomon import BucketWaitTooLong, Deadline, QomonError
from qomon_sync.adapters.qomon.client import READ_COST, WRITE_COST
from qomon_sync.adapters.qomon.errors import QomonBudgetExhausted
from qomon_sync.adapters.secrets import MissingApiKey
from qomon_sync.adapters.staging import Head, Staged
from qomon_sync.application.invocation import Invocation
from qomon_sync.application.messages import read_event
from qomon_sync.application.outcome import Next, Outcome
from qomon_sync.application.pause import paused_reason, systemic, trip_or_suspect
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_sync import ContactSync, EventOutcome, sync_contact
from qomon_sync.domain.pause import Systemic
from qomon_sync.domain.privacy import redact_paths
from qomon_sync.domain.refusal import Code, Refusal

MIN_TIME_FOR_A_CONTACT_S = 5.0
"""A search, a GET and a PATCH, paced: never start a contact with less than this left."""
TIME_FOR_THE_CALLS_S = 3.0
"""What must be left once the booked tokens are there."""
CONTACT_METRICS = (
    ("replaced", "ContactsReplaced"),
    ("created", "ContactsCreated"),
    ("unchanged", "ContactsUnchanged"),
)


@dataclass(frozen=True)
class Pending:
    staged: Staged
    event: ChangeEvent

    @property
    def key(self) -> str:
        return ledger_key(self.event)


class Flush:
    def __init__(self, invocation: Invocation, group: str, *, keep_back_s: float = 0.0) -> None:
        self.invocation = invocation
        self.keep_back_s = keep_back_s
        """Seconds the flush leaves unspent: on a last delivery, the second opinion's
        (application.pause.SECOND_OPINION_S)."""
        self.runtime = invocation.runtime
        self.telemetry = invocation.telemetry
        self.group = group
        self.head = Head()
        """The group's head as the flush found it: where a deferred flush's marker waits."""
        self.settled: list[str] = []
        """Sequence numbers of the settled events: deleted from the staging table at the end."""
        self.given_up_as = Code.RETRIES_EXHAUSTED
        """The code its events are dead-lettered with if its last delivery fails too."""
        self.systemic: Systemic | None = None
        """A systemic failure this flush met alone (no pause yet): on a last delivery the
        contact's run asks a second opinion before giving up (application.pause)."""

    # -- the flush --------------------------------------------------------------------------

    def run(self) -> Outcome:
        self.head, staged = self.runtime.staging.load(self.group)
        if not staged:
            if self.head != Head():
                self.runtime.staging.forget(self.group, [], head=True)
            return Outcome.done()
        seconds_left = self.invocation.seconds_left() - self.keep_back_s
        if seconds_left < MIN_TIME_FOR_A_CONTACT_S:
            return Outcome.deferred("too little time left in this invocation")
        pending = self._unique(self._parse(staged))
        pauses = self.runtime.pauses
        pause = pauses.get() if pauses is not None and pending else None
        if pause is not None:
            # Qomon is down or refuses the key: call nothing, spend no receive count; the
            # events wait staged, a marker behind them, until the probe resumes the space.
            self.invocation.paused = True
            self.runtime.staging.forget(self.group, self.settled, head=False)
            return Outcome.deferred(paused_reason(pause))
        work, waiting = self._claim(pending)
        outcome = Outcome.done()
        if work:
            outcome = self._apply(work, Deadline.after(seconds_left))
        if waiting and outcome.next is Next.DONE:
            outcome = Outcome.retry("an earlier delivery of an event is still in progress")
        done = outcome.next is Next.DONE and len(self.settled) == len(staged)
        self.runtime.staging.forget(self.group, self.settled, head=done)
        return outcome

    def give_up(self, why: str, code: Code = Code.RETRIES_EXHAUSTED) -> None:
        """The last delivery failed too: dead-letter every staged event, with the reason.

        Only what this flush may settle: events the ledger records as applied are
        duplicates (a letter of one would apply it again when redriven), and an event
        another delivery holds is dead-lettered with its claim left to that delivery (a
        redriven letter then finds it applied, or its claim expired). Only the claims
        made here are released."""
        _, staged = self.runtime.staging.load(self.group)
        refusal = Refusal(code, f"every delivery of this contact's flush failed: {why}")
        pending = self._unique(self._parse(staged))
        ledger = self.runtime.ledger
        claims = (
            ledger.claim_all([p.event for p in pending], self.invocation.remaining_ms())
            if ledger is not None
            else [Claim.NEW] * len(pending)
        )
        released: list[ChangeEvent] = []
        for item, claim in zip(pending, claims, strict=True):
            if claim is Claim.DONE:
                self._duplicate(item, "already applied; not applied again")
                continue
            self._dead_letter(item, refusal)
            if claim is Claim.NEW:
                released.append(item.event)
        if ledger is not None:
            ledger.release_all(released)
        self.runtime.staging.forget(self.group, self.settled, head=True)

    # -- 2. what needs no call ---------------------------------------------------------------

    def _parse(self, staged: Sequence[Staged]) -> list[Pending]:
        pending = []
        for item in staged:
            event = read_event(item.body)
            if isinstance(event, Refusal):  # staged by another version of the model
                self.invocation.dead_letter(self.group, item, event)
                self.settled.append(item.seq)
            else:
                pending.append(Pending(item, event))
        return pending

    def _unique(self, pending: list[Pending]) -> list[Pending]:
        seen: set[str] = set()
        unique = []
        for item in pending:
            if item.key in seen:
                # A second copy of one event (a sender's retry that reached the queue
                # twice): a duplicate, settled now.
                self._duplicate(item, "a copy of an event already waiting")
                continue
            seen.add(item.key)
            unique.append(item)
        return unique

    def _claim(self, pending: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """The events to apply now, and those that must wait behind a busy one."""
        ledger = self.runtime.ledger
        if ledger is None:
            return pending, []  # dry run: nothing is written, so nothing is recorded
        claims = ledger.claim_all([p.event for p in pending], self.invocation.remaining_ms())
        work: list[Pending] = []
        for index, (item, claim) in enumerate(zip(pending, claims, strict=True)):
            if claim is Claim.DONE:
                self._duplicate(item, "already applied; not applied again")
            elif claim is Claim.BUSY:
                # Another consumer holds this event: it and what follows must wait for it.
                waiting = pending[index:]
                claimed = [
                    p.event for p, c in zip(waiting, claims[index:], strict=True) if c is Claim.NEW
                ]
                ledger.release_all(claimed)
                return work, waiting
            else:
                work.append(item)
        return work, []

    # -- 4. the read-modify-write --------------------------------------------------------------

    def _apply(self, work: list[Pending], deadline: Deadline) -> Outcome:
        by_key = {item.key: item for item in work}
        # The fold names events by id: ids made unique by the source (ledger_key).
        events = [item.event.model_copy(update={"event_id": item.key}) for item in work]
        result = ContactSync()
        outcome = Outcome.done()
        bucket = None
        writer = None
        statuses: dict[str, int | None] = {}
        try:
            client = self.runtime.client()
            self.invocation.note_usage()
            bucket = client.bucket
            # One writer per Qomon contact across message groups: the contact's lease is
            # taken before its GET and held until this flush ends (adapters.contact_lease).
            writer = self.runtime.one_writer(deadline, keep_s=TIME_FOR_THE_CALLS_S)
            port = self.runtime.port(
                client, deadline, self.telemetry.info, writer, self.invocation.looked_up
            )
            forms = self.runtime.forms(client, deadline)
            # The contact's GET and PATCH are booked together, so that it does not stop
            # half-way for want of tokens, before its lease is taken or at its first call:
            # a contact that needs no call (nobody to write) books nothing, and holds no
            # place in the space's queue of bookings for nothing.
            bucket.plan(READ_COST + WRITE_COST, deadline, keep_s=TIME_FOR_THE_CALLS_S)
            sync_contact(
                events, port, forms, self.runtime.settings.assembly_policy(), result=result
            )
        except BucketWaitTooLong as exc:  # the planned booking, made before the lease
            outcome = Outcome.deferred(f"no rate-limit tokens in time ({exc})")
        except ContactBusy as exc:
            # Another group's flush is writing this person: not a failure, so no receive is
            # spent and nothing is dead-lettered; a marker brings the events back.
            self.telemetry.info("contact busy: flush deferred", contact_id=exc.contact_id)
            outcome = Outcome.deferred(str(exc))
        except (QomonError, MissingApiKey) as exc:
            outcome = self._failed(exc, events, result, statuses)
        except Exception:
            # Something unexpected (a bug, a poison event): the claims nobody will
            # complete are released, so the next delivery claims them again at once.
            self._release_unsettled(events, result, by_key)
            raise
        finally:
            try:
                if writer is not None:
                    self._release(writer)
            finally:
                if bucket is not None:
                    bucket.refund()  # and drops a plan no call used
        self._release_unsettled(events, result, by_key)
        self._settle(result.outcomes, by_key, statuses)
        return outcome

    def _release(self, writer: OneWriter) -> None:
        try:
            writer.release()
        except (BotoCoreError, ClientError) as exc:
            # It ends by itself when the invocation would have: another flush of the
            # contact waits for it, or defers, until then.
            self.telemetry.warning(
                "contact lease not released; it expires by itself", error=type(exc).__name__
            )

    def _release_unsettled(
        self, events: list[ChangeEvent], result: ContactSync, by_key: dict[str, Pending]
    ) -> None:
        unsettled = {e.event_id for e in events} - {o.event_id for o in result.outcomes}
        if unsettled and self.runtime.ledger is not None:
            self.runtime.ledger.release_all([by_key[key].event for key in unsettled])

    def _failed(
        self,
        exc: QomonError | MissingApiKey,
        events: list[ChangeEvent],
        result: ContactSync,
        statuses: dict[str, int | None],
    ) -> Outcome:
        if isinstance(exc, QomonBudgetExhausted) and exc.last_error is None:
            return Outcome.deferred(str(exc))  # no time or tokens left
        paused = self._systemic(exc)
        if paused is not None:
            return paused
        code = exc.code if isinstance(exc, QomonError) else Code.MISSING_API_KEY
        if self.systemic is not None and self.systemic.suspect_first:
            # A 403 met alone: it comes back (a second contact may confirm it), and on its
            # last delivery it is given up with its own reason, not retries_exhausted.
            self.given_up_as = code
            return Outcome.retry(str(exc))
        if isinstance(exc, QomonError) and exc.retryable:
            return Outcome.retry(str(exc))
        status = exc.status if isinstance(exc, QomonError) else None
        refusal = Refusal(code, str(exc))
        settled = {o.event_id for o in result.outcomes}
        for event in events:
            if event.event_id not in settled:
                result.outcomes.append(EventOutcome(event.event_id, "dead_letter", refusal=refusal))
                statuses[event.event_id] = status
        return Outcome.done()

    def _systemic(self, exc: QomonError | MissingApiKey) -> Outcome | None:
        """A failure of Qomon as a whole (application.pause): deferred when the space is
        paused (now, or already), so that no receive count is spent and nothing is
        dead-lettered for it; None to handle it as before (not systemic, or one contact
        failing alone so far: retried, and dead-lettered on its last delivery)."""
        failure = systemic(exc)
        pauses = self.runtime.pauses
        if failure is None or pauses is None:
            return None
        if failure.cause == "key_refused" and self.runtime.key_changed():
            # An operator already put another key in the secret: the next flush uses it.
            return Outcome.deferred("the API key was refused, and the secret holds a new one")
        pause = trip_or_suspect(pauses, self.group, failure, self.runtime.settings)
        if pause is None:
            self.systemic = failure
            return None
        self.invocation.paused = True
        self.telemetry.info("space paused", cause=pause.cause, description=pause.description)
        return Outcome.deferred(paused_reason(pause))

    # -- 5. settling ----------------------------------------------------------------------------

    def _settle(
        self,
        outcomes: Sequence[EventOutcome],
        by_key: dict[str, Pending],
        statuses: dict[str, int | None],
    ) -> None:
        completed: list[tuple[ChangeEvent, dict[str, Any]]] = []
        released: list[ChangeEvent] = []
        actions = set()
        dry_run = self.runtime.settings.dry_run
        for outcome in outcomes:
            item = by_key[outcome.event_id]
            if outcome.refusal is not None:
                self._dead_letter(item, outcome.refusal, http_status=statuses.get(item.key))
                released.append(item.event)
                continue
            self.settled.append(item.staged.seq)
            actions.add(outcome.action)
            completed.append(
                (item.event, {"action": outcome.action, "contact_id": outcome.contact_id})
            )
            action: str = outcome.action
            if dry_run and action != "unchanged":
                action = f"would_be_{action}"
            self.telemetry.event(
                item.event.event_id,
                action,
                source=item.event.source,
                contact_id=outcome.contact_id,
                changed=redact_paths(outcome.changed),
                warnings=list(outcome.warnings),
            )
        ledger = self.runtime.ledger
        if ledger is not None:
            ledger.complete_all(completed)
            ledger.release_all(released)
        written = actions & {"replaced", "created"}
        for action, metric in CONTACT_METRICS:
            # A written contact is not also counted unchanged for an event it held already.
            if action in actions and not (action == "unchanged" and written):
                self.telemetry.count(metric)

    def _duplicate(self, item: Pending, why: str) -> None:
        self.settled.append(item.staged.seq)
        self.telemetry.count("EventsDuplicate")
        self.telemetry.event(item.event.event_id, "duplicate", source=item.event.source, detail=why)

    def _dead_letter(
        self, item: Pending, refusal: Refusal, *, http_status: int | None = None
    ) -> None:
        """Dead-letter a staged event (it is settled: deleted from the staging table)."""
        self.invocation.dead_letter(
            self.group, item.staged, refusal, event_id=item.event.event_id, http_status=http_status
        )
        self.settled.append(item.staged.seq)
