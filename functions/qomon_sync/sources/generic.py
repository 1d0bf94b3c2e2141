"""The `generic` source: change events v1 as they are, signed with Standard Webhooks.

For senders we have no preset for (a CRM, a script, an automation tool): they send one
change event, or a list of 1 to 50, and sign the delivery the Standard Webhooks way
(https://www.standardwebhooks.com): headers `webhook-id`, `webhook-timestamp` (Unix
seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several
separated by blanks during a key rotation), with a `whsec_<base64>` secret.

Replays: a delivery is refused once its timestamp is more than 5 minutes away from the
time it is received, and within that window the `webhook-id` (the delivery id) is the
queue's deduplication key, so a replayed delivery is never applied twice.

The events are taken as they are but for `source`: the ingest sets it to this source's
name (the one whose secret verified the delivery), whatever the body says, so that a
generic sender can neither speak for another source nor, by reusing its event ids, make
that source's events duplicates (the sync keys them `<source>:<event_id>`).
"""

from __future__ import annotations

import binascii
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError
from standardwebhooks.webhooks import (
    EmptyWebhookSecretError,
    Webhook,
    WebhookVerificationError,
)

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.validation import validation_problems
from qomon_sync.sources.base import BadPayload, NoContact, Unauthenticated, WebhookRequest
from qomon_sync.sources.config import SourceConfig
from qomon_sync.sources.payload import ROOT, at, parse_json, shown
from qomon_sync.sources.signatures import header, require_secret

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
TOLERANCE = timedelta(minutes=5)
"""The Standard Webhooks window (also the `standardwebhooks` package's own)."""
MAX_EVENTS = 50

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""ASCII digits only: `int()` also reads other scripts' digits, which no signer writes."""
MAX_UNIX_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a datetime holds."""
_SIGNATURE = re.compile(r"^v[0-9a-z]+,[A-Za-z0-9+/=_-]+$")
_V1_SIGNATURE = re.compile(r"^v1,[A-Za-z0-9+/]{43}=$")


class GenericSourceConfig(SourceConfig):
    """Another name for change events v1 sent as they are (Standard Webhooks)."""

    preset: Literal["generic"]


class StandardWebhooksAuth:
    """Standard Webhooks' scheme, checked by `GenericSource.authenticate`; signs as its
    reference package does."""

    scheme = "standard-webhooks"

    def sign(self, secret: str, request: WebhookRequest) -> WebhookRequest:
        msg_id = request.headers.get(ID_HEADER) or f"msg_{uuid.uuid4().hex}"
        signature = Webhook(secret).sign(msg_id, request.received_at, request.body.decode())
        headers = {
            **request.headers,
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(int(request.received_at.timestamp())),
            SIGNATURE_HEADER: signature,
        }
        return replace(request, headers=headers)


class GenericSource:
    """Change events v1 sent as they are, authenticated with Standard Webhooks."""

    auth = StandardWebhooksAuth()

    def __init__(self, name: str = "generic") -> None:
        self.name = name

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        require_secret(secret)
        # Each header is printable ASCII of a bounded length before anything reads it.
        msg_id = header(request.headers, ID_HEADER)
        stamp = header(request.headers, TIMESTAMP_HEADER)
        signatures = header(request.headers, SIGNATURE_HEADER)
        self._check_timestamp(stamp, request.received_at)
        self._check_signature_form(signatures)
        try:
            verifier = Webhook(secret)
        except (EmptyWebhookSecretError, binascii.Error, ValueError):
            raise Unauthenticated(
                "the secret configured for this source is not a Standard Webhooks secret "
                "(whsec_<base64>), so nothing can pass"
            ) from None
        try:
            request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Unauthenticated(
                "the body is not UTF-8 text, so its signature cannot be checked", field="body"
            ) from None
        # The package splits signatures on single blanks: hand it the header as we read it.
        checked = {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: " ".join(signatures.split()),
        }
        try:
            verifier.verify(request.body, checked, json_parse=False)
        except WebhookVerificationError as exc:
            raise _from_verification_error(str(exc)) from None
        except (binascii.Error, UnicodeError, ValueError):
            # The package leaks these on malformed input that our own checks let through.
            raise Unauthenticated(
                f"malformed header {SIGNATURE_HEADER}", field=SIGNATURE_HEADER
            ) from None

    @staticmethod
    def _check_timestamp(text: str, received_at: datetime) -> None:
        """Unix seconds within 5 minutes of receipt, compared as numbers: a value no
        datetime can hold (the year 33658) is refused like any other, never converted."""
        if not _TIMESTAMP.fullmatch(text) or int(text) > MAX_UNIX_SECONDS:
            raise Unauthenticated(
                f"malformed header {TIMESTAMP_HEADER} (expected Unix seconds, a time "
                "before the year 10000)",
                field=TIMESTAMP_HEADER,
            )
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        if abs(received_at.timestamp() - int(text)) > TOLERANCE.total_seconds():
            raise Unauthenticated(
                f"stale timestamp in {TIMESTAMP_HEADER}: more than 5 minutes from the time "
                "of receipt (a replay, or a clock far off)",
                field=TIMESTAMP_HEADER,
            )

    @staticmethod
    def _check_signature_form(text: str) -> None:
        entries = text.split()
        if not entries or not all(_SIGNATURE.match(entry) for entry in entries):
            raise Unauthenticated(
                f"malformed header {SIGNATURE_HEADER} (expected `v1,<base64>`, "
                "several separated by blanks)",
                field=SIGNATURE_HEADER,
            )
        if not any(_V1_SIGNATURE.match(entry) for entry in entries):
            raise Unauthenticated(
                f"malformed header {SIGNATURE_HEADER}: no `v1` HMAC-SHA256 signature",
                field=SIGNATURE_HEADER,
            )

    def delivery_id(self, request: WebhookRequest) -> str | None:
        return request.headers.get(ID_HEADER, "").strip() or None

    def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
        body = parse_json(request.body)
        if isinstance(body, dict):
            return [_change_event(body, ROOT)]
        if not isinstance(body, list):
            raise BadPayload("the body must be a change event or a list of them", field=shown(ROOT))
        if not 1 <= len(body) <= MAX_EVENTS:
            raise BadPayload(
                f"a delivery holds 1 to {MAX_EVENTS} change events, not {len(body)}",
                field=shown(ROOT),
            )
        events: list[ChangeEvent] = []
        no_contact: NoContact | None = None
        for index, item in enumerate(body):
            try:
                events.append(_change_event(item, at(ROOT, index)))
            except NoContact as exc:
                # A malformed event elsewhere in the delivery is the graver fault: keep looking.
                no_contact = no_contact or exc
        if no_contact is not None:
            raise no_contact
        seen: set[str] = set()
        for index, event in enumerate(events):
            if event.event_id in seen:
                raise BadPayload(
                    "an event_id appears twice in one delivery",
                    field=at(at(ROOT, index), "event_id"),
                )
            seen.add(event.event_id)
        return events


def _from_verification_error(message: str) -> Unauthenticated:
    """The package says what failed only in its message text."""
    text = message.lower()
    if "missing" in text:
        return Unauthenticated("missing Standard Webhooks headers")
    if "too old" in text or "too new" in text:
        return Unauthenticated(
            f"stale timestamp in {TIMESTAMP_HEADER}: more than 5 minutes from now",
            field=TIMESTAMP_HEADER,
        )
    if "no matching signature" in text:
        return Unauthenticated(
            f"wrong signature in {SIGNATURE_HEADER}: not signed with this source's secret",
            field=SIGNATURE_HEADER,
        )
    return Unauthenticated(
        f"malformed Standard Webhooks headers ({TIMESTAMP_HEADER} or {SIGNATURE_HEADER})"
    )


def _change_event(item: Any, path: str) -> ChangeEvent:
    if not isinstance(item, dict):
        raise BadPayload(f"`{shown(path)}` must be a change event object", field=shown(path))
    try:
        return ChangeEvent.model_validate(item)
    except ValidationError as exc:
        problems = [(_loc(path, loc), message) for loc, message in validation_problems(exc)]
        if _names_no_contact(item) and all(_is_under(path, "contact", p) for p, _ in problems):
            raise NoContact(
                "the change event names no contact: `contact` needs an `id` or a `mail`",
                field=at(path, "contact"),
            ) from None
        detail = "; ".join(f"{where}: {what}" for where, what in problems)
        raise BadPayload(f"not a valid change event v1: {detail}", field=problems[0][0]) from None


def _names_no_contact(item: dict[str, Any]) -> bool:
    contact = item.get("contact")
    if contact is None:
        return True
    if not isinstance(contact, dict):
        return False
    return all(
        contact.get(key) is None or (isinstance(contact.get(key), str) and not contact[key].strip())
        for key in ("id", "mail")
    )


def _is_under(path: str, key: str, problem_path: str) -> bool:
    prefix = at(path, key)
    return problem_path == prefix or problem_path.startswith((f"{prefix}.", f"{prefix}["))


def _loc(path: str, loc: tuple[int | str, ...]) -> str:
    for part in loc:
        path = at(path, part)
    return shown(path)
