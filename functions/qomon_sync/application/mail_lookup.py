"""The e-mails a batch needs, looked up together before its flushes: one search for many.

A contact named by e-mail costs a search before its GET, unless the contact that e-mail
found is remembered (adapters.space_cache `MailCache`). Qomon's search takes many
conditions in one `$at_least_one` group and charges 1 token a page, whatever it holds:
so before a batch's flushes, the e-mails its change events name that are not remembered
are looked up in one search (adapters/qomon/client.py `find_contacts_by_emails`, the same
exact, case-insensitive matching as a lookup of one). What it finds for each:

- one contact: remembered, so that the contact's flush (now or after its flush marker)
  finds the id and reads it with the GET it makes anyway: a search result is not the
  contact, GET is;
- nobody, or several people: kept for this invocation only (`Invocation.looked_up`), so
  that the flush refuses (`ambiguous_contact`), creates or dead-letters without searching
  again; nothing negative is remembered beyond the invocation.

The search is booked on the space's shared bucket like any call. When it cannot be made
(no tokens or time, Qomon failing, the key missing) nothing is lost but the saving: each
flush then searches for its own contact, as before. No address is logged.
"""

from __future__ import annotations

from collections.abc import Iterable

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync.adapters.qomon import BucketWaitTooLong, Deadline, QomonError
from qomon_sync.adapters.qomon.client import normalise_email
from qomon_sync.adapters.secrets import MissingApiKey
from qomon_sync.application.invocation import Invocation
from qomon_sync.domain.change_event import ChangeEvent

MIN_TIME_TO_LOOK_UP_S = 10.0
"""Below this, the search is left to the flushes (each needs 5 s for its own calls)."""


def look_up_mails(invocation: Invocation, events: Iterable[ChangeEvent]) -> int:
    """Look up in one search the e-mails `events` name that are not known yet; returns
    how many were looked up (0 when none was needed, or the search could not be made)."""
    runtime = invocation.runtime
    telemetry = invocation.telemetry
    seconds_left = invocation.seconds_left()
    if seconds_left < MIN_TIME_TO_LOOK_UP_S:
        return 0
    try:
        unknown = _unknown(invocation, events)
        if not unknown:
            return 0
        client = runtime.client()
        invocation.note_usage()
        found = client.find_contacts_by_emails(unknown, deadline=Deadline.after(seconds_left))
        for mail in unknown:
            matches = found.get(normalise_email(mail) or "", [])
            invocation.looked_up.record(mail, matches)
            if len(matches) == 1:
                runtime.mails.remember(mail, int(matches[0]["id"]))
    except (QomonError, BucketWaitTooLong, MissingApiKey, BotoCoreError, ClientError) as exc:
        telemetry.info(
            "e-mails not looked up together: each flush searches its own",
            error=type(exc).__name__,
        )
        return 0
    telemetry.count("EmailsLookedUpTogether", len(unknown))
    return len(unknown)


def _unknown(invocation: Invocation, events: Iterable[ChangeEvent]) -> list[str]:
    """The e-mails named (one spelling each) that neither this invocation nor the
    remembered e-mails know."""
    named: dict[str, str] = {}
    for event in events:
        mail = event.contact.mail if event.contact.id is None else None
        key = normalise_email(mail)
        if mail is not None and key:
            named.setdefault(key, mail)
    return [
        mail
        for mail in named.values()
        if mail not in invocation.looked_up and invocation.runtime.mails.recall(mail) is None
    ]
