"""The `brevo` source: Brevo's marketing webhooks (https://developers.brevo.com/docs/marketing-webhooks).

Four events change the contact named by `email` (each configurable under
`sources.brevo.events` in the mapping file; these are the defaults):

- `unsubscribed`: remove the consent `consent_email` from the form "Consentements", tag
  `brevo-desinscrit`;
- `spam` (a spam complaint): `black_list: true`;
- `hard_bounce` (also spelled `hard_bounced`): tag `mail-invalide`;
- `list_addition`: tag `brevo-liste-<id>` for each list the contact was added to.

Every other event (opened, click, delivered, soft_bounce...) is acknowledged and changes
nothing: `change_events` returns no event, and the ingest handler answers 202 with
`accepted: 0`, so Brevo does not retry it. A body is one event or a list of them (Brevo's
batched webhooks).

Authentication (https://developers.brevo.com/docs/secured-webhooks, "Bearer token
authorization"): the webhook is created with a token that Brevo sends as
`Authorization: Bearer <token>`; it is compared in constant time with the source's secret.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.validation import validation_problems
from qomon_sync.sources.base import BadPayload, NoContact, WebhookRequest
from qomon_sync.sources.config import QomonReference, SourceConfig
from qomon_sync.sources.payload import (
    ROOT,
    as_object,
    as_text,
    as_unix_seconds,
    at,
    bad,
    parse_json,
    shown,
)
from qomon_sync.sources.signatures import TokenAuth
from qomon_sync.sources.values import (
    BasicPath,
    Config,
    FieldRef,
    TagName,
    check_basic_values,
    nest_basic_fields,
)

AUTHORIZATION_HEADER = "Authorization"
_BREVO_DATE = "%Y-%m-%d %H:%M:%S"
_LIST_ID = re.compile(r"[0-9]{1,18}")


# -- its configuration ------------------------------------------------------------------


LIST_ID = "list_id"
"""The one placeholder of Brevo tags: `brevo-liste-{list_id}` gives one tag per list."""

# -- Brevo ------------------------------------------------------------------------------


def _list_id_placeholders(text: str) -> str:
    for name in re.findall(r"\{([^{}]*)\}", text):
        if name != LIST_ID:
            raise ValueError(f"unknown placeholder `{{{name}}}` (Brevo tags know `{{{LIST_ID}}}`)")
    return text


class StaticFieldChange(Config):
    field: FieldRef
    op: Literal["set", "add", "remove"] = "set"
    value: str | int | float | list[str | int | float]


class StaticTags(Config):
    add: tuple[Annotated[TagName, AfterValidator(_list_id_placeholders)], ...] = ()
    remove: tuple[Annotated[TagName, AfterValidator(_list_id_placeholders)], ...] = ()


class BrevoAction(Config):
    """What one Brevo event changes: fixed basic fields, field answers and tags."""

    set: dict[BasicPath, bool | int | float | str | None] = Field(default_factory=dict)
    fields: tuple[StaticFieldChange, ...] = ()
    tags: StaticTags = StaticTags()

    @field_validator("set")
    @classmethod
    def _valid_values(cls, values: dict[str, object]) -> dict[str, object]:
        check_basic_values(values)
        return values

    def uses_list_ids(self) -> bool:
        return any(f"{{{LIST_ID}}}" in tag for tag in (*self.tags.add, *self.tags.remove))


DEFAULT_CONSENT_FIELD = "Consentements"
DEFAULT_CONSENT_VALUE = "consent_email"


class BrevoEvents(Config):
    """The Brevo marketing events that change a contact; each one given here replaces its
    default entirely. Every other event is acknowledged and changes nothing."""

    unsubscribed: BrevoAction = BrevoAction(
        fields=(
            StaticFieldChange(
                field=DEFAULT_CONSENT_FIELD, op="remove", value=DEFAULT_CONSENT_VALUE
            ),
        ),
        tags=StaticTags(add=("brevo-desinscrit",)),
    )
    spam: BrevoAction = BrevoAction(set={"black_list": True})
    hard_bounce: BrevoAction = BrevoAction(tags=StaticTags(add=("mail-invalide",)))
    list_addition: BrevoAction = BrevoAction(tags=StaticTags(add=(f"brevo-liste-{{{LIST_ID}}}",)))

    def action(self, event: str) -> BrevoAction | None:
        name = BREVO_EVENT_ALIASES.get(event, event)
        return getattr(self, name) if name in type(self).model_fields else None


BREVO_EVENT_ALIASES = {"hard_bounced": "hard_bounce"}
"""Brevo's marketing documentation has spelled the hard bounce both ways."""


class BrevoSourceConfig(SourceConfig):
    preset: Literal["brevo"]
    events: BrevoEvents = BrevoEvents()
    # An unsubscribe or a bounce from someone Qomon never knew has nothing to change:
    # dead-lettering it would only wake the dead-letter alarm.
    if_missing: Literal["dead_letter", "create", "skip"] = "skip"

    def qomon_references(self, base: str) -> list[QomonReference]:
        references: list[QomonReference] = []
        for event in type(self.events).model_fields:
            action: BrevoAction = getattr(self.events, event)
            for index, change in enumerate(action.fields):
                where = f"{base}.events.{event}.fields[{index}]"
                values = change.value if isinstance(change.value, list) else [change.value]
                references.append(
                    QomonReference(
                        f"{where}.field",
                        change.field,
                        change.op,
                        tuple((f"{where}.value", value) for value in values),
                    )
                )
        return references


# -- the source -------------------------------------------------------------------------


class BrevoSource:
    auth = TokenAuth(scheme="bearer", header=AUTHORIZATION_HEADER)

    def __init__(self, name: str = "brevo", config: BrevoSourceConfig | None = None) -> None:
        self.name = name
        self.config = config or BrevoSourceConfig(preset="brevo")

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.auth.check(request, secret, lambda: None)

    def delivery_id(self, request: WebhookRequest) -> str | None:
        """Brevo sends no delivery id; the handler then deduplicates on the body's hash,
        and each change event's id is derived from the event itself (see `_event_id`)."""
        return None

    def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
        body = parse_json(request.body)
        if isinstance(body, dict):
            items = [(body, ROOT)]
        elif isinstance(body, list):
            items = [(item, at(ROOT, index)) for index, item in enumerate(body)]
        else:
            raise BadPayload("the body must be a Brevo event or a list of them", field="body")
        events = []
        for item, path in items:
            event = self._change_event(as_object(item, path), path)
            if event is not None:
                events.append(event)
        return events

    def _change_event(self, item: dict[str, Any], path: str) -> ChangeEvent | None:
        name = as_text(item.get("event"), at(path, "event")).strip()
        action = self.config.events.action(name)
        if action is None:
            return None
        mail = item.get("email")
        if mail is None or (isinstance(mail, str) and not mail.strip()):
            raise NoContact(
                f"the `{name}` event names no contact (no `email`)", field=at(path, "email")
            )
        mail = as_text(mail, at(path, "email")).strip()
        list_ids = _list_ids(item.get("list_id"), at(path, "list_id"), action)
        event: dict[str, Any] = {
            "event_id": _event_id(item, name, mail, list_ids),
            "source": self.name,
            "occurred_at": _occurred_at(item, path),
            "contact": {"mail": mail},
            "if_missing": self.config.if_missing,
        }
        if action.set:
            event["set"] = nest_basic_fields(action.set)
        if action.fields:
            event["fields"] = [change.model_dump() for change in action.fields]
        tags = {
            op: _expand(names, list_ids)
            for op, names in (("add", action.tags.add), ("remove", action.tags.remove))
        }
        if any(tags.values()):
            event["tags"] = {op: names for op, names in tags.items() if names}
        try:
            return ChangeEvent.model_validate(event)
        except ValidationError as exc:
            loc, message = validation_problems(exc)[0]
            where = ".".join(str(part) for part in loc)
            if where.startswith("contact.mail"):
                raise bad(at(path, "email"), "is not an e-mail address") from None
            raise BadPayload(
                f"the `{name}` action gives an invalid change event: {where}: {message}",
                field=shown(path),
            ) from None


def _list_ids(value: Any, path: str, action: BrevoAction) -> list[int]:
    if not action.uses_list_ids():
        return []
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        # ASCII digits only (`"²".isdigit()` is true, and int() refuses it), and an id's
        # length, so that no conversion can fail.
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise bad(path, "must be a list of Brevo list ids")
        if not _LIST_ID.fullmatch(str(item) if isinstance(item, str) else f"{item:d}"):
            raise bad(path, "must be a list of Brevo list ids")
        ids.append(int(item))
    if not ids:
        raise bad(path, "names no list")
    return ids


def _expand(names: tuple[str, ...], list_ids: list[int]) -> list[str]:
    placeholder = f"{{{LIST_ID}}}"
    expanded: list[str] = []
    for name in names:
        if placeholder in name:
            expanded.extend(name.replace(placeholder, str(list_id)) for list_id in list_ids)
        else:
            expanded.append(name)
    return expanded


def _event_id(item: dict[str, Any], name: str, mail: str, list_ids: list[int]) -> str:
    """Stable across Brevo's retries, distinct between events: Brevo's `id` is the
    webhook's (the same for every event it sends), so the event's own parts are hashed
    with it. The hash also keeps the e-mail out of the id, which is logged."""
    material = [
        item.get("id"),
        item.get("message-id"),
        name,
        mail.casefold(),
        item.get("camp_id"),
        item.get("ts_event"),
        item.get("date") if item.get("ts_event") is None else None,
        sorted(list_ids),
    ]
    digest = hashlib.sha256(json.dumps(material, default=str).encode("utf-8")).hexdigest()
    return f"brevo-{digest[:32]}"


def _occurred_at(item: dict[str, Any], path: str) -> datetime:
    """`ts_event` (Unix seconds, UTC), else `date`, which Brevo documents in Paris time."""
    stamp = item.get("ts_event")
    if stamp is not None:
        return as_unix_seconds(stamp, at(path, "ts_event"))
    text = item.get("date")
    if text is None:
        raise bad(at(path, "ts_event"), "is missing (and so is `date`)")
    try:
        local = datetime.strptime(as_text(text, at(path, "date")).strip(), _BREVO_DATE)
    except ValueError:
        raise bad(at(path, "date"), "is not `YYYY-MM-DD hh:mm:ss`") from None
    return paris_to_utc(local)


def paris_to_utc(local: datetime) -> datetime:
    """Paris wall-clock time as UTC. Central European Summer Time runs from the last
    Sunday of March to the last Sunday of October, 01:00 UTC both (EU Directive
    2000/84/EC); computed here so the bundle needs no time-zone database. The repeated
    hour in October is read as summer time."""
    summer_start = _last_sunday(local.year, 3)
    summer_end = _last_sunday(local.year, 10)
    as_summer = (local - timedelta(hours=2)).replace(tzinfo=UTC)
    if summer_start <= as_summer < summer_end:
        return as_summer
    return (local - timedelta(hours=1)).replace(tzinfo=UTC)


def _last_sunday(year: int, month: int) -> datetime:
    last_day = datetime(year, month + 1, 1, 1, tzinfo=UTC) - timedelta(days=1)
    return last_day - timedelta(days=(last_day.weekday() + 1) % 7)
