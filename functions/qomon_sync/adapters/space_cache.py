"""What every instance of the sync function shares about the space, besides its tokens.

Both live in the staging table (keys in adapters.table), each item with a TTL:

- the forms (`space#<space>` / `forms`): 6 calls to load, and they change only in Qomon's
  web UI. Each instance used to load them itself, so ten instances paid 60 tokens; now the
  first to need them loads them (a short lease keeps the others waiting for it, not
  loading too) and the rest read them from the table until they expire;
- the e-mails already looked up (`mail#<pseudonym>` / `contact`): which contact id an
  e-mail found, so that the next events for that person cost a GET and not a search plus
  a GET. The key is the e-mail's keyed pseudonym (privacy.Pseudonyms), never the address.
  What it remembers is checked on every use against the GET's own `mail`
  (RememberedContacts), and it is remembered only when the search found exactly one
  contact: a second contact given the same e-mail in Qomon's UI goes unnoticed only until
  the entry expires (`EMAIL_CACHE_S`); after that the search finds both again and the
  events are dead-lettered `ambiguous_contact`, as before.

What a batch's one search for many e-mails found (application.mail_lookup) goes to the
e-mails remembered when it is one contact; when it is none, or several, it is kept only
for the invocation (`LookedUp`), so that the contact's flush neither searches again nor
remembers anything negative beyond it.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from qomon_sync.adapters.qomon.client import normalise_email
from qomon_sync.adapters.table import (
    Key,
    forms_key,
    forms_lease_key,
    remembered_contact_key,
    waiting_lookups_key,
)
from qomon_sync.domain.contact_shape import WriteContact
from qomon_sync.domain.contact_sync import QomonPort
from qomon_sync.domain.forms import Form, FormCatalog
from qomon_sync.domain.privacy import Pseudonyms

Contact = dict[str, Any]
LEASE_S = 15.0
"""How long one instance may take to load the forms before another tries."""
LEASE_POLL_S = 0.25
MAX_FORMS_BYTES = 350_000
"""Under DynamoDB's 400 KB item limit: a larger catalog is kept per instance only."""


class SharedForms:
    """The space's forms, loaded by one instance and read by the others until they expire."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        space: str,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._space = space
        self._ttl_s = ttl_s
        self._clock = clock
        self._sleep = sleep
        self._catalog: FormCatalog | None = None
        self._until = 0.0

    def get(self, load: Callable[[], FormCatalog]) -> FormCatalog:
        now = self._clock()
        if self._catalog is not None and now < self._until:
            return self._catalog
        if self._ttl_s <= 0:
            return load()
        catalog, until = self._read(now)
        if catalog is None:
            catalog, until = self._load_once(load)
        self._catalog, self._until = catalog, until
        return catalog

    def _load_once(self, load: Callable[[], FormCatalog]) -> tuple[FormCatalog, float]:
        started = self._clock()
        if not self._lease(started):
            # Another instance is loading them: wait for its catalog rather than pay again.
            while self._clock() < started + LEASE_S:
                self._sleep(LEASE_POLL_S)
                catalog, until = self._read(self._clock())
                if catalog is not None:
                    return catalog, until
        try:
            catalog = load()
        except BaseException:
            # Let the next instance load them at once rather than wait for this lease.
            self._db.delete_item(TableName=self._table, Key=forms_lease_key(self._space))
            raise
        until = self._clock() + self._ttl_s
        self._write(catalog, until)
        return catalog, until

    def _read(self, now: float) -> tuple[FormCatalog | None, float]:
        answer = self._db.get_item(
            TableName=self._table, Key=forms_key(self._space), ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None or float(item["expires_at"]["N"]) <= now:
            return None, 0.0
        raw = json.loads(zlib.decompress(item["catalog"]["B"]))
        return FormCatalog(Form.model_validate(form) for form in raw), float(
            item["expires_at"]["N"]
        )

    def _write(self, catalog: FormCatalog, until: float) -> None:
        data = zlib.compress(
            json.dumps([f.model_dump(mode="json") for f in catalog.by_id.values()]).encode()
        )
        if len(data) > MAX_FORMS_BYTES:
            return
        self._db.put_item(
            TableName=self._table,
            Item={
                **forms_key(self._space),
                "catalog": {"B": data},
                "expires_at": {"N": f"{until:.3f}"},
            },
        )

    def _lease(self, now: float) -> bool:
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **forms_lease_key(self._space),
                    "expires_at": {"N": f"{now + LEASE_S:.3f}"},
                },
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


class MailCache:
    """E-mail (as its keyed pseudonym) -> the one contact id a search found for it."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        ttl_s: float,
        pseudonyms: Pseudonyms,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._ttl_s = ttl_s
        self._pseudonyms = pseudonyms
        self._clock = clock

    def recall(self, mail: str) -> int | None:
        if self._ttl_s <= 0:
            return None
        answer = self._db.get_item(TableName=self._table, Key=self._key(mail), ConsistentRead=True)
        item = answer.get("Item")
        if item is None or float(item["expires_at"]["N"]) <= self._clock():
            return None
        return int(item["contact_id"]["N"])

    def remember(self, mail: str, contact_id: int) -> None:
        if self._ttl_s <= 0:
            return
        self._db.put_item(
            TableName=self._table,
            Item={
                **self._key(mail),
                "contact_id": {"N": str(int(contact_id))},
                "expires_at": {"N": f"{self._clock() + self._ttl_s:.3f}"},
            },
        )

    def forget(self, mail: str) -> None:
        if self._ttl_s > 0:
            self._db.delete_item(TableName=self._table, Key=self._key(mail))

    def _key(self, mail: str) -> Key:
        return remembered_contact_key(self._pseudonyms(mail))


HELD_SEP = "\n"
"""Between a group and its held marker's receipt, in WaitingLookups' `held` set."""


class WaitingLookups:
    """The message groups whose e-mail waits, on a backlog, for one search of many (the
    space's; every instance adds to it and takes from it). Groups, not addresses: a
    group's e-mail is read from its staged events by whoever searches."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        space: str,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._key = waiting_lookups_key(space)
        self._ttl_s = ttl_s
        self._clock = clock

    def add(self, groups: set[str]) -> None:
        if groups:
            self._db.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="ADD #groups :groups SET expires_at = :expires",
                ExpressionAttributeNames={"#groups": "groups"},
                ExpressionAttributeValues={
                    ":groups": {"SS": sorted(groups)},
                    ":expires": {"N": f"{self._clock() + self._ttl_s:.3f}"},
                },
            )

    def peek(self) -> set[str]:
        item = self._item()
        if float(item.get("expires_at", {}).get("N", "0")) <= self._clock():
            return set()
        return set(item.get("groups", {}).get("SS", []))

    def _item(self) -> dict[str, Any]:
        answer = self._db.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
        return dict(answer.get("Item") or {})

    def hold(self, group: str, receipt_handle: str) -> None:
        """Note that `group`'s flush marker is held hidden on the queue (its receipt), so
        that the search that finds its e-mail lets it come round at once."""
        self._db.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression="ADD #held :held",
            ExpressionAttributeNames={"#held": "held"},
            ExpressionAttributeValues={":held": {"SS": [f"{group}{HELD_SEP}{receipt_handle}"]}},
        )

    def remove(self, groups: set[str]) -> dict[str, str]:
        """Those looked up: another instance's additions meanwhile stay. Returns the
        receipts of their held markers, and of any held marker whose group no longer
        waits (group -> receipt), to be let come round."""
        if not groups:
            return {}
        item = self._item()
        entries = item.get("held", {}).get("SS", [])
        still = set(item.get("groups", {}).get("SS", [])) - groups
        # And any note whose group no longer waits (noted after another search took it):
        # the set would otherwise only grow while a backlog keeps the item alive.
        held = [e for e in entries if e.partition(HELD_SEP)[0] not in still]
        expression = "DELETE #groups :groups" + (", #held :held" if held else "")
        values: dict[str, Any] = {":groups": {"SS": sorted(groups)}}
        names = {"#groups": "groups"}
        if held:
            values[":held"] = {"SS": held}
            names["#held"] = "held"
        self._db.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return {group: receipt for group, _, receipt in (e.partition(HELD_SEP) for e in held)}


class LookedUp:
    """What this invocation's searches found per e-mail (case and outer blanks ignored):
    the contacts holding it, none, or several. Held in memory for one invocation only."""

    def __init__(self) -> None:
        self._found: dict[str, list[Contact]] = {}

    def record(self, mail: str, contacts: list[Contact]) -> None:
        key = normalise_email(mail)
        if key:
            self._found[key] = list(contacts)

    def get(self, mail: str) -> list[Contact] | None:
        """The contacts found for `mail`, or None when no search of this invocation asked."""
        key = normalise_email(mail)
        found = self._found.get(key) if key else None
        return None if found is None else list(found)

    def __contains__(self, mail: object) -> bool:
        return isinstance(mail, str) and self.get(mail) is not None


class RememberedContacts:
    """A QomonPort that finds a person by e-mail from what was remembered, checked.

    A remembered id is read with the GET the sync needs anyway, and kept only if that
    contact still has the e-mail; the sync's own GET then takes that answer, so a
    remembered person costs one GET, not a search and a GET. An e-mail this invocation
    already looked up (`looked_up`: found by nobody, or by several) is not searched again."""

    def __init__(
        self, qomon: QomonPort, mails: MailCache, looked_up: LookedUp | None = None
    ) -> None:
        self._qomon = qomon
        self._mails = mails
        self._looked_up = looked_up if looked_up is not None else LookedUp()
        self._read: dict[int, Contact] = {}

    def find_by_email(self, mail: str) -> list[Contact]:
        remembered = self._mails.recall(mail)
        if remembered is not None:
            contact = self._qomon.get(remembered)
            if contact is not None and normalise_email(contact.get("mail")) == normalise_email(
                mail
            ):
                self._read[remembered] = contact
                return [contact]
            self._mails.forget(mail)
        else:
            # A search of this invocation (the batch's, for many e-mails) already said;
            # not after a remembered id proved wrong: that is searched afresh.
            found = self._looked_up.get(mail)
            if found is not None:
                return found
        found = self._qomon.find_by_email(mail)
        if len(found) == 1:
            self._mails.remember(mail, int(found[0]["id"]))
        return found

    def get(self, contact_id: int) -> Contact | None:
        if contact_id in self._read:
            return self._read.pop(contact_id)
        return self._qomon.get(contact_id)

    def replace(self, contact_id: int, contact: WriteContact) -> Contact:
        return self._qomon.replace(contact_id, contact)

    def create(self, contact: WriteContact) -> Contact:
        created = self._qomon.create(contact)
        mail = contact.get("mail")
        if isinstance(mail, str) and created.get("id"):
            # Qomon's search may not list a new contact at once: its next events find it here.
            self._mails.remember(mail, int(created["id"]))
            if mail in self._looked_up:  # it said nobody: now someone
                self._looked_up.record(mail, [created])
        return created
