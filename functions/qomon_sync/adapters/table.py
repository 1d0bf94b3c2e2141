"""The staging table's keys: every item the sync keeps there, and how long it lives.

One DynamoDB table (the template's `StagingTable`: partition key `pk`, sort key `sk`,
TTL attribute `expires_at`) holds what the sync stages and what every instance shares.
Each key shape is named here once, and the adapters that read and write the items ask
this module for their keys, so no two of them can build one shape two ways, or one
key for two kinds of item.

Each item, `pk` / `sk`: what it holds (the adapter that keeps it), and how long it lives.

- `group#<message group>` / `event#<sequence number, 40 digits>`: one staged event
  (staging). Deleted as soon as its event is settled; `expires_at` the ledger's
  retention, a backstop only.
- `group#<message group>` / `head`: the flush marker the group expects on the queue, and
  since when its events wait (staging). Deleted once a flush leaves the group nothing
  staged; `expires_at` the ledger's retention.
- `space#<space>` / `bucket`: `tat`, the space's shared token bucket (shared_bucket).
  Always: one number, no `expires_at`.
- `space#<space>` / `forms`: the space's forms, zlib JSON (space_cache). `FORMS_CACHE_S`.
- `space#<space>` / `forms-lease`: which instance is loading the forms (space_cache).
  `space_cache.LEASE_S`, or deleted when that load fails.
- `space#<space>` / `mail-lookups`: `groups`, the message groups (pseudonymous) of the
  people named by an e-mail not known yet who wait, on a backlog, for one search of many
  (space_cache `WaitingLookups`). `STAGING_MAX_AGE_S` after its last change.
- `mail#<keyed pseudonym of an e-mail>` / `contact`: the one contact id a search found
  for it (space_cache). `EMAIL_CACHE_S`, or deleted when the contact no longer has it.
- `contact#<space>#<Qomon id>` / `lease`: the one flush writing that contact
  (contact_lease). Deleted by its holder; free after its `until` (at most as long as the
  holder's invocation), and `expires_at` a second later.
- `space#<place>` / `pause`: the space-wide pause, when Qomon is down or refuses the key
  (space_pause): since when, why, the contacts to probe, the next probe. Deleted by the
  probe that finds Qomon answering again; no `expires_at`.
- `space#<place>` / `health`: the last contact whose flush met a systemic failure, and
  when (space_pause): a second contact within the window trips the pause. `expires_at`
  an hour after.

`<space>` is a hash of the API key (application.runtime): Qomon counts tokens per key,
and contact ids and forms belong to the space behind it. `<place>` is a hash of the
space's URL: a pause outlives the key that met it (a refused key is replaced by another).
Nothing here is personal but a staged event's body, which is deleted as soon as it is
settled: an e-mail is its keyed pseudonym, never the address. docs/architecture.md, "The
tables", says the same.
"""

from __future__ import annotations

Key = dict[str, dict[str, str]]
"""A DynamoDB key: `{"pk": {"S": ...}, "sk": {"S": ...}}`."""

EVENT = "event#"
"""What a staged event's sort key begins with (after it: its sequence number)."""
HEAD = "head"


def group_partition(group: str) -> dict[str, str]:
    """The partition of a message group's staged events and head, to query."""
    return {"S": f"group#{group}"}


def group_of_partition(pk: str) -> str | None:
    """The message group a `group#` partition key names; None for another item."""
    return pk.removeprefix("group#") if pk.startswith("group#") else None


def staged_event_key(group: str, seq: str) -> Key:
    return {"pk": group_partition(group), "sk": {"S": EVENT + seq}}


def group_head_key(group: str) -> Key:
    return {"pk": group_partition(group), "sk": {"S": HEAD}}


def event_seq(sk: str) -> str | None:
    """The sequence number a staged event's sort key holds; None for another item."""
    return sk.removeprefix(EVENT) if sk.startswith(EVENT) else None


def bucket_key(space: str) -> Key:
    return _space(space, "bucket")


def forms_key(space: str) -> Key:
    return _space(space, "forms")


def forms_lease_key(space: str) -> Key:
    return _space(space, "forms-lease")


def waiting_lookups_key(space: str) -> Key:
    return _space(space, "mail-lookups")


def remembered_contact_key(pseudonym: str) -> Key:
    """Where an e-mail's contact id is remembered, under the e-mail's keyed pseudonym."""
    return {"pk": {"S": f"mail#{pseudonym}"}, "sk": {"S": "contact"}}


def contact_lease_key(space: str, contact_id: int) -> Key:
    return {"pk": {"S": f"contact#{space}#{int(contact_id)}"}, "sk": {"S": "lease"}}


def pause_key(place: str) -> Key:
    """The space-wide pause, keyed by the space's URL (not the key: a new key finds it)."""
    return _space(place, "pause")


def health_key(place: str) -> Key:
    """The last systemic failure seen, and whose: two contacts within a window pause."""
    return _space(place, "health")


def _space(space: str, sk: str) -> Key:
    return {"pk": {"S": f"space#{space}"}, "sk": {"S": sk}}
