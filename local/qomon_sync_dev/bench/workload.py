"""A seeded, reproducible workload of change events, and a reference model of its outcome.

N events over M contacts of the stand-in's seed: each of the M gets one event first (so
`--contacts 300` touches 300 people), the rest skewed (a few contacts get many events),
with a share of no-op events, answers of every form type, events by id and by e-mail, and
a share for people Qomon does not know. The reference model is deliberately simple and
independent of the assembly code: it tracks, per contact, the values the workload touches
(first name, phone, tags, the answers of each form it uses) by replaying the events in
order, so the final Qomon state can be checked against it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qomon_sync.domain.contact_meaning import tag_key
from qomon_sync.domain.dates import to_qomon_date
from qomon_sync.domain.forms import FORM_FAMILIES

# The seed's forms the workload answers (see events/standin-seed.json).
SUPPORT = (
    3102,
    "Niveau de soutien",
    "radio",
    ["very_favorable", "favorable", "undecided", "unfavorable"],
)
CONSENTS = (
    3101,
    "Consentements",
    "checkbox",
    ["consent_email", "consent_sms", "consent_phone", "consent_post"],
)
TOPICS = (
    3205,
    "Quels sujets vous intéressent ?",
    "checkbox",
    ["housing", "transport", "education", "health"],
)
HOUSEHOLD = (3202, "Combien de personnes vivent dans votre foyer ?", "numeric", None)
LAST_VOTE = (3203, "Date de votre dernier vote", "date", None)
CONCERN = (3201, "Quelle est votre principale préoccupation ?", "text", None)
PROFESSION = (3401, "Profession", "text", None)
DONATIONS = (3403, "Montant total des dons (€)", "numeric", None)
FORMS = (SUPPORT, CONSENTS, TOPICS, HOUSEHOLD, LAST_VOTE, CONCERN, PROFESSION, DONATIONS)
SURVEY_ID = 501
"""The seed's door-to-door survey: the workload answers its forms for that survey. Text,
number and date forms hold one answer per survey, so other surveys' answers stay."""
SURVEY_FORMS = frozenset({TOPICS[0], HOUSEHOLD[0], LAST_VOTE[0], CONCERN[0]})
TAGS = ["bénévole", "donateur", "newsletter", "porte-à-porte", "quartier-nord"]
UNKNOWN_MAIL = "personne.inconnue.{n}@example.net"
NEW_MAIL = "nouvelle.personne.{n}@example.net"
"""People new to Qomon whose events ask to create them (`if_missing: create`)."""
FORMS_LOAD = len(FORM_FAMILIES)
"""The space's forms, read once by any client that writes answers: one call per family."""

State = dict[str, Any]
"""Per contact: firstname, phone, tags (casefolded names), and `form:<id>` -> frozenset of data."""


@dataclass(frozen=True)
class WorkloadSpec:
    events: int = 300
    contacts: int = 40
    seed: int = 7
    noop_share: float = 0.2
    by_mail_share: float = 0.3
    unknown_share: float = 0.04
    skew: float = 1.2
    """Zipf exponent of the contacts' popularity: a few contacts get many events."""
    new_share: float = 0.0
    """The share of the `contacts` new to Qomon: named by e-mail, created by their first
    event that changes something (`if_missing: create`), held in the model under negative
    ids (their Qomon id is only known once they exist)."""


@dataclass
class Workload:
    spec: WorkloadSpec
    events: list[dict[str, Any]]
    initial: dict[int, State]
    expected: dict[int, State]
    touched: set[int] = field(default_factory=set)
    unknown_events: int = 0
    noop_events: int = 0
    notes: dict[int, list[str]] = field(default_factory=dict)
    new_people: dict[int, str] = field(default_factory=dict)
    """Model id (negative) -> e-mail of each person new to Qomon."""

    @property
    def changed(self) -> set[int]:
        """Contacts whose tracked data really ends up different (the PATCH floor)."""
        return {c for c in self.touched if self.expected[c] != self.initial[c] or self.notes.get(c)}

    def token_floor(self) -> int:
        """One read per contact (or lookup per unknown person), one write per changed contact."""
        return len(self.touched) + self.unknown_lookups + 5 * len(self.changed)

    def lookup_floor(self, group_size: int) -> int:
        """The floor with the calls any client must make besides: the space's forms, read
        once, and one search per `group_size` e-mails named (nobody knows who an e-mail
        is before asking Qomon). A new person costs that search and no read."""
        reads = len(self.touched) - len(self.touched & self.new_people.keys())
        searches = math.ceil(len(self.mails) / group_size)
        return reads + searches + FORMS_LOAD + 5 * len(self.changed)

    @property
    def mails(self) -> set[str]:
        """Every e-mail the events name people by (case ignored)."""
        return {e["contact"]["mail"].casefold() for e in self.events if e["contact"].get("mail")}

    @property
    def unknown_lookups(self) -> int:
        return len(
            {
                e["contact"]["mail"]
                for e in self.events
                if e["contact"].get("mail", "").startswith("personne.inconnue")
            }
        )


def state_of(contact: Mapping[str, Any]) -> State:
    """The tracked values of a stored or seeded contact (live answers only)."""
    state: State = {
        "firstname": contact.get("firstname"),
        "phone": contact.get("phone"),
        "tags": frozenset(tag_key(t["name"]) for t in contact.get("tags") or []),
    }
    for form_id, *_ in FORMS:
        answers = [
            a
            for a in [*(contact.get("formdatas") or []), *(contact.get("custom_fields") or [])]
            if a.get("form_id") == form_id
            and not a.get("deleted_at")
            and (form_id not in SURVEY_FORMS or a.get("survey_id") == SURVEY_ID)
        ]
        state[f"form:{form_id}"] = frozenset(str(a.get("data")) for a in answers)
    return state


def build_workload(
    seed_contacts: Iterable[Mapping[str, Any]], spec: WorkloadSpec | None = None
) -> Workload:
    spec = spec or WorkloadSpec()
    rng = random.Random(spec.seed)
    new = round(spec.contacts * spec.new_share)
    contacts = _known_people(seed_contacts, spec)[: spec.contacts - new]
    mails = [str(c.get("mail") or "").casefold() for c in contacts]
    unique_mail = {
        c["id"] for c, m in zip(contacts, mails, strict=True) if m and mails.count(m) == 1
    }
    # A source identifies a person one way (its CRM id, or the e-mail typed in a form): the
    # FIFO message group is that key, so one person's events stay in one group, in order.
    by_mail = {cid for cid in sorted(unique_mail) if rng.random() < spec.by_mail_share}
    newcomers = {-(n + 1): NEW_MAIL.format(n=n) for n in range(new)}
    by_mail |= set(newcomers)
    contacts += [{"id": cid, "mail": mail} for cid, mail in newcomers.items()]
    weights = [1 / (rank + 1) ** spec.skew for rank in range(len(contacts))]
    model = {c["id"]: state_of(c) for c in contacts}
    initial = {cid: dict(state) for cid, state in model.items()}
    workload = Workload(spec, [], initial, model)
    workload.new_people = newcomers

    first_round = list(contacts)
    rng.shuffle(first_round)
    for n in range(spec.events):
        event_id = f"bench-{spec.seed}-{n:05d}"
        if n >= len(first_round) and rng.random() < spec.unknown_share:
            mail = UNKNOWN_MAIL.format(n=rng.randrange(10))
            workload.events.append(_event(event_id, {"mail": mail}, tags={"add": ["newsletter"]}))
            workload.unknown_events += 1
            continue
        contact = first_round[n] if n < len(first_round) else rng.choices(contacts, weights)[0]
        ref = {"mail": contact["mail"]} if contact["id"] in by_mail else {"id": contact["id"]}
        create = {"if_missing": "create"} if contact["id"] in workload.new_people else {}
        _draw(workload, rng, event_id, n, ref, cid=contact["id"], **create)
    return workload


def _known_people(
    seed_contacts: Iterable[Mapping[str, Any]], spec: WorkloadSpec
) -> list[Mapping[str, Any]]:
    """The seed's people the workload may name; with everyone named by e-mail, those the
    seed gives an e-mail of their own."""
    contacts = [c for c in seed_contacts if not c.get("black_list")]
    if spec.by_mail_share < 1:
        return contacts
    seen = [str(c.get("mail") or "").casefold() for c in contacts]
    return [c for c, m in zip(contacts, seen, strict=True) if m and seen.count(m) == 1]


def _draw(
    workload: Workload,
    rng: random.Random,
    event_id: str,
    n: int,
    ref: dict[str, Any],
    *,
    cid: int,
    **extra: Any,
) -> None:
    """One event for a contact: a no-op, or changes applied to the model."""
    workload.touched.add(cid)
    state = workload.expected[cid]
    if rng.random() < workload.spec.noop_share:
        workload.events.append(_event(event_id, ref, **_noop(state, rng), **extra))
        workload.noop_events += 1
        return
    changes = _change(state, rng, n)
    for note in changes.get("notes", []):
        workload.notes.setdefault(cid, []).append(note["data"])
    workload.events.append(_event(event_id, ref, **changes, **extra))


def _event(event_id: str, contact: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "bench",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": contact,
        **changes,
    }


def _noop(state: State, rng: random.Random) -> dict[str, Any]:
    """Changes that restate what the model already holds."""
    if state["firstname"] and rng.random() < 0.5:
        return {"set": {"firstname": state["firstname"]}}
    if state["tags"]:
        return {"tags": {"add": [sorted(state["tags"])[0]]}}
    support = state[f"form:{SUPPORT[0]}"]
    if len(support) == 1:
        return {"fields": [{"field": SUPPORT[1], "value": next(iter(support))}]}
    return {"tags": {"remove": ["jamais-utilise"]}}


def _change(state: State, rng: random.Random, n: int) -> dict[str, Any]:
    """One to three changes of different kinds, applied to the model as they are drawn."""
    set_fields: dict[str, Any] = {}
    tags: dict[str, list[str]] = {}
    fields: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for kind in rng.sample(["name", "phone", "tag", "form", "form", "note"], rng.randint(1, 3)):
        if kind == "name":
            set_fields["firstname"] = state["firstname"] = (
                rng.choice(["Ana", "Inès", "Hugo", "Léa", "Nour"]) + f" {n}"
            )
        elif kind == "phone":
            set_fields["phone"] = state["phone"] = f"+336000{n:05d}"
        elif kind == "tag":
            name = rng.choice(TAGS)
            if tag_key(name) in state["tags"] and rng.random() < 0.5:
                tags.setdefault("remove", []).append(name)
                state["tags"] = state["tags"] - {tag_key(name)}
            elif name not in tags.get("remove", []):
                tags.setdefault("add", []).append(name)
                state["tags"] = state["tags"] | {tag_key(name)}
        elif kind == "form":
            fields.append(_answer(state, rng, n, {f["field"] for f in fields}))
        else:
            notes.append({"data": f"Note de banc d'essai n°{n}"})
    out: dict[str, Any] = {}
    if set_fields:
        out["set"] = set_fields
    if tags:
        out["tags"] = tags
    if fields:
        out["fields"] = fields
    if notes:
        out["notes"] = notes
    return out


def _answer(state: State, rng: random.Random, n: int, used: set[str]) -> dict[str, Any]:
    answer = _answer_of(state, rng, n, used)
    form_id = next(f[0] for f in FORMS if f[1] == answer["field"])
    return {**answer, "survey_id": SURVEY_ID} if form_id in SURVEY_FORMS else answer


def _answer_of(state: State, rng: random.Random, n: int, used: set[str]) -> dict[str, Any]:
    form_id, label, kind, choices = rng.choice([f for f in FORMS if f[1] not in used] or [FORMS[0]])
    values: list[str] = list(choices or [])
    key = f"form:{form_id}"
    if kind == "radio":
        value = rng.choice(values)
        state[key] = frozenset({value})
        return {"field": label, "value": value}
    if kind == "checkbox":
        value = rng.choice(values)
        if value in state[key] and rng.random() < 0.5:
            state[key] = state[key] - {value}
            return {"field": label, "op": "remove", "value": value}
        state[key] = state[key] | {value}
        return {"field": label, "op": "add", "value": value}
    if kind == "numeric":
        number = rng.randint(1, 9) if form_id == HOUSEHOLD[0] else rng.randint(10, 500)
        state[key] = frozenset({str(number)})
        return {"field": label, "value": number}
    if kind == "date":
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        state[key] = frozenset({to_qomon_date(day)})
        return {"field": label, "value": day}
    text = f"Réponse {n}"
    state[key] = frozenset({text})
    return {"field": label, "value": text}
