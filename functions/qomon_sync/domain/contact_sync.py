"""The read-modify-write for one contact, in one place, top to bottom.

For the change events of one contact (in arrival order) against a Qomon seen through a
small port:

1. find the contact: by Qomon id, or by exact e-mail (none: dead-letter, or create when
   the event asks; several: dead-letter, we never guess between people);
2. GET it (one call for all of this contact's events);
3. assemble the complete replacement body (domain.assembly);
4. skip when nothing changes (no PATCH, no tokens);
5. PATCH, and check that Qomon's answer holds what was sent.

A rejected event is dead-lettered on its own: the events before it are still applied and
those after it still follow, in order. Errors from the port (rate limits, outages, bad
keys) are not caught here; the caller decides whether to retry or dead-letter them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from qomon_sync.domain.assembly import (
    AssemblyPolicy,
    Rejected,
    Replace,
    Unchanged,
    assemble_contact,
    same_meaning,
)
from qomon_sync.domain.change_event import ChangeEvent, ContactRef
from qomon_sync.domain.contact_shape import WriteContact
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.refusal import Code, Refusal

Contact = dict[str, Any]
Action = Literal["replaced", "created", "unchanged", "dead_letter"]


class QomonPort(Protocol):
    """What the read-modify-write needs from Qomon (adapters.qomon implements it)."""

    def find_by_email(self, mail: str) -> list[Contact]: ...

    def get(self, contact_id: int) -> Contact | None:
        """The contact as GET returns it, or None when Qomon has no such contact."""

    def replace(self, contact_id: int, contact: WriteContact) -> Contact: ...

    def create(self, contact: WriteContact) -> Contact: ...


@dataclass(frozen=True)
class EventOutcome:
    event_id: str
    action: Action
    contact_id: int | None = None
    refusal: Refusal | None = None
    """Why it was dead-lettered (its code is stable, for metrics and alarms)."""
    changed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass
class ContactSync:
    """All that happened to one contact's events."""

    outcomes: list[EventOutcome] = field(default_factory=list)

    def dead_letter(self, events: Sequence[ChangeEvent], refusal: Refusal) -> None:
        self.outcomes.extend(
            EventOutcome(e.event_id, "dead_letter", refusal=refusal) for e in events
        )


def sync_contact(
    events: Sequence[ChangeEvent],
    qomon: QomonPort,
    forms: FormCatalog,
    policy: AssemblyPolicy | None = None,
    *,
    result: ContactSync | None = None,
) -> ContactSync:
    """Apply one contact's events (all naming the same `contact.person`) to Qomon.

    Outcomes are added to `result` as they are decided, so that a caller whose port
    raised half-way (Qomon down after a first write) knows which events are settled.
    """
    if len({event.contact.person for event in events}) > 1:
        raise ValueError("sync_contact takes the events of one contact")
    run = _OneContact(qomon, forms, policy or AssemblyPolicy(), result or ContactSync())
    if events:
        run.sync(list(events))
    return run.result


class _OneContact:
    def __init__(
        self, qomon: QomonPort, forms: FormCatalog, policy: AssemblyPolicy, result: ContactSync
    ) -> None:
        self.qomon = qomon
        self.forms = forms
        self.policy = policy
        self.result = result
        self.contact_id: int | None = None
        self.current: Contact | None = None

    def sync(self, pending: list[ChangeEvent]) -> None:
        problem = self._find(pending[0].contact)
        if self.current is None:
            pending = self._settle_unknown_contact(pending, problem)
        self._apply_until_rejected(pending)

    def _settle_unknown_contact(
        self, pending: list[ChangeEvent], problem: Refusal | None
    ) -> list[ChangeEvent]:
        """No contact to read: skip, dead-letter or create, as each event asked; returns
        the events that still apply (from the first that creates the contact)."""
        refusal = problem or Refusal(
            Code.CONTACT_NOT_FOUND, "Qomon has no contact with this id", ("contact.id",)
        )
        if refusal.code != Code.CONTACT_NOT_FOUND:
            self.result.dead_letter(pending, refusal)
            return []
        # Events that asked to skip an unknown person change nothing; the others keep
        # their order.
        self.result.outcomes.extend(
            EventOutcome(
                e.event_id,
                "unchanged",
                warnings=("contact not found: skipped, as the event asked",),
            )
            for e in pending
            if e.if_missing == "skip"
        )
        pending = [e for e in pending if e.if_missing != "skip"]
        creating = next((i for i, e in enumerate(pending) if e.if_missing == "create"), None)
        if creating is None:
            self.result.dead_letter(pending, refusal)
            return []
        # Events that asked to be dead-lettered when the person is unknown are, even if a
        # later event creates the person: order is kept, nothing is applied twice.
        self.result.dead_letter(pending[:creating], refusal)
        return pending[creating:]

    def _apply_until_rejected(self, pending: list[ChangeEvent]) -> None:
        """Fold and write the events; a rejected one is dead-lettered alone, those before
        it are written first and those after it follow."""
        while pending:
            outcome = assemble_contact(self._base(pending), self.forms, pending, self.policy)
            if not isinstance(outcome, Rejected):
                self._write(pending, outcome)
                return
            if outcome.event_id is None:
                # The contact itself cannot be written safely (unknown field, data-loss
                # guard): no event for it can be applied until someone looks.
                self.result.dead_letter(pending, outcome)
                return
            at = next(i for i, e in enumerate(pending) if e.event_id == outcome.event_id)
            if at:
                before = assemble_contact(
                    self._base(pending), self.forms, pending[:at], self.policy
                )
                if isinstance(before, Rejected):  # pragma: no cover - a prefix of a fold
                    raise AssertionError("events accepted in a fold cannot be rejected alone")
                self._write(pending[:at], before)
            self.result.dead_letter([pending[at]], outcome)
            pending = pending[at + 1 :]

    def _base(self, pending: Sequence[ChangeEvent]) -> Contact:
        """The contact the events apply to: as read, or, for one being created, the e-mail
        it was looked up by. Without it the person's next event would find no one and
        create them again."""
        if self.current is not None:
            return self.current
        mail = pending[0].contact.mail
        return {"mail": mail} if mail else {}

    def _find(self, ref: ContactRef) -> Refusal | None:
        """Sets `contact_id` and `current` when the contact exists; else says why not."""
        if ref.id is not None:
            self.contact_id = ref.id
        else:
            assert ref.mail is not None
            matches = self.qomon.find_by_email(ref.mail)
            if not matches:
                return Refusal(
                    Code.CONTACT_NOT_FOUND, "no Qomon contact has this e-mail", ("contact.mail",)
                )
            if len(matches) > 1:
                return Refusal(
                    Code.AMBIGUOUS_CONTACT,
                    f"{len(matches)} Qomon contacts share this e-mail; name the contact by id",
                    ("contact.mail",),
                )
            self.contact_id = int(matches[0]["id"])
        # Search results are not documented as complete contacts: GET is the truth.
        self.current = self.qomon.get(self.contact_id)
        return None

    def _write(self, events: Sequence[ChangeEvent], outcome: Replace | Unchanged) -> None:
        if isinstance(outcome, Unchanged):
            self.result.outcomes.extend(
                EventOutcome(e.event_id, "unchanged", self.contact_id, warnings=outcome.warnings)
                for e in events
            )
            return
        action: Action
        read = self.current
        if self.current is None:
            echoed, action = self.qomon.create(outcome.contact), "created"
        else:
            assert self.contact_id is not None
            echoed, action = self.qomon.replace(self.contact_id, outcome.contact), "replaced"
        self.current = echoed
        self.contact_id = int(echoed.get("id", self.contact_id or 0)) or None
        differs = same_meaning(outcome.contact, echoed, self.forms, self.policy.shape)
        if differs:
            # Qomon accepted the write but stores something else (e.g. a Radio form keeping
            # another entry than the one sent): a person must look before anything moves.
            self.result.dead_letter(
                events,
                Refusal(
                    Code.ECHO_MISMATCH,
                    "Qomon's answer to the write differs from what was sent",
                    tuple(differs),
                ),
            )
            return
        for event in events:
            if self._held_already(read, events, event):
                # Its change was in Qomon already (a write that landed before a crash, a
                # sender's copy): the write carried it, but it changed nothing.
                self.result.outcomes.append(
                    EventOutcome(event.event_id, "unchanged", self.contact_id)
                )
                continue
            self.result.outcomes.append(
                EventOutcome(
                    event.event_id,
                    action,
                    self.contact_id,
                    changed=outcome.changed,
                    warnings=outcome.warnings,
                )
            )

    def _held_already(
        self, read: Contact | None, events: Sequence[ChangeEvent], event: ChangeEvent
    ) -> bool:
        """Whether one event of a written fold would have changed nothing alone on the
        contact as read, so that it is told as unchanged, not replaced a second time. One
        event alone is the fold, and a created contact held nothing."""
        if read is None or len(events) == 1:
            return False
        return isinstance(assemble_contact(read, self.forms, [event], self.policy), Unchanged)
