"""The space-wide pause: when a failure is systemic, how a flush trips it, and the probe.

A flush (application.flush) that meets a **systemic** failure (Qomon's 5xx, a timeout or
a refused connection once the client's own retries are spent, or a 401/403 on the key)
calls `trip_or_suspect`: a refused key (401) pauses the space at once; an outage, or a
403 (which may be about one contact's rights), pauses it when a second contact fails the
same way within `PAUSE_WINDOW_S` (one contact failing alone is that
contact's trouble, and reaches the dead-letter queue with its reason). A paused flush
calls nothing at Qomon and defers: its events stay staged with a flush marker behind
them, its messages are deleted, no receive count is spent, nothing is dead-lettered.

The probe function (handlers/pause_probe.py) runs `PauseProbe.run` every minute and on
demand (`qomon-sync resume`): while the space is paused it disables the sync's event
source mapping (no instance receives, no receive count is spent), tells a person once,
and when the next probe is due makes ONE call (a GET of a waiting contact, one token on
the shared bucket). Any answer that is not systemic (a 2xx, even a 404) ends the pause:
the mapping is enabled and the backlog drains by itself; a systemic one doubles the wait
(`PAUSE_PROBE_FIRST_S` up to `PAUSE_PROBE_MAX_S`). docs/architecture.md, "When Qomon is
down or refuses the key: the pause", says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from qomon_sync.adapters.alarm_topic import AlarmTopic
from qomon_sync.adapters.event_source_mapping import EventSourceMapping
from qomon_sync.adapters.flush_markers import FlushMarkers
from qomon_sync.adapters.qomon import (
    Deadline,
    QomonAuthError,
    QomonBudgetExhausted,
    QomonError,
    QomonMalformedResponse,
    QomonServerError,
    QomonTransportError,
)
from qomon_sync.adapters.secrets import MissingApiKey
from qomon_sync.adapters.space_pause import SpacePauses
from qomon_sync.adapters.staging import StagingTable
from qomon_sync.application.runtime import SyncRuntime
from qomon_sync.application.telemetry import Telemetry
from qomon_sync.domain.pause import (
    KEY_REFUSED,
    OUTAGE,
    WITNESS_ID,
    Pause,
    Systemic,
    contact_id_of,
    duration,
    next_interval,
)
from qomon_sync.settings import Settings


class NoCall:
    """A probe round that could make no call (no rate-limit token in time)."""


NO_CALL = NoCall()
FLOWING = "flowing"
"""What a round says when the space is not paused (nothing else happens then)."""
PROBE_CALL_S = 10.0
"""The probe's one call may take this long (a hanging Qomon is a failed probe)."""
SECOND_OPINION_S = PROBE_CALL_S + 1.0
"""What a contact's last delivery keeps back from its flush for the second opinion: its
one call, and a second for the pause's write. Without it, a flush against a Qomon that
hangs spends all its time on timeouts and the second opinion has none left."""


def systemic(exc: Exception) -> Systemic | None:
    """What a failure says about Qomon as a whole, or None when it is about one contact."""
    if isinstance(exc, QomonAuthError):
        # A 401 refuses the key; a 403 may refuse it the rights on one contact only: that
        # one is confirmed by a second contact, as an outage is.
        return Systemic(
            KEY_REFUSED,
            f"Qomon refuses the API key (HTTP {exc.status})",
            suspect_first=exc.status == 403,
        )
    if isinstance(exc, MissingApiKey):
        return Systemic(KEY_REFUSED, "the API key secret holds no key")
    error: Exception | None = exc
    while isinstance(error, QomonBudgetExhausted):
        # Time or tokens ran out after a failure: what that failure says (none: nothing
        # was learned about Qomon, so nothing systemic).
        error = error.last_error
    if isinstance(error, QomonServerError):
        return Systemic(OUTAGE, f"Qomon answers {error.status}")
    if isinstance(error, QomonTransportError):
        return Systemic(OUTAGE, "Qomon does not answer (timeouts or refused connections)")
    return None


def trip_or_suspect(
    pauses: SpacePauses, group: str, failure: Systemic, settings: Settings
) -> Pause | None:
    """Record a flush's systemic failure; the pause it is now under, or None (not paused:
    the flush retries as before, spending a receive count)."""
    contact_id = contact_id_of(group)
    if not failure.at_once and not pauses.suspect(
        group, settings.pause_window_s, kind=failure.kind
    ):
        pause = pauses.get()
        if pause is not None and contact_id is not None:
            pauses.add_waiting(contact_id)
        return pause
    return pauses.trip(failure, contact_id, first_probe_s=settings.pause_probe_first_s)


def second_opinion(
    runtime: SyncRuntime, pauses: SpacePauses, group: str, failure: Systemic, seconds_left: float
) -> Pause | None:
    """On a contact's last delivery, its systemic failure not yet seen by another contact:
    ask Qomon once about another contact before giving the events up. A systemic answer
    there too is an outage met by one contact in flight: the space pauses (the pause that
    holds is returned). Any other answer (id 1 is read: a 404 is an answer) says Qomon
    works for others, so this contact is a poison one and is given up, as before."""
    seconds = min(PROBE_CALL_S, seconds_left - 1)
    if seconds <= 0:
        return None
    try:
        with runtime.probe_client() as client:
            client.get_contact(WITNESS_ID, deadline=Deadline.after(seconds))
    except (QomonError, MissingApiKey) as exc:
        seen = systemic(exc)
        if seen is not None:
            settings = runtime.settings
            return pauses.trip(
                seen, contact_id_of(group), first_probe_s=settings.pause_probe_first_s
            )
    return None


def paused_reason(pause: Pause) -> str:
    return f"the space is paused ({pause.description}): nothing is called at Qomon"


# -- the probe --------------------------------------------------------------------------------


@dataclass
class PauseProbe:
    settings: Settings
    pauses: SpacePauses
    mapping: EventSourceMapping | None
    """The sync's event source mapping (None: a tool without one)."""
    call: Callable[[int, Deadline], None]
    """One Qomon call for the probe: a GET of this contact (raises what the client raises)."""
    topic: AlarmTopic
    telemetry: Telemetry
    waiting: Callable[[], int]
    """Messages on the changes queue, for the words told to a person."""
    requeue: Callable[[float], int] = lambda since: 0
    """Queue a flush marker for every group with staged events not yet given one for the
    pause that began at `since`; how many (after a long pause: see `requeue_markers`)."""
    clock: Callable[[], float] = time.time

    def run(self) -> str:
        """One round; what it did, in words (the handler returns and logs it)."""
        pause = self.pauses.get()
        if pause is None:
            return self._flowing()
        self.telemetry.count("SpacePaused", 1)
        now = self.clock()
        self.telemetry.count("SpacePausedSeconds", max(0.0, now - pause.since))
        if not pause.told:
            self._step("telling a person", lambda: self._tell_paused(pause))
        self._step("disabling the event source mapping", self._disable)
        if not pause.probe_due(now):
            left = duration(pause.next_probe_at - now)
            return f"paused ({pause.description}); next probe in {left}"
        failure = self._probe(pause)
        if failure is NO_CALL:
            # The shared bucket had no token in time: nothing was asked, nothing learned.
            self.telemetry.info("no probe made: no rate-limit token in time; next round")
            return (
                f"paused ({pause.description}); no probe made (no rate-limit token in time), "
                "the next round probes"
            )
        if failure is None:
            return self._resume(pause)
        assert isinstance(failure, Systemic)
        wait = next_interval(
            pause.interval_s,
            first_s=self.settings.pause_probe_first_s,
            max_s=self.settings.pause_probe_max_s,
        )
        self.pauses.probed(pause, next_probe_at=self.clock() + wait, interval_s=wait)
        self.telemetry.info(
            "probe failed; still paused", cause=failure.cause, probes=pause.probes + 1, next_s=wait
        )
        return f"still paused ({failure.description}); next probe in {duration(wait)}"

    def _flowing(self) -> str:
        # Not paused: nothing is said, counted or touched (SpacePaused is 1 each minute of
        # a pause and 0 when it ends; no data is no pause). The mapping is left as it is: a
        # pause always ends by enabling it before its item is deleted, so a mapping
        # disabled now was disabled by a person.
        return FLOWING

    def _step(self, what: str, step: Callable[[], None]) -> bool:
        """One step of a round that must not stop the others (the probe, the metrics):
        a failure is logged by its type only (no message: it may quote data) and the
        round goes on; the step is tried again next round."""
        try:
            step()
        except Exception as exc:
            self.telemetry.warning(
                "a step of the pause probe failed", step=what, error=type(exc).__name__
            )
            return False
        return True

    def _disable(self) -> None:
        if self.mapping is not None and self.mapping.enabled():
            if self.mapping.switch(on=False):
                self.telemetry.info("the sync's event source mapping is disabled while paused")
            else:
                # Lambda is still moving it (ResourceInUse): the next round tries again.
                self.telemetry.info("the sync's event source mapping is busy; disabled later")

    def _probe(self, pause: Pause) -> Systemic | NoCall | None:
        """The one call: None when Qomon answers as usual (even a 404 or a 422); NO_CALL
        when it could not be made (no token in time), which is no answer either way."""
        self.telemetry.count("PauseProbes")
        try:
            self.call(pause.probe_id, Deadline.after(PROBE_CALL_S))
        except QomonMalformedResponse:
            # A 200 that is not the API's (a maintenance page, a captive proxy): no answer.
            return Systemic(pause.cause, "Qomon answers with something that is not its API")
        except (QomonError, MissingApiKey) as exc:
            if _made_no_call(exc):
                return NO_CALL
            return systemic(exc)
        except Exception as exc:
            # The probe could not ask (the secret unreadable, say): no answer, still paused.
            self.telemetry.warning(
                "a step of the pause probe failed", step="the probe", error=type(exc).__name__
            )
            return Systemic(pause.cause, f"the probe could not call Qomon ({type(exc).__name__})")
        return None

    def _resume(self, pause: Pause) -> str:
        if self.mapping is not None and not self.mapping.switch(on=True):
            # Lambda is still disabling it: the pause stays, the next round tries again.
            return "Qomon answers again; the event source mapping is busy, enabled next round"
        if self.clock() - pause.since >= self.settings.pause_requeue_after_s:
            # Before the pause item goes: a round cut short (the probe's timeout) leaves
            # the pause in place, and the next round queues what is left (each group's
            # head remembers the pause it was given a marker for).
            requeued = self.requeue(pause.since)
            self.telemetry.info("flush markers queued again after a long pause", groups=requeued)
        if not self.pauses.clear(pause):
            # Another pause holds now (tripped since this one was read): it is not over;
            # the next round disables the mapping again and probes for that one.
            self.telemetry.info("Qomon answered, but a newer pause holds; next round")
            return "Qomon answered, but a newer pause holds: the next round handles it"
        self.telemetry.count("SpacePaused", 0)
        lasted = duration(self.clock() - pause.since)
        probes = pause.probes + 1
        self._step(
            "telling a person",
            lambda: self.topic.tell(
                "qomon-sync resumed",
                f"qomon-sync resumed: {_resumed_cause(pause)} after a pause of {lasted} "
                f"({probes} probe{'s' if probes != 1 else ''}). The waiting events are being "
                "applied now, in order, at the space's full rate; nothing was lost or "
                "dead-lettered because of the pause.",
            ),
        )
        self.telemetry.info(
            "pause ended",
            cause=pause.cause,
            lasted_s=round(self.clock() - pause.since),
            probes=probes,
        )
        return f"resumed after {lasted} ({probes} probes)"

    def _tell_paused(self, pause: Pause) -> None:
        since = datetime.fromtimestamp(pause.since, UTC).strftime("%H:%M UTC on %Y-%m-%d")
        every = (
            f"every {duration(self.settings.pause_probe_first_s)}, then less often, up to "
            f"every {duration(self.settings.pause_probe_max_s)}"
        )
        try:
            waiting = f"{self.waiting()} messages wait on the queue"
        except Exception:  # only words: the message goes without the count
            waiting = "events wait on the queue"
        if pause.cause == KEY_REFUSED:
            subject = "qomon-sync paused: Qomon refuses the API key"
            body = (
                f"qomon-sync paused: {pause.description} since {since}. Put a valid key in "
                f"the secret {self.settings.qomon_api_key_secret}: the sync resumes by itself "
                f"at the next probe ({every}); `qomon-sync resume` probes at once. {waiting}, "
                "and more may be staged; nothing is lost and nothing is dead-lettered "
                "meanwhile. The queue keeps messages 4 days: an alarm fires after 3."
            )
        else:
            subject = f"qomon-sync paused: {pause.description}"
            body = (
                f"qomon-sync paused: {pause.description} since {since}. {waiting}, and more "
                f"may be staged; nothing is lost. It stopped taking changes from the queue "
                f"and probes Qomon with one call {every}; it resumes by itself when Qomon "
                "answers. The queue keeps messages 4 days: an alarm fires after 3."
            )
        self.topic.tell(subject, body)
        self.pauses.told(pause)
        self.telemetry.info("pause started", cause=pause.cause, description=pause.description)


def requeue_markers(
    staging: StagingTable, markers: FlushMarkers, clock: Callable[[], float], *, since: float
) -> int:
    """A flush marker for every group with staged events not yet given one for the pause
    that began at `since`, and its id (and `since`) in the group's head: a run cut short
    is resumed by the next, which sends only what is left.

    After a pause close to the queue's retention (4 days), SQS may have deleted the
    markers behind staged events; without one, a group's events would wait until the
    contact's next event. A marker too many flushes an empty or small group (as after a
    kill between the send and the head's update); a marker still on the queue finds the
    head naming the new one and leaves the next marker to it."""
    groups = staging.waiting_groups(requeued_for=since)
    for group in groups:
        staging.expect_marker(group, markers.send(group), since=clock(), requeued_for=since)
    return len(groups)


def _made_no_call(exc: Exception) -> bool:
    """Whether the client gave up before any call (no time or token): no answer at all."""
    while isinstance(exc, QomonBudgetExhausted):
        if exc.last_error is None:
            return True
        exc = exc.last_error
    return False


def _resumed_cause(pause: Pause) -> str:
    if pause.cause == KEY_REFUSED:
        return "Qomon accepts the API key again"
    return "Qomon answers again"
