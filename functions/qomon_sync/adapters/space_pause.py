"""The space-wide pause and the suspicion that leads to it: two items in the staging table.

- `space#<place>` / `pause` (adapters.table.pause_key): `since`, `cause` (`outage` or
  `key_refused`), `description` (words, no personal data: "Qomon answers 503"), `waiting`
  (a number set of at most domain.pause.MAX_WAITING_IDS Qomon ids, to probe with),
  `next_probe_at`, `interval_s`, `probes`, `told`. Written with a conditional put: the
  first instance to trip it wins, the others add their contact to `waiting`. Every change
  after that is conditional on `since`, so a probe never moves a newer pause.
- `space#<place>` / `health` (health_key): `group`, `at` and `kind` (`outage` or
  `forbidden`), the last contact whose flush met a systemic failure. One atomic update
  writes the new one and returns the old (ALL_OLD): a second contact failing the same
  kind of way within the window trips the pause; one contact failing alone never does.

`<place>` is a hash of the space's URL (`place_of`), not of the API key: a refused key is
replaced by another, and the new key must find the pause the old one tripped. The same
hash keys the contacts' leases (application.runtime).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from qomon_sync.adapters.table import health_key, pause_key
from qomon_sync.domain.pause import (
    MAX_WAITING_IDS,
    OUTAGE,
    Cause,
    Pause,
    Systemic,
    second_contact,
)

HEALTH_KEPT_S = 3600


def place_of(base_url: str) -> str:
    """The space's place: a hash of its URL, what a rotated key does not change (with or
    without the trailing slash pydantic's HttpUrl adds: the operators' commands read the
    URL as the stack or local mode wrote it)."""
    return hashlib.sha256(base_url.rstrip("/").encode("utf-8")).hexdigest()[:16]


class SpacePauses:
    def __init__(
        self, dynamodb: Any, table: str, place: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._key = pause_key(place)
        self._health = health_key(place)
        self._clock = clock

    # -- reading --------------------------------------------------------------------------

    def get(self) -> Pause | None:
        item = self._db.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get(
            "Item"
        )
        return _pause(item) if item else None

    # -- the sync's side ------------------------------------------------------------------

    def suspect(self, group: str, window_s: float, kind: str = OUTAGE) -> bool:
        """Note a systemic failure of `group`; whether it makes two contacts in the window
        failing the same `kind` of way (Systemic.kind: an outage, or a 403)."""
        now = self._clock()
        answer = self._db.update_item(
            TableName=self._table,
            Key=self._health,
            UpdateExpression="SET #g = :g, #at = :at, kind = :kind, expires_at = :exp",
            ExpressionAttributeNames={"#g": "group", "#at": "at"},
            ExpressionAttributeValues={
                ":g": {"S": group},
                ":at": _n(now),
                ":kind": {"S": kind},
                ":exp": {"N": str(int(now + HEALTH_KEPT_S))},
            },
            ReturnValues="ALL_OLD",
        )
        old = answer.get("Attributes") or {}
        previous = old.get("group", {}).get("S")
        at = old.get("at", {}).get("N")
        same_kind = old.get("kind", {}).get("S", OUTAGE) == kind
        return second_contact(
            previous, float(at) if at else None, group, now, window_s, same_kind=same_kind
        )

    def trip(self, failure: Systemic, contact_id: int | None, *, first_probe_s: float) -> Pause:
        """Pause the space (first writer wins); the pause that holds, with this contact."""
        now = self._clock()
        item: dict[str, Any] = {
            **self._key,
            "since": _n(now),
            "cause": {"S": failure.cause},
            "description": {"S": failure.description},
            "next_probe_at": _n(now + first_probe_s),
            "interval_s": _n(first_probe_s),
            "probes": {"N": "0"},
            "told": {"BOOL": False},
        }
        if contact_id is not None:
            item["waiting"] = {"NS": [str(int(contact_id))]}
        try:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if not _lost(exc):
                raise
            if contact_id is not None:
                self.add_waiting(contact_id)
            pause = self.get()
            if pause is not None:
                return pause
        return _pause(item)

    def add_waiting(self, contact_id: int) -> None:
        """Keep `contact_id` among the contacts to probe with (a few are enough)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="ADD waiting :id",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(waiting) OR size(waiting) < :most)",
                ExpressionAttributeValues={
                    ":id": {"NS": [str(int(contact_id))]},
                    ":most": {"N": str(MAX_WAITING_IDS)},
                },
            )
        except ClientError as exc:
            if not _lost(exc):
                raise

    # -- the probe's side -----------------------------------------------------------------

    def probed(self, pause: Pause, *, next_probe_at: float, interval_s: float) -> bool:
        """A probe failed: the next one at `next_probe_at`. False if the pause moved on."""
        return self._update(
            pause,
            "SET next_probe_at = :next, interval_s = :interval ADD probes :one",
            {":next": _n(next_probe_at), ":interval": _n(interval_s), ":one": {"N": "1"}},
        )

    def told(self, pause: Pause) -> bool:
        return self._update(pause, "SET told = :yes", {":yes": {"BOOL": True}})

    def probe_now(self) -> Pause | None:
        """An operator asks for a probe now (`qomon-sync resume`): the pause, or None."""
        pause = self.get()
        if pause is None:
            return None
        self._update(pause, "SET next_probe_at = :now", {":now": _n(self._clock())})
        return self.get()

    def clear(self, pause: Pause) -> bool:
        """The probe found Qomon answering: the pause ends (only the one it probed)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._key,
                ConditionExpression="since = :since",
                ExpressionAttributeValues={":since": _n(pause.since)},
            )
        except ClientError as exc:
            if not _lost(exc):
                raise
            return False
        return True

    def _update(self, pause: Pause, expression: str, values: dict[str, Any]) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression=expression,
                ConditionExpression="since = :since",
                ExpressionAttributeValues={":since": _n(pause.since), **values},
            )
        except ClientError as exc:
            if not _lost(exc):
                raise
            return False
        return True


def _pause(item: dict[str, Any]) -> Pause:
    cause: Cause = "key_refused" if item.get("cause", {}).get("S") == "key_refused" else "outage"
    return Pause(
        since=float(item["since"]["N"]),
        cause=cause,
        description=str(item.get("description", {}).get("S", "")),
        waiting=tuple(sorted(int(v) for v in item.get("waiting", {}).get("NS", []))),
        next_probe_at=float(item.get("next_probe_at", {}).get("N", "0")),
        interval_s=float(item.get("interval_s", {}).get("N", "60")),
        probes=int(item.get("probes", {}).get("N", "0")),
        told=bool(item.get("told", {}).get("BOOL", False)),
    )


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


def _lost(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
