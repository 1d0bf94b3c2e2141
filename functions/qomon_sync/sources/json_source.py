"""The `json` preset: a source that is configuration, its selectors JMESPath expressions
over the parsed body (see `sources/selectors.py`).

    acme:
      preset: json
      body: json                 # or form (application/x-www-form-urlencoded)
      auth: {scheme: hmac-sha256, header: X-Acme-Signature, encoding: hex}
      each: "events"             # optional: a list of events per delivery
      event_type: "type"         # optional: which entry of `events` maps an event
      event_id: "id"             # optional: the sender's id (else a digest of the event)
      event_id_unique: true      # false: the id may name several changes (a digest is added)
      attempt_fields: []         # keys a retry changes (HubSpot's attemptNumber): not digested
      occurred_at: "created_at"  # optional (else the time of receipt), with
      occurred_at_format: iso    # iso, unix, unix_ms, or a strptime format
      answers: {email: "person.email"}   # optional names for selectors
      contact: {mail: email}             # who the event is about
      events:
        "*":                     # the event type, or `*` for any other
          set: {firstname: "person.first_name"}
          fields: [{answer: "person.job", field: Profession}]
          tags: {add: [acme]}
          notes: ["Acme: {answer.comment}"]

An event's id must name one change and stay the same when the sender retries it: the ledger
applies an id once. It is the sender's id where the event carries one and the sender
documents it as naming one change (`event_id`); where the sender's id may be shared by
several changes (HubSpot's `eventId`) or names a resource that can change again (Action
Network's `identifiers`), `event_id_unique: false` adds a digest of the event to it; and
where the event carries no id (Mailchimp, NationBuilder, Action Network's
`action_network:action`), the id is that digest alone: SHA-256 of the event's canonical
JSON (keys sorted), less its `attempt_fields`. Two changes differ somewhere, so their
digests do; a retry resends the same event, so it keeps its id. Receipt time never enters.

Each rule maps answers as a form source does (sources/answers.py): an answer is a name of
`answers` or a JMESPath expression over the event (the delivery, or one item of `each`).
A rule may also say `when` (a selector: the event is mapped only when it is true), its own
`contact` (Mailchimp's `upemail` finds the person by the old address), and
`without_contact: ignore` (an event that names no one changes nothing instead of refusing
the delivery). Events of a type no rule maps are acknowledged and change nothing.

Presets built on this one (`presets.yaml`: helloasso, mailchimp, hubspot...) give these
keys for their sender; a source of such a preset in the mapping file gives the rest, and what it
gives replaces the preset's: `answers` name by name, `events` rule by rule and, within a
rule, key by key (`fields` given for `Order` keep the preset's `set` and `notes`; `null`
drops a rule).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.sources.answers import (
    NOTE_PLACEHOLDERS,
    AnswerMapping,
    ContactConfig,
    FormSubmission,
    ValueSpec,
    field_references,
    map_answers,
)
from qomon_sync.sources.base import BadPayload, NoContact, WebhookRequest
from qomon_sync.sources.config import PATH_MARK, QomonReference, SourceConfig, read_yaml
from qomon_sync.sources.payload import (
    ROOT,
    as_instant,
    as_sender_id,
    as_text,
    as_unix_seconds,
    at,
    bad,
    parse_form,
    parse_json,
    shown,
)
from qomon_sync.sources.selectors import Selector, compile_problem, select, truthy
from qomon_sync.sources.signatures import Auth, QueryAuth
from qomon_sync.sources.values import AnswerValue, Key, number_text

ANY_EVENT = "*"
MAX_EVENTS = 100
"""Events in one delivery (HubSpot batches up to 100)."""
MAX_EVENT_ID = 128
PRESETS_FILE = Path(__file__).with_name("presets.yaml")

Occurred = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class JsonRule(AnswerMapping):
    """How one type of event becomes a change event."""

    when: Selector | None = None
    contact: ContactConfig | None = None
    without_contact: Literal["refuse", "ignore"] = "refuse"


class JsonSourceConfig(SourceConfig):
    """A source described by selectors (the `json` preset and those built on it)."""

    preset: str
    body: Literal["json", "form"] = "json"
    auth: Auth
    delivery_id: Selector | None = None
    each: Selector | None = None
    event_type: Selector | None = None
    event_id: Selector | None = None
    event_id_unique: bool = True
    """False where the sender's id may name several changes (HubSpot documents its
    `eventId` as not unique) or a resource that changes again (Action Network's
    `identifiers`): a digest of the event is then added to it."""
    attempt_fields: tuple[Key, ...] = ()
    """Keys of an event that change from one delivery attempt to the next (HubSpot's
    `attemptNumber`): left out of the digest, so that a retry keeps its event's id."""
    occurred_at: Selector | None = None
    occurred_at_format: Occurred = "iso"
    answers: dict[Key, Selector] = Field(default_factory=dict)
    contact: ContactConfig | None = None
    if_missing: Literal["dead_letter", "create", "skip"] | None = None
    """The rules' default (each rule may say its own)."""
    events: dict[Key, JsonRule] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults = preset_defaults().get(str(data.get("preset")), {})
        merged = {**defaults, **data}
        for key in ("answers", "events"):
            given = data.get(key)
            if isinstance(given, dict) and isinstance(defaults.get(key), dict):
                entries = {**defaults[key], **given}
                if key == "events":  # a rule's keys replace the preset's, one by one
                    entries.update(_merged_rules(defaults[key], given))
                merged[key] = {name: rule for name, rule in entries.items() if rule is not None}
        return merged

    @model_validator(mode="after")
    def _selectors_and_contacts(self) -> JsonSourceConfig:
        problems: list[str] = []
        for name, rule in self.events.items():
            where = f"events.{name}"
            if rule.contact is None and self.contact is None:
                problems.append(f"{where}: needs a `contact` (here or for the whole source)")
            for path, key in _answer_keys(rule, self.contact, where):
                problem = None if key in self.answers else compile_problem(key)
                if problem is not None:
                    problems.append(f"{path}: {problem}")
        if self.occurred_at_format not in ("iso", "unix", "unix_ms") and (
            "%" not in self.occurred_at_format
        ):
            problems.append("occurred_at_format: iso, unix, unix_ms or a strptime format")
        if problems:
            raise ValueError("\n".join(f"{PATH_MARK}{problem}" for problem in problems))
        return self

    @property
    def answers_get(self) -> bool:
        return isinstance(self.auth, QueryAuth) and self.auth.answers_get

    def qomon_references(self, base: str) -> list[QomonReference]:
        references: list[QomonReference] = []
        for name, rule in self.events.items():
            references.extend(field_references(rule.fields, f"{base}.events.{name}"))
        return references


@cache
def preset_defaults() -> dict[str, dict[str, Any]]:
    """The presets built on this one, by name: each one's keys for its sender, from
    `presets.yaml`."""
    data = read_yaml(PRESETS_FILE.read_text(encoding="utf-8"), str(PRESETS_FILE))
    return dict(data["presets"]) if isinstance(data, dict) else {}


def _merged_rules(preset: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {**preset[name], **rule}
        for name, rule in given.items()
        if isinstance(rule, dict) and isinstance(preset.get(name), dict)
    }


def _answer_keys(
    rule: JsonRule, default_contact: ContactConfig | None, where: str
) -> Iterator[tuple[str, str]]:
    """(path in the source's configuration, answer key) of every answer the rule reads."""
    contact = rule.contact or default_contact
    contact_where = f"{where}.contact" if rule.contact else "contact"
    specs: list[tuple[str, ValueSpec | None]] = []
    if contact is not None:
        specs += [(f"{contact_where}.mail", contact.mail), (f"{contact_where}.id", contact.id)]
    specs += [(f"{where}.set.{key}", spec) for key, spec in rule.set.items()]
    specs += [(f"{where}.fields[{i}]", spec) for i, spec in enumerate(rule.fields)]
    specs += [(f"{where}.tags.from_answers[{i}]", s) for i, s in enumerate(rule.tags.from_answers)]
    for path, spec in specs:
        if spec is not None and spec.answer is not None:
            yield f"{path}.answer", spec.answer
    for index, note in enumerate(rule.notes):
        for part in note.parts():
            if part.answer is not None:
                yield f"{where}.notes[{index}].template", part.answer


class JsonSource:
    """Deliveries read by selectors, as the source's configuration says."""

    def __init__(self, name: str, config: JsonSourceConfig) -> None:
        self.name = name
        self.config = config
        self.auth = config.auth
        self.answers_get = config.answers_get
        self._keys = {
            rule_name: sorted({key for _, key in _answer_keys(rule, config.contact, "")})
            for rule_name, rule in config.events.items()
        }

    def parse(self, request: WebhookRequest) -> Any:
        return parse_form(request.body) if self.config.body == "form" else parse_json(request.body)

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.config.auth.check(request, secret, lambda: self.parse(request))

    def delivery_id(self, request: WebhookRequest) -> str | None:
        if self.config.delivery_id is None:
            return None
        try:
            found = select(self.config.delivery_id, self.parse(request), "delivery_id")
        except BadPayload:
            return None
        return _id_text(found)

    def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
        events: dict[str, ChangeEvent] = {}
        for item, path in self.items(self.parse(request)):
            event = self.change_event(item, path, request)
            if event is not None:
                events.setdefault(event.event_id, event)  # the same event twice: once
        return list(events.values())

    def items(self, body: Any) -> list[tuple[Any, str]]:
        """The delivery's events, each with its path in the body."""
        if self.config.each is None:
            return [(body, ROOT)]
        found = select(self.config.each, body, "each")
        if not isinstance(found, list):
            raise bad(ROOT, f"holds no list of events where `each` ({self.config.each}) looks")
        if len(found) > MAX_EVENTS:
            raise bad(ROOT, f"holds more than {MAX_EVENTS} events")
        return [(item, at(ROOT, index)) for index, item in enumerate(found)]

    def change_event(
        self, item: Any, path: str, request: WebhookRequest, *, extra: Mapping[str, Any] = {}
    ) -> ChangeEvent | None:
        """The change event of one event, or None when no rule maps it; `extra` adds
        answers found elsewhere in the delivery (HubSpot's e-mail)."""
        kind = self._event_type(item, path)
        rule_name = kind if kind in self.config.events else ANY_EVENT
        rule = self.config.events.get(rule_name)
        if rule is None or (rule.when and not truthy(select(rule.when, item, _w(rule_name)))):
            return None
        answers = {key: self._answer(item, key, path) for key in self._keys[rule_name]}
        answers.update(extra)
        submission = FormSubmission(
            event_id=self._event_id(item, kind, path),
            occurred_at=self._occurred_at(item, path, request.received_at),
            answers=answers,
        )
        contact = rule.contact or self.config.contact
        assert contact is not None  # the configuration's validator sees to it
        mapping = (
            rule
            if "if_missing" in rule.model_fields_set or not self.config.if_missing
            else (rule.model_copy(update={"if_missing": self.config.if_missing}))
        )
        try:
            return map_answers(self.name, mapping, contact, submission, f"events.{rule_name}.")
        except NoContact as exc:
            if rule.without_contact == "ignore":
                return None
            raise NoContact(f"`{shown(path)}`: {exc.detail}", field=exc.field) from None

    def _event_type(self, item: Any, path: str) -> str | None:
        if self.config.event_type is None:
            return None
        found = select(self.config.event_type, item, "event_type")
        if found is None or isinstance(found, bool):
            return None
        if isinstance(found, int | float):
            return number_text(found)
        return as_text(found, f"{shown(path)} ({self.config.event_type})").strip()

    def _answer(self, item: Any, key: str, path: str) -> AnswerValue:
        expression = self.config.answers.get(key, key)
        return answer_value(select(expression, item, key), key, path)

    def _event_id(self, item: Any, kind: str | None, path: str) -> str:
        """The sender's id where the event carries one, with a digest of the event where
        that id may name several changes; else the digest alone (see the module's
        docstring). Never the time of receipt: a retry must keep its id."""
        sender = self._sender_id(item, path)
        if sender is None:
            text = self._digest(item, kind)
        elif self.config.event_id_unique:
            text = sender
        else:
            text = f"{sender}-{self._digest(item, kind)}"
        event_id = f"{self.name}-{text}"
        if len(event_id) > MAX_EVENT_ID:
            event_id = f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"
        return event_id

    def _sender_id(self, item: Any, path: str) -> str | None:
        """The sender's id of the event, or None where this event carries none (a null or
        blank id: its digest names it); an id of the wrong kind is a bad payload."""
        if self.config.event_id is None:
            return None
        found = select(self.config.event_id, item, "event_id")
        if found is None or (isinstance(found, str) and not found.strip()):
            return None
        text = _id_text(found)
        if text is None:
            raise bad(
                path,
                f"holds an object, a list or true/false where `event_id` "
                f"({self.config.event_id}) looks, which is no id",
            )
        return as_sender_id(text, f"{shown(path)} (event_id)")

    def _digest(self, item: Any, kind: str | None) -> str:
        """SHA-256 of the event's canonical JSON (keys sorted), its attempt fields left out."""
        if isinstance(item, dict) and self.config.attempt_fields:
            item = {k: v for k, v in item.items() if k not in self.config.attempt_fields}
        material = json.dumps([kind, item], sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]

    def _occurred_at(self, item: Any, path: str, received_at: datetime) -> datetime:
        if self.config.occurred_at is None:
            return received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
        where = f"{shown(path)} (occurred_at)"
        found = select(self.config.occurred_at, item, "occurred_at")
        kind = self.config.occurred_at_format
        if kind == "iso":
            return as_instant(found, where)
        if kind == "unix":
            return as_unix_seconds(found, where)
        if kind == "unix_ms":
            number = found if isinstance(found, int | float) else None
            if isinstance(found, str) and found.isascii() and found.isdigit():
                number = int(found)
            if number is None or isinstance(number, bool):
                raise bad(where, "must be Unix milliseconds")
            return as_unix_seconds(number / 1000, where)
        try:
            return datetime.strptime(as_text(found, where).strip(), kind).replace(tzinfo=UTC)
        except ValueError:
            raise bad(where, f"does not match the date format `{kind}`") from None


def _w(rule_name: str) -> str:
    return f"events.{rule_name}.when"


def _id_text(found: Any) -> str | None:
    if isinstance(found, bool) or found is None:
        return None
    if isinstance(found, int | float):
        return number_text(found)
    return found if isinstance(found, str) and found.strip() else None


def answer_value(value: Any, key: str, path: str) -> AnswerValue:
    """A selected value as an answer: text (of characters only), a number, yes/no, or a
    list of texts; an object is no answer. `key` names the answer, `path` the event."""
    where = f"{shown(path)} ({key})"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return as_text(value, where)
    if isinstance(value, list):
        items: list[str] = []
        for item in value:
            if item is None:
                continue
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise bad(where, "selects a list of objects or lists, which is no answer")
            items.append(as_text(item, where) if isinstance(item, str) else number_text(item))
        return items
    raise bad(where, "selects an object, which is no answer (select a value inside it)")


__all__ = ["NOTE_PLACEHOLDERS", "JsonRule", "JsonSource", "JsonSourceConfig"]
