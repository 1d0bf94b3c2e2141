"""What becomes of a contact's events in one invocation, named once, by what happens next.

A contact's flush, its run in a batch, and each queue message of that contact end in one
of three outcomes (named, as the Meltano SDK names its errors, by what happens next),
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


@dataclass(frozen=True)
class Outcome:
    next: Next
    reason: str = ""

    @classmethod
    def done(cls) -> Outcome:
        return cls(Next.DONE)

    @classmethod
    def deferred(cls, reason: str) -> Outcome:
        return cls(Next.DEFERRED, reason)

    @classmethod
    def retry(cls, reason: str) -> Outcome:
        return cls(Next.RETRY, reason)

    @property
    def comes_back(self) -> bool:
        """Whether the messages go back to the queue (only a retry's do)."""
        return self.next is Next.RETRY
