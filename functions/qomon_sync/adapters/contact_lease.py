"""One writer per Qomon contact, whatever message group named it: a lease in the staging table.

A FIFO message group is the contact's key as the source names it: `id:<Qomon id>` or
`mail:<pseudonym>`. A person named by id in one delivery (a backfill) and by e-mail in
another (a form) is in two groups, which two consumers may flush at the same moment. Qomon's
PATCH replaces the whole contact, so when both GET before either PATCHes, the second body,
built without the first's change, deletes it. SQS keeps one group in one consumer's hands;
this lease keeps one *contact* in one flush's hands from its GET to its last PATCH.

The item (staging table, see adapters.table): `contact#<space>#<Qomon id>` / `lease`,
holding `owner` (a random token drawn for each take), `until` (Unix s: the lease is free
after it) and `expires_at` (DynamoDB TTL, whole seconds, so that a lease nobody released
is removed by itself). Taking is one conditional put (`attribute_not_exists(pk) OR until <
:now`); releasing one conditional delete (`owner = :owner`), so a holder whose lease
expired and was taken by another never deletes the other's.

How long a lease lasts: until the flush's deadline plus the time the invocation keeps back
after it (settings `SAFETY_MARGIN_S`), i.e. as long as the invocation may run. Every Qomon
call and every paced wait of the flush ends before its deadline (adapters.qomon), so no
lease expires under a live writer; a writer killed (timeout, crash) leaves a lease that is
free again when its invocation would have ended, as its ledger claims are.

`HeldContacts` wraps the domain's QomonPort: the lease is taken for a contact before its
GET (so after the contact is found: by id, or by the e-mail's search) and before a PATCH
of a contact not read through it (one just created); `OneWriter.release` ends it, after the
last PATCH, when nothing needed writing, or on any failure. A flush that finds the lease
held polls for `LEASE_WAIT_S` (the holder's GET and PATCH usually take well under a
second), then raises ContactBusy: the caller tries again later, with nothing settled.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from qomon_sync.adapters.qomon.pacing import Deadline
from qomon_sync.adapters.table import Key, contact_lease_key
from qomon_sync.domain.contact_shape import WriteContact
from qomon_sync.domain.contact_sync import QomonPort

Contact = dict[str, Any]
LEASE_WAIT_S = 5.0
"""How long a flush waits for another flush of the same contact before deferring."""
LEASE_POLL_S = 0.2


class ContactBusy(Exception):
    """Another flush is writing this contact: not a verdict on any event, try again later."""

    def __init__(self, contact_id: int, waited_s: float) -> None:
        self.contact_id = contact_id
        self.waited_s = waited_s
        super().__init__(
            f"another flush is writing contact {contact_id} (waited {waited_s:.1f}s for it)"
        )


@dataclass(frozen=True)
class Lease:
    contact_id: int
    owner: str
    until: float
    """Unix s: free for anyone after this."""


class ContactLeases:
    """The leases of one space's contacts (the space: a hash of its API key)."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        space: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = LEASE_POLL_S,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._space = space
        self._clock = clock
        self._sleep = sleep
        self._poll_s = poll_s

    def take(self, contact_id: int, until: float) -> Lease | None:
        """One attempt: the lease until `until` (Unix s), or None while another holds it."""
        lease = Lease(int(contact_id), secrets.token_hex(16), until)
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key(lease.contact_id),
                    "owner": {"S": lease.owner},
                    "until": {"N": f"{until:.3f}"},
                    "expires_at": {"N": str(int(until) + 1)},
                },
                ConditionExpression="attribute_not_exists(pk) OR #until < :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":now": {"N": f"{self._clock():.3f}"}},
            )
        except ClientError as exc:
            if _lost(exc):
                return None
            raise
        return lease

    def wait_for(self, contact_id: int, until: float, wait_s: float) -> Lease:
        """The lease, polling for at most `wait_s` while another holds it; else ContactBusy."""
        started = self._clock()
        while True:
            lease = self.take(contact_id, until)
            if lease is not None:
                return lease
            waited = self._clock() - started
            if waited + self._poll_s > wait_s:
                raise ContactBusy(contact_id, waited)
            self._sleep(self._poll_s)

    def release(self, lease: Lease) -> bool:
        """End `lease`; False when it was no longer this owner's (expired and taken)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._key(lease.contact_id),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": lease.owner}},
            )
        except ClientError as exc:
            if _lost(exc):
                return False
            raise
        return True

    def _key(self, contact_id: int) -> Key:
        return contact_lease_key(self._space, contact_id)


class OneWriter:
    """The lease one flush holds: at most one contact's, until the flush releases it."""

    def __init__(
        self,
        leases: ContactLeases,
        deadline: Deadline,
        *,
        after_deadline_s: float,
        keep_s: float = 0.0,
        wait_s: float = LEASE_WAIT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._leases = leases
        self._deadline = deadline
        self._after_deadline_s = after_deadline_s
        self._keep_s = keep_s
        self._wait_s = wait_s
        self._clock = clock
        self.lease: Lease | None = None

    def hold(self, contact_id: int) -> None:
        """Make sure this flush holds `contact_id`'s lease (waiting a little for it)."""
        if self.lease is not None and self.lease.contact_id == int(contact_id):
            return
        # A remembered e-mail read first, then found to belong to someone else: that
        # contact is not written, so its lease goes before the next is taken.
        self.release()
        remaining = self._deadline.remaining()
        # As long as the invocation may run: every call of the flush ends before its
        # deadline, and the invocation ends `after_deadline_s` later.
        until = self._clock() + remaining + self._after_deadline_s
        wait_s = min(self._wait_s, max(0.0, remaining - self._keep_s))
        self.lease = self._leases.wait_for(int(contact_id), until, wait_s)

    def release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            self._leases.release(lease)


class HeldContacts:
    """A QomonPort whose GET and PATCH of a contact happen under that contact's lease.

    `book` is called before the lease is taken: the flush's planned booking of the GET
    and the PATCH (Pacer.book_planned), so that no paced wait is spent holding it."""

    def __init__(
        self, qomon: QomonPort, writer: OneWriter, book: Callable[[], object] = lambda: None
    ) -> None:
        self._qomon = qomon
        self._writer = writer
        self._book = book

    def find_by_email(self, mail: str) -> list[Contact]:
        return self._qomon.find_by_email(mail)

    def get(self, contact_id: int) -> Contact | None:
        self._book()
        self._writer.hold(contact_id)
        return self._qomon.get(contact_id)

    def replace(self, contact_id: int, contact: WriteContact) -> Contact:
        self._book()
        self._writer.hold(contact_id)  # held since its GET; taken here for one just created
        return self._qomon.replace(contact_id, contact)

    def create(self, contact: WriteContact) -> Contact:
        # No id to hold before the POST. One e-mail is one group, so another flush creates
        # this address meanwhile only for an event naming by id a contact Qomon lacks
        # (docs/architecture.md, "One writer per contact"); none knows the new id yet.
        return self._qomon.create(contact)


def _lost(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
