"""The probe's traffic: signed webhooks of every source local mode knows (generic,
Typeform, Tally, Brevo), built from the documented examples in `events/webhooks/` with
new people, ids and texts each time so that every delivery is a distinct event, plus
deliberate redeliveries of some. Every personal value a delivery carries is recorded,
so that the logs can be searched for it afterwards.
"""

from __future__ import annotations

import copy
import json
import random
import string
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qomon_sync_dev.signing import sign, standard_webhooks
from tests.probe.logs import Personal

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS = ROOT / "events" / "webhooks"

SOURCE_CYCLE = ("generic", "typeform", "generic", "tally", "brevo")
"""Two generic deliveries in five, one of each other source: every source in any run."""
GENERIC_CYCLE = ("seed by id", "new person", "seed by id", "seed by e-mail", "unknown person")
BREVO_CYCLE = (
    "list_addition",
    "unsubscribed",
    "hard_bounce",
    "list_addition",
    "spam",
    "opened",
    "unsubscribed",
    "hard_bounce",
)
BREVO_FIXTURES = {
    "list_addition": "list-addition.json",
    "unsubscribed": "unsubscribed.json",
    "hard_bounce": "hard-bounce.json",
    "spam": "spam.json",
    "opened": "opened.json",
}
MAPPED_TAGS = (
    "petition-pistes-cyclables",
    "bénévole",
    "source-newsletter",
    "source-tract",
    "brevo-desinscrit",
    "mail-invalide",
)
"""Tags `functions/sources.yaml` adds for the deliveries the probe sends."""
FIRST_NAMES = ("Ysaline", "Maëlys", "Timothée", "Anatole", "Capucine", "Séverin", "Apolline")
LAST_NAMES = ("Marchal", "Delaunay", "Quéméner", "Ribeiro", "Nguyen", "Lhermitte", "Abadie")
PROFESSIONS = ("Ébéniste", "Sage-femme", "Cheminot", "Libraire", "Maraîchère")
REDELIVERY_SAME = "the same delivery again"
REDELIVERY_NEW = "the same events in a new delivery"


@dataclass(frozen=True)
class Delivery:
    number: int
    source: str
    label: str
    body: bytes
    msg_id: str | None = None
    """Generic only: the Standard Webhooks `webhook-id` (a sender's retry keeps it)."""
    redelivery: str | None = None
    """None for a first delivery, else which kind of redelivery this is."""
    notes: tuple[str, ...] = ()
    """The text each of its events adds as a note, in order (none for Brevo)."""
    mails: tuple[str | None, ...] = ()
    """The e-mail each of its events looks its person up by (None: by Qomon id)."""

    def headers(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Signed now, as the sender signs each attempt."""
        secret = secrets[self.source]
        signed = (
            standard_webhooks(secret, self.body, msg_id=self.msg_id)
            if self.source == "generic"
            else sign(self.source, secret, self.body)
        )
        return {"content-type": "application/json", **signed}


def fixture(source: str, name: str) -> Any:
    return json.loads((WEBHOOKS / source / name).read_text(encoding="utf-8"))


def as_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    mail: str
    mobile: str


class TrafficBuilder:
    """Builds the deliveries; `personal` receives every personal value they carry."""

    def __init__(
        self, rng: random.Random, seed_contacts: Iterable[Mapping[str, Any]], personal: Personal
    ) -> None:
        self.rng = rng
        self.personal = personal
        self.run = "".join(rng.choices(string.ascii_lowercase + string.digits, k=6))
        self.seed = [c for c in seed_contacts if isinstance(c.get("id"), int)]
        mails = [str(c.get("mail") or "").casefold() for c in self.seed]
        self.seed_mails = sorted(
            str(c["mail"])
            for c, m in zip(self.seed, mails, strict=True)
            if m and mails.count(m) == 1
        )
        self._tokens: set[str] = set()
        self._events = 0
        self.new_people: list[Person] = []
        self._builders: dict[str, Callable[[int], Delivery]] = {
            "generic": self.generic,
            "typeform": self.typeform,
            "tally": self.tally,
            "brevo": self.brevo,
        }
        for tag in MAPPED_TAGS:
            personal.add("tag", tag)

    # -- distinct values ------------------------------------------------------------------

    def token(self, length: int = 6) -> str:
        while True:
            token = "".join(self.rng.choices(string.ascii_lowercase, k=length))
            if token not in self._tokens:
                self._tokens.add(token)
                return token

    def person(self) -> Person:
        token = self.token()
        first = f"{self.rng.choice(FIRST_NAMES)}-{token[:3].capitalize()}"
        last = f"{self.rng.choice(LAST_NAMES)}-{token[3:].capitalize()}"
        person = Person(
            first=first,
            last=last,
            mail=f"{token}.{self.run}.{len(self.new_people)}@example.net",
            mobile=f"+336{self.rng.randrange(10**8):08d}",
        )
        self.personal.add("first_name", first)
        self.personal.add("last_name", last)
        self.personal.add("email", person.mail)
        self.personal.add("phone", person.mobile)
        self.new_people.append(person)
        return person

    def known_or_new(self) -> Person:
        """Half the time someone an earlier delivery introduced (if any), else someone new."""
        if self.new_people and self.rng.random() < 0.5:
            return self.rng.choice(self.new_people)
        return self.person()

    def text(self, kind: str, template: str) -> str:
        value = template.format(token=self.token(8))
        self.personal.add(kind, value)
        return value

    def event_id(self) -> str:
        self._events += 1
        return f"probe-{self.run}-{self._events:05d}"

    # -- the deliveries -------------------------------------------------------------------

    def build(self, count: int, redelivery_share: float) -> list[Delivery]:
        """`count` first deliveries in a shuffled order, plus redeliveries of a share of
        them placed after their original."""
        firsts = [self._builders[SOURCE_CYCLE[n % len(SOURCE_CYCLE)]](n) for n in range(count)]
        self.rng.shuffle(firsts)
        ordered: list[Delivery] = list(firsts)
        every = max(1, round(1 / redelivery_share)) if redelivery_share > 0 else 0
        for index, original in enumerate(firsts):
            if every and index % every == every // 2:
                again = self.redelivery(original, count + len(ordered) - len(firsts))
                position = ordered.index(original) + 1
                ordered.insert(self.rng.randint(position, len(ordered)), again)
        return ordered

    def redelivery(self, original: Delivery, number: int) -> Delivery:
        if original.source == "generic" and number % 2:
            # A new webhook-id: the queue cannot tell, the sync's ledger must.
            return replace(
                original, number=number, msg_id=f"msg_{uuid.uuid4().hex}", redelivery=REDELIVERY_NEW
            )
        return replace(original, number=number, redelivery=REDELIVERY_SAME)

    def generic(self, n: int) -> Delivery:
        kind = GENERIC_CYCLE[(n // len(SOURCE_CYCLE)) % len(GENERIC_CYCLE)]
        events = [self.change_event(kind)]
        if n % 7 == 0:  # a delivery of two events, as the fixture is
            events.append(self.change_event(GENERIC_CYCLE[n % len(GENERIC_CYCLE)]))
        body: Any = events if len(events) > 1 else events[0]
        return Delivery(
            n,
            "generic",
            f"generic: {kind}",
            as_body(body),
            f"msg_{uuid.uuid4().hex}",
            notes=tuple(e["notes"][0]["data"] for e in events),
            mails=tuple(e["contact"].get("mail") for e in events),
        )

    def change_event(self, kind: str) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": self.event_id(),
            "source": "crm",
            "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tag = self.text("tag", "quartier-{token}")
        note = self.text("note", "Note de la sonde {token} : rappeler après 18 h.")
        changes: dict[str, Any] = {
            "tags": {"add": [tag]},
            "notes": [{"data": note, "pinned": False}],
            "fields": [
                {"field": "Profession", "value": self.text("answer_text", "Métier {token}")}
            ],
        }
        if kind in ("seed by id", "seed by e-mail"):
            contact = self.rng.choice(self.seed)
            mobile = f"+336{self.rng.randrange(10**8):08d}"
            self.personal.add("phone", mobile)
            changes["set"] = {"mobile": mobile}
            if kind == "seed by e-mail" and self.seed_mails:
                mail = self.rng.choice(self.seed_mails)
                self.personal.add("email", mail)
                return {**event, "contact": {"mail": mail}, **changes}
            return {**event, "contact": {"id": contact["id"]}, **changes}
        person = self.known_or_new() if kind == "new person" else self.person()
        changes["set"] = {
            "firstname": person.first,
            "surname": person.last,
            "mail": person.mail,
            "mobile": person.mobile,
            "address": self.address(),
        }
        if kind == "new person":
            return {**event, "contact": {"mail": person.mail}, **changes, "if_missing": "create"}
        return {**event, "contact": {"mail": person.mail}, **changes}  # unknown: dead-lettered

    def address(self) -> dict[str, str]:
        postal = f"{self.rng.randint(10, 95):02d}{self.rng.randrange(1000):03d}"
        self.personal.add("address", postal)
        return {
            "housenumber": str(self.rng.randint(1, 180)),
            "street": self.text("address", "rue des {token}"),
            "postalcode": postal,
            "city": self.text("address", "Ville-{token}"),
        }

    def typeform(self, n: int) -> Delivery:
        payload = copy.deepcopy(fixture("typeform", "form-response.json"))
        person = self.known_or_new()
        response = payload["form_response"]
        payload["event_id"] = self.token(10)
        response["token"] = uuid.uuid4().hex
        response["response_url"] = response["response_url"].replace(
            "a3a12ec67a1365927098a606107fac15", response["token"]
        )
        comment = self.text("answer_text", "Les quais {token} sont dangereux le soir.")
        self.personal.add("note", comment)
        for answer in response["answers"]:
            ref = answer["field"]["ref"]
            if ref == "email":
                answer["email"] = person.mail
            elif ref == "nom_complet":
                answer["text"] = f"{person.first} {person.last}"
            elif ref == "commentaire":
                answer["text"] = comment
        return Delivery(
            n,
            "typeform",
            "typeform: form response",
            as_body(payload),
            notes=(comment,),
            mails=(person.mail,),
        )

    def tally(self, n: int) -> Delivery:
        payload = copy.deepcopy(fixture("tally", "form-response.json"))
        person = self.known_or_new()
        payer = self.person()
        payload["eventId"] = str(uuid.uuid4())
        payload["data"]["responseId"] = payload["data"]["submissionId"] = self.token(6)
        note = self.text("answer_text", "Disponible le samedi {token} pour tracter.")
        self.personal.add("note", note)
        values = {
            "question_w4Q4Xn": person.mail,
            "question_3jZaa3": person.mobile,
            "question_3EKz4n": self.text(
                "answer_text", f"{self.rng.choice(PROFESSIONS)} {{token}}"
            ),
            "question_3Nrpl3": note,
            "question_wa9QBw_name": f"{payer.first} {payer.last}",
            "question_wa9QBw_email": payer.mail,
            "question_mVGEg3_8b5711e3-f6a2-4e25-9e68-5d730598c681": self.rng.choice(
                ["newsletter", "tract", "affiche"]
            ),
        }
        for item in payload["data"]["fields"]:
            if item["key"] in values:
                item["value"] = values[item["key"]]
        return Delivery(
            n,
            "tally",
            "tally: form response",
            as_body(payload),
            notes=(note,),
            mails=(person.mail,),
        )

    def brevo(self, n: int) -> Delivery:
        kind = BREVO_CYCLE[(n // len(SOURCE_CYCLE)) % len(BREVO_CYCLE)]
        items = [self.brevo_event(kind)]
        if n % 3 == 0:  # Brevo may batch events in a list
            items.append(self.brevo_event(BREVO_CYCLE[n % len(BREVO_CYCLE)]))
        body: Any = items if len(items) > 1 else items[0]
        return Delivery(n, "brevo", f"brevo: {kind}", as_body(body))

    def brevo_event(self, kind: str) -> dict[str, Any]:
        item = copy.deepcopy(fixture("brevo", BREVO_FIXTURES[kind]))
        if self.seed_mails and self.rng.random() < 0.6:
            mail = self.rng.choice(self.seed_mails)
        else:
            mail = self.known_or_new().mail
        self.personal.add("email", mail)
        item["email"] = mail
        stamp = 1_700_000_000 + self.rng.randrange(60_000_000)
        if "ts_event" in item:
            item["ts_event"] = stamp
        else:
            item["date"] = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
            item["ts"] = stamp
        if "list_id" in item:
            item["list_id"] = sorted(self.rng.sample(range(1, 900), 2))
            for list_id in item["list_id"]:
                self.personal.add("tag", f"brevo-liste-{list_id}")
        return dict(item)


def seed_personal(personal: Personal, contacts: Iterable[Mapping[str, Any]]) -> int:
    """The seed contacts' personal data: the sync reads them back from Qomon, so they too
    must stay out of the logs. Returns how many values were added."""
    before = sum(personal.count().values())
    for contact in contacts:
        personal.add("email", contact.get("mail"))
        personal.add("phone", contact.get("mobile"), contact.get("phone"))
        personal.add("first_name", contact.get("firstname"))
        personal.add("last_name", contact.get("surname"), contact.get("married_name"))
        address = contact.get("address") or {}
        personal.add("address", address.get("street"), address.get("city"))
        postal = address.get("postalcode")
        personal.add("address", postal if isinstance(postal, str) else None)
        for tag in contact.get("tags") or []:
            personal.add("tag", tag.get("name"))
        for note in contact.get("notes") or []:
            personal.add("note", note.get("data"))
        for answer in [*(contact.get("formdatas") or []), *(contact.get("custom_fields") or [])]:
            data = answer.get("data")
            if isinstance(data, str) and " " in data.strip():  # free text, not a choice's value
                personal.add("answer_text", data)
    return sum(personal.count().values()) - before
