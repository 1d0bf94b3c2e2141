"""The e-mails a batch needs, looked up together before its flushes: one search for many.

A contact named by e-mail costs a search before its GET, unless the contact that e-mail
found is remembered (adapters.space_cache `MailCache`). Qomon's search takes many
conditions in one `$at_least_one` group and charges 1 token a page, whatever it holds:
so before a batch's flushes, the e-mails its contacts are named by that are not known
are looked up in one search (adapters/qomon/client.py `find_contacts_by_emails`, the same
exact, case-insensitive matching as a lookup of one). What it finds for each:

- one contact: remembered, so that the contact's flush (now or after its flush marker)
  finds the id and reads it with the GET it makes anyway: a search result is not the
  contact, GET is;
- nobody, or several people: kept for this invocation only (`Invocation.looked_up`), so
  that the flush refuses (`ambiguous_contact`), creates or dead-letters without searching
  again; nothing negative is remembered beyond the invocation.

A batch holds at most 10 messages, so on a backlog (a full batch) one search per batch
would still be one search for every two or three people. There, the contacts whose
e-mail is unknown wait, staged, for their flush marker (as the last contact of a full
batch does), and their message groups are noted in the staging table
(adapters.space_cache `WaitingLookups`: groups, never addresses). The batch that finds a
batch's worth of e-mails waiting, its own and those noted, searches for all of them at
once, reading the noted groups' e-mails from their staged events; their markers then find
them known. A batch that is not full (no backlog: a person waits for nothing) searches at
once, for its e-mails and those noted, and so does a full batch that flushes no other
contact while the space's bucket holds half its burst or more (its tokens would pile up
unspent while they wait). On a backlog, a contact waits for it until a batch's worth of
e-mails waits, or its marker comes round after `EMAIL_LOOKUP_WAIT_S`.

SQS does not say in which order a FIFO queue serves its groups, and a marker may come
round in the very next batch. Sent again each time, the waiting contacts' markers would
then come round batch after batch, taking the places of the backlog's events (a
3,000-event run spent 2,000 receives of markers so, and its bucket sat unused at the
end). So a marker back before its contact's wait is over, alone in its group, is held:
it goes back to the queue hidden for the rest of the wait (outcome.Outcome.held), at the
cost of one receive of that marker; when it comes round again, the search is made. Its
receipt is noted with the waiting groups, and the search that finds its e-mail first
lets it come round at once (visibility 0), so the end of a backlog does not wait out
the holds.

The search is booked on the space's shared bucket like any call. When it cannot be made
(no tokens or time, Qomon failing, the key missing) nothing is lost but the saving: each
flush then searches for its own contact, as before. No address is logged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync.adapters.qomon import BucketWaitTooLong, Deadline, QomonError
from qomon_sync.adapters.qomon.client import normalise_email
from qomon_sync.adapters.secrets import MissingApiKey
from qomon_sync.application.invocation import Invocation
from qomon_sync.application.messages import marker, read_event, receives
from qomon_sync.domain.change_event import ChangeEvent

MIN_TIME_TO_LOOK_UP_S = 10.0
"""Below this, the search is left to the flushes (each needs 5 s for its own calls)."""
MIN_TO_SEARCH = 10
"""On a backlog, searched at once when this many e-mails wait (a batch's worth)."""
MAIL_GROUP = "mail:"
"""How the message group of a person named by e-mail begins (change_event.ContactRef.group)."""
FAILURES = (QomonError, BucketWaitTooLong, MissingApiKey, BotoCoreError, ClientError)


@dataclass
class Lookups:
    """What the batch's search left waiting."""

    waiting: set[str] = field(default_factory=set)
    """The groups whose flush waits for a later search (staged, a marker behind them)."""
    held: dict[str, int] = field(default_factory=dict)
    """Of those, the groups here by their marker alone, back before their wait is over:
    seconds the marker stays hidden on the queue (outcome.Outcome.held)."""


def look_up_mails(
    invocation: Invocation,
    groups: Mapping[str, Sequence[SQSRecord]],
    *,
    full: bool,
    last: str | None = None,
) -> Lookups:
    """Look up the unknown e-mails of the batch's contacts (`groups`: each message group's
    records) in one search, or leave them for a later batch's: says which groups wait for
    it (none unless the batch is `full` and holds change events)."""
    if invocation.seconds_left() < MIN_TIME_TO_LOOK_UP_S:
        return Lookups()
    try:
        pauses = invocation.runtime.pauses
        if pauses is not None and pauses.get() is not None:
            return Lookups()  # paused: nothing is asked of Qomon, and the flushes defer
        unknown = _unknown(invocation, groups)
        if not unknown:
            return Lookups()
        elsewhere = invocation.runtime.waiting_lookups().peek() - set(groups)
        waits = _backlog_wait(invocation, groups, unknown, elsewhere, full=full, last=last)
        if waits is not None:
            return waits
        mails = list(dict.fromkeys(unknown.values()))
        mails += [mail for group in elsewhere if (mail := _mail_of(invocation, group, ()))]
    except FAILURES as exc:
        invocation.telemetry.info("e-mails not looked up together", error=type(exc).__name__)
        return Lookups()
    if _search(invocation, list(dict.fromkeys(mails))):
        _forget_waiting(invocation, set(unknown) | elsewhere, here=set(groups))
    return Lookups()


def _backlog_wait(
    invocation: Invocation,
    groups: Mapping[str, Sequence[SQSRecord]],
    unknown: Mapping[str, str],
    elsewhere: set[str],
    *,
    full: bool,
    last: str | None,
) -> Lookups | None:
    """The contacts that wait for a later search, or None to search now.

    Only on a backlog still arriving: a full batch with change events in it (a batch of
    markers alone comes once what was queued ahead of them has passed). And only while
    the space's tokens are spent meanwhile, by another contact of this batch (`last`
    waits for its marker) or by the backlog the bucket shows: waiting while they pile up
    unspent would slow the backlog down."""
    arriving = full and any(marker(r) is None for rs in groups.values() for r in rs)
    others = any(g not in unknown and g != last for g in groups)
    if not arriving or not (others or _tokens_spoken_for(invocation)):
        return None
    left = _wait_left(invocation, groups, unknown, elsewhere)
    if left is None:
        return None
    # These contacts wait for their markers, to be looked up with others; a marker back
    # early is held for the rest of its contact's wait.
    invocation.runtime.waiting_lookups().add(set(unknown))
    new = [g for g in unknown if any(marker(r) is None for r in groups[g])]
    invocation.telemetry.count("EmailLookupsWaiting", len(new))
    return Lookups(set(unknown), left)


def _wait_left(
    invocation: Invocation,
    groups: Mapping[str, Sequence[SQSRecord]],
    unknown: Mapping[str, str],
    elsewhere: set[str],
) -> dict[str, int] | None:
    """On a backlog: None when it is time to search, for these e-mails and every one
    waiting; else, for each group here by its flush marker alone, the seconds left of its
    wait (the marker is held that long). Time to search when a batch's worth waits, or
    when one of them came round with its flush marker after waiting `EMAIL_LOOKUP_WAIT_S`
    or after being held once (the noted ones are looked up with it, and then each marker
    finds its e-mail known)."""
    if len(set(unknown.values())) + len(elsewhere) >= MIN_TO_SEARCH:
        return None
    wait_s = invocation.runtime.settings.email_lookup_wait_s
    now = time.time()
    left: dict[str, int] = {}
    for group in unknown:
        records = groups[group]
        if not any(marker(r) is not None for r in records):
            continue
        since = invocation.runtime.staging.head(group).since
        if since is None or now - since >= wait_s or max(receives(r) for r in records) > 1:
            return None
        if all(marker(r) is not None for r in records):
            left[group] = max(1, math.ceil(wait_s - (now - since)))
    return left


def _tokens_spoken_for(invocation: Invocation) -> bool:
    """Whether the space's bucket holds less than half its burst: a backlog is spending
    the refill as it comes, so a contact waiting costs no throughput."""
    bucket = invocation.runtime.client().bucket
    return bucket.tokens < bucket.capacity / 2


def _forget_waiting(invocation: Invocation, groups: set[str], *, here: set[str]) -> None:
    """The groups looked up are no longer waiting; their held markers come round now,
    but for those of this batch (`here`): a marker received again has a new receipt, and
    the old one must not touch it while this invocation holds it."""
    runtime = invocation.runtime
    try:
        receipts = runtime.waiting_lookups().remove(groups)
    except FAILURES as exc:  # they are looked up again with the next search: no harm
        invocation.telemetry.info("waiting e-mails not cleared", error=type(exc).__name__)
        return
    released = 0
    for group, receipt in receipts.items():
        if group in here:
            continue
        try:
            runtime.markers.hold(receipt, 0)
            released += 1
        except FAILURES:  # received again meanwhile, or SQS failing: it comes round anyway
            continue
    if released:
        invocation.telemetry.count("FlushMarkersReleased", released)


def _search(invocation: Invocation, mails: list[str]) -> bool:
    """One search for `mails` (split only past the group size); whether it was made."""
    runtime = invocation.runtime
    try:
        client = runtime.client()
        invocation.note_usage()
        deadline = Deadline.after(invocation.seconds_left())
        found = client.find_contacts_by_emails(mails, deadline=deadline)
        for mail in mails:
            matches = found.get(normalise_email(mail) or "", [])
            invocation.looked_up.record(mail, matches)
            if len(matches) == 1:
                runtime.mails.remember(mail, int(matches[0]["id"]))
    except FAILURES as exc:
        invocation.telemetry.info(
            "e-mails not looked up together: each flush searches its own",
            error=type(exc).__name__,
        )
        return False
    invocation.telemetry.count("EmailsLookedUpTogether", len(mails))
    return True


def _unknown(invocation: Invocation, groups: Mapping[str, Sequence[SQSRecord]]) -> dict[str, str]:
    """Message group -> the e-mail it names, for the groups whose e-mail neither this
    invocation nor the remembered e-mails know."""
    unknown: dict[str, str] = {}
    for group, records in groups.items():
        mail = _mail_of(invocation, group, records)
        if (
            mail is not None
            and mail not in invocation.looked_up
            and invocation.runtime.mails.recall(mail) is None
        ):
            unknown[group] = mail
    return unknown


def _mail_of(invocation: Invocation, group: str, records: Sequence[SQSRecord]) -> str | None:
    """The e-mail a group names: from an event of this batch, else (a flush marker alone)
    from the group's oldest staged event."""
    bodies = [r.body for r in records if marker(r) is None]
    if not bodies and group.startswith(MAIL_GROUP):
        staged = invocation.runtime.staging.first(group)
        bodies = [staged.body] if staged is not None else []
    for body in bodies:
        event = read_event(body)
        if isinstance(event, ChangeEvent) and event.contact.id is None and event.contact.mail:
            return event.contact.mail
    return None
