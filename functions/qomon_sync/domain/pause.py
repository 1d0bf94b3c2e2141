"""The space-wide pause, as data and rules: no I/O, no clock of its own.

When Qomon fails for everyone (its 5xx, timeouts, refused connections) or refuses the API
key (401/403), calling it for each contact only spends the queue's receive counts and ends
with the whole backlog dead-lettered. The sync pauses instead: one item in the staging
table says so (adapters.space_pause), every instance reads it, and a probe (one call at a
growing interval) decides when to resume. docs/architecture.md, "When Qomon is down or
refuses the key: the pause", says why it is built this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cause = Literal["outage", "key_refused"]
OUTAGE: Cause = "outage"
KEY_REFUSED: Cause = "key_refused"
MAX_WAITING_IDS = 5
"""How many waiting contacts' Qomon ids the pause keeps to probe with (one is enough)."""
WITNESS_ID = 1
"""A contact any probe may read besides the waiting ones: any contact answers the question
(a 404 is an answer), and no waiting contact decides alone."""


@dataclass(frozen=True)
class Systemic:
    """A failure that is not about one contact: what it says, in words without data."""

    cause: Cause
    description: str
    """"Qomon answers 503", "Qomon refuses the API key (HTTP 401)"."""
    suspect_first: bool = False
    """A refused key that one contact's failure does not prove (a 403: Qomon may refuse
    the key's rights on that contact only): like an outage, it pauses the space when a
    second contact fails the same way within the window, or when the second opinion on
    a last delivery fails so too."""

    @property
    def at_once(self) -> bool:
        """Whether one contact's failure pauses the space (a 401: the key is refused)."""
        return self.cause == KEY_REFUSED and not self.suspect_first

    @property
    def kind(self) -> str:
        """What a second contact must fail with to confirm this one: an outage (any 5xx,
        timeout or refused connection) or a 403."""
        return "forbidden" if self.suspect_first else self.cause


@dataclass(frozen=True)
class Pause:
    since: float
    """Unix seconds: when the pause was tripped."""
    cause: Cause
    description: str
    waiting: tuple[int, ...] = ()
    """Qomon ids of contacts whose flush waits: the probes GET them in turn."""
    next_probe_at: float = 0.0
    interval_s: float = 60.0
    """The wait before the next probe after this one fails."""
    probes: int = 0
    told: bool = False
    """Whether a person was told it started (the probe publishes it once)."""

    def probe_due(self, now: float) -> bool:
        return now >= self.next_probe_at

    @property
    def probe_id(self) -> int:
        """The contact this probe round reads: the next in a rotation through the waiting
        contacts and the witness (`WITNESS_ID`), one further each failed round. A contact
        Qomon fails for alone (a poison one: a 500 for its id only) is then read one round
        in len(waiting) + 1, and any other's answer ends the pause: no contact decides."""
        turn = sorted(set(self.waiting) | {WITNESS_ID})
        return turn[self.probes % len(turn)]


def next_interval(interval_s: float, *, first_s: float, max_s: float) -> float:
    """The wait after a probe that failed: doubled, from `first_s`, at most `max_s`."""
    return min(max_s, max(first_s, interval_s * 2))


def second_contact(
    previous_group: str | None,
    previous_at: float | None,
    group: str,
    now: float,
    window_s: float,
    *,
    same_kind: bool = True,
) -> bool:
    """Whether a systemic failure of `group` at `now` makes two contacts within the window.

    One contact failing alone, however often, is that contact's trouble (a poison contact
    reaches the dead-letter queue with its reason); a second one failing the same way
    within `window_s` is Qomon's (`same_kind`: a 503 and a 403 make no pair)."""
    if previous_group is None or previous_at is None or previous_group == group or not same_kind:
        return False
    return 0 <= now - previous_at <= window_s


def contact_id_of(group: str) -> int | None:
    """The Qomon id a message group names (`id:<Qomon id>`), or None (an e-mail's group)."""
    kind, _, value = group.partition(":")
    if kind == "id" and value.isdigit():
        return int(value)
    return None


def duration(seconds: float) -> str:
    """`2 h 05 min`, `4 min 10 s`, `12 s`: how long, in words for a person."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"
