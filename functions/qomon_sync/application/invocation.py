"""What one invocation of the sync function hands each contact's run and flush.

Its clock (the time left, less the margin kept for acknowledging), its telemetry, the
dead-letter queue, and the Qomon usage it reports at the end. The batch
(application.sync_batch) and a contact's flush (application.flush) each take this, not
each other: the flush needs nothing else of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from qomon_sync.adapters.dead_letters import DeadLetter
from qomon_sync.adapters.qomon.client import CallStats
from qomon_sync.adapters.space_cache import LookedUp
from qomon_sync.adapters.staging import Staged
from qomon_sync.application.runtime import SyncRuntime
from qomon_sync.application.telemetry import Telemetry
from qomon_sync.domain.privacy import redact_refusal
from qomon_sync.domain.refusal import Refusal

USAGE_METRICS = (
    ("tokens", "QomonTokensSpent"),
    ("calls", "QomonCalls"),
    ("rate_limited", "QomonRateLimited"),
)


@dataclass
class Invocation:
    runtime: SyncRuntime
    telemetry: Telemetry
    remaining_ms: Callable[[], int]
    """The Lambda context's clock: milliseconds left in this invocation."""
    paused: bool = False
    """A flush of this invocation found the space paused (application.pause)."""
    looked_up: LookedUp = field(default_factory=LookedUp)
    """What this invocation's searches found per e-mail (application.mail_lookup): its
    flushes do not search an e-mail again, and nothing of it outlives the invocation."""
    _usage_before: dict[str, int] | None = field(default=None, repr=False)
    _usage_of: CallStats | None = field(default=None, repr=False)
    """Whose counters `_usage_before` holds: a rotated key builds a client counting anew."""

    def seconds_left(self) -> float:
        """What this invocation may still spend, its safety margin kept back."""
        return self.remaining_ms() / 1000 - self.runtime.settings.safety_margin_s

    def dead_letter(
        self,
        group: str,
        message: Staged,
        refusal: Refusal,
        *,
        event_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        """Send one event's message to the dead-letter queue with why, and say so.

        The one place a letter is built, and the one redaction of its refusal before it
        leaves the process, by the queue or by the log."""
        shown = redact_refusal(refusal)
        self.runtime.dead_letters.send(
            DeadLetter(
                body=message.body,
                group_id=group,
                deduplication_id=message.message_id,
                code=shown.code,
                detail=shown.detail,
                fields=shown.fields,
                http_status=http_status,
                attempts=message.receive_count,
                event_id=event_id,
            )
        )
        self.telemetry.dead_lettered(shown.code)
        self.telemetry.event(
            event_id or message.message_id,
            "dead_letter",
            code=shown.code,
            detail=shown.detail,
            fields=list(shown.fields),
        )

    def hold_if_paused(self, sleep: Callable[[float], None]) -> None:
        """A batch that found the space paused keeps its messages a moment before they are
        deleted (settings.pause_hold_s): until the probe disables the event source
        mapping, the paused contacts' markers then go round the queue at that pace."""
        if self.paused:
            sleep(max(0.0, min(self.runtime.settings.pause_hold_s, self.seconds_left() - 1)))

    def note_usage(self) -> None:
        """Remember the Qomon client's counters before its first call of this invocation."""
        stats = self.runtime.usage
        if self._usage_before is None and stats is not None:
            self._usage_before, self._usage_of = _usage(stats), stats

    def emit_usage(self) -> None:
        """Count what this invocation spent of Qomon's rate limit (once, at its end)."""
        stats = self.runtime.usage
        if stats is None or self._usage_before is None:
            return
        now = _usage(stats)
        # A key rotated during the invocation: the new client counted from zero.
        before = self._usage_before if stats is self._usage_of else dict.fromkeys(now, 0)
        for name, metric in USAGE_METRICS:
            self.telemetry.count(metric, now[name] - before[name])


def _usage(stats: CallStats) -> dict[str, int]:
    return {"tokens": stats.tokens, "calls": stats.calls, "rate_limited": stats.rate_limited}
