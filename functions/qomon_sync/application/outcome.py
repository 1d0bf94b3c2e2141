"""What becomes of a contact's events in one invocation, named once, by what happens next.

A contact's flush, its run in a batch, and each queue message of that contact end in one
of four outcomes (named, as the Meltano SDK names its errors, by what happens next),
each with its reason in words:

- **done**: every event is settled (applied, unchanged, duplicate or dead-lettered).
  The messages are deleted.
- **deferred**: nothing is wrong, but the events are not applied yet: more of the
  contact's backlog may be waiting, or time or tokens ran short, or another group's flush
  is writing the contact. The events wait staged with a flush marker behind them on the
  queue, and the messages are deleted: no receive is spent, nothing is dead-lettered.
- **retry**: a failure that may pass (429, 5xx, a timeout, an event another delivery
  holds, an unexpected error). The messages go back to the queue, to be staged again and
  flushed after the visibility timeout; on their last delivery the contact's flush gives
  up instead, and its staged events are dead-lettered with the reason.
- **held**: only a flush marker, of a contact waiting on a backlog for its e-mail to be
  looked up with others (application.mail_lookup), back before its wait is over. The
  marker goes back to the queue hidden for the rest of the wait (`hold_s`), instead of
  being sent again at once: one receive of the marker, where a marker sent again would
  come round batch after batch, taking the places of the backlog's events. Nothing is
  wrong, so nothing is logged as a failure.

A reason may quote an error's text: it is redacted (privacy.redact_text) before it is
logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Next(enum.Enum):
    DONE = "done"
    DEFERRED = "deferred"
    RETRY = "retry"
    HELD = "held"


@dataclass(frozen=True)
class Outcome:
    next: Next
    reason: str = ""
    hold_s: int = 0
    """A held marker: how long it stays hidden on the queue (s)."""

    @classmethod
    def done(cls) -> Outcome:
        return cls(Next.DONE)

    @classmethod
    def deferred(cls, reason: str) -> Outcome:
        return cls(Next.DEFERRED, reason)

    @classmethod
    def retry(cls, reason: str) -> Outcome:
        return cls(Next.RETRY, reason)

    @classmethod
    def held(cls, reason: str, hold_s: int) -> Outcome:
        return cls(Next.HELD, reason, hold_s)

    @property
    def comes_back(self) -> bool:
        """Whether the messages go back to the queue (a retry's, and a held marker)."""
        return self.next in (Next.RETRY, Next.HELD)
