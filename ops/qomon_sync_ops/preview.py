"""`dlq show --preview`: what Qomon would be sent now for one letter, with nothing sent.

It reads the contact (a search by e-mail when the event names no id, then a GET) and the
space's forms, and runs the domain's own `assemble_contact` with the stack's
UnknownFieldsPassthrough: the same read-modify-write the sync function does, stopped
before the write. It spends Qomon tokens (about 8: forms, a search, a GET), never a PATCH.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from qomon_sync.adapters.qomon import Deadline, QomonClient, QomonError
from qomon_sync.adapters.qomon.port import QomonContacts, fetch_forms
from qomon_sync.domain.assembly import Rejected, Replace, assemble_contact
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.policy import AssemblyPolicy, ShapePolicy
from qomon_sync.domain.refusal import EXPLAINED
from qomon_sync_ops.target import OpsError, Target, unreachable

PREVIEW_TIME_S = 60.0


@dataclass(frozen=True)
class Preview:
    lines: list[str]
    body: dict[str, Any] | None = None
    """The replacement body (shown only with --show-personal-data)."""


def api_key(target: Target) -> str:
    """The Qomon key from the stack's secret: the bare key, or `{"api_key": "..."}`."""
    try:
        raw = target.client("secretsmanager").get_secret_value(SecretId=target.qomon_api_key_secret)
    except Exception as error:
        raise unreachable(target, error) from None
    text = str(raw.get("SecretString") or "").strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("api_key", "")).strip()
        except (ValueError, AttributeError):
            text = ""
    if not text or text == "REPLACE_ME":
        raise OpsError(
            f"the QomonApiKey secret ({target.qomon_api_key_secret}) holds no key: put the "
            "space's API key in it (see docs/deploying.md)"
        )
    return text


def preview(target: Target, body: str) -> Preview:
    try:
        event = ChangeEvent.model_validate_json(body)
    except ValidationError:
        return Preview(["Nothing to preview: the letter is not a change event v1."])
    client = QomonClient(target.qomon_base_url, api_key(target))
    qomon = QomonContacts(client, Deadline.after(PREVIEW_TIME_S))
    try:
        current, found = _current(qomon, event)
        if not found:
            return Preview([f"Preview (nothing sent): {current}."], None)
        forms = fetch_forms(client, Deadline.after(PREVIEW_TIME_S))
    except QomonError as error:
        return Preview([f"Preview impossible: Qomon answered {error.code} ({error})."])
    policy = AssemblyPolicy(shape=ShapePolicy(passthrough=target.passthrough))
    outcome = assemble_contact(current or {}, forms, [event], policy)
    spent = f"(this preview spent {client.stats.tokens} Qomon tokens; nothing was sent)"
    if isinstance(outcome, Replace):
        lines = [
            f"Preview: it would be written now. Qomon would get one replacement changing "
            f"{', '.join(outcome.changed)} {spent}.",
            *(f"  warning: {w}" for w in outcome.warnings),
        ]
        return Preview(lines, outcome.body)
    if isinstance(outcome, Rejected):
        meaning, _ = EXPLAINED[outcome.code]
        fields = f" [{', '.join(outcome.fields)}]" if outcome.fields else ""
        return Preview(
            [f"Preview: it would still be refused: {outcome.code}, {meaning}{fields} {spent}."]
        )
    return Preview(
        [f"Preview: nothing would change: Qomon already holds what the event says {spent}."]
    )


def _current(qomon: QomonContacts, event: ChangeEvent) -> tuple[Any, bool]:
    """The contact as Qomon holds it (and True), or why there is none (and False)."""
    contact_id = event.contact.id
    current = None
    if contact_id is None:
        matches = qomon.find_by_email(event.contact.mail or "")
        if len(matches) > 1:
            return f"{len(matches)} Qomon contacts share the event's e-mail", False
        contact_id = int(matches[0]["id"]) if matches else None
    if contact_id is not None:
        current = qomon.get(contact_id)
    if current is not None:
        return current, True
    if event.if_missing == "create":
        return {}, True  # the event would create the contact: assembled from nothing
    return f"Qomon has no contact the event names (if_missing: {event.if_missing})", False
