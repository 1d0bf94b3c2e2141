"""Writes the stand-in's seed: the forms of a typical campaign space and 340 contacts.

    python -m tests.make_seed > events/standin-seed.json

Deterministic (a fixed random seed), so the file only changes when this script does.
A contact is the documented write shape plus `id` and, as the stand-in's seed format
allows, past server timestamps (`CreatedAt`, `UpdatedAt`, `lastchange`) and soft-deleted
history (`deleted_formdatas`). Values have the types Qomon's PATCH reference documents,
and notes the shape its response documents: `id`, `contact_id`, `created_at`,
`updated_at`, `group_id`, `pinned`, `only_super_admin` and the author `user`. `api_user`
is the user behind the API key, the author of the notes API writes create.
Every person is invented: e-mails are under example.org / example.com and phone numbers
follow the fake `+33 6 00 00 00 xx` pattern. A few contacts are traps on purpose: two share
one e-mail in different case (the case-sensitive `eql:strictdata` finds one, the loose
`eql` both), one has an e-mail that begins with another's (a loose search finds both),
some carry fields no schema lists, some have soft-deleted history, some birthdates are
stored without milliseconds (sending one back as read is refused), one text question is
answered in two surveys.

The first 40 contacts are the hand-shaped ones tests name by id; the 300 after them
(`MORE_CONTACTS`, drawn from a random generator of their own, so the first 40 never
move) give the benchmark's `--contacts 300` that many distinct people.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

JsonObject = dict[str, Any]

CONSENT = 3101
LEVEL_OF_SUPPORT = 3102
PRESENCE_STATUS = 3103
SURVEY_CONCERN = 3201
SURVEY_HOUSEHOLD = 3202
SURVEY_LAST_VOTE = 3203
SURVEY_CALL_BACK = 3204
SURVEY_TOPICS = 3205
SURVEY_RATING = 3206
SURVEY_ARCHIVED = 3207
TASKS = 3301
PROFESSION = 3401
MEMBERSHIP_TIER = 3402
DONATIONS = 3403
MEMBER_SINCE = 3404

SURVEY_ID = 501
FOLLOW_UP_SURVEY_ID = 502
"""A later survey asking the concern question again: one text form, answers of two surveys."""
GROUP_ID = 4242
"""The space's group, as the stand-in plays it (its default)."""
FIRST_NOTE_ID = 60_001
HAND_SHAPED = 40
"""The first contacts, each shaped on purpose (traps, history, the documented keys)."""
MORE_CONTACTS = 300
"""Plain contacts after the first 40, for backlogs over hundreds of people."""

FIRST_NAMES = (
    "Lucas", "Inès", "Hugo", "Léa", "Nour", "Théo", "Chloé", "Mathis", "Sarah", "Karim",
    "Julie", "Yanis", "Manon", "Olivier", "Amina", "Paul", "Zoé", "Rémi", "Élodie", "Samuel",
    "Fatou", "Bastien", "Lina", "Antoine", "Maëlle", "Idriss", "Clara", "Victor", "Salomé",
    "Jules", "Aïcha", "Nicolas", "Emma", "Malik", "Louise", "Gabriel",
)  # fmt: skip
SURNAMES = (
    "Fontaine", "Lefort", "Garnier", "Benali", "Moreau", "Caron", "Diallo", "Perrin",
    "Lambert", "Chevalier", "Marchand", "Barbier", "Renaud", "Haddad", "Colin", "Vidal",
    "Aubert", "Morel", "Lemaire", "Giraud", "Rolland", "Fabre", "Brunet", "Leclerc",
)  # fmt: skip
PLACES = (
    ("75011", "Paris", "75"),
    ("69003", "Lyon", "69"),
    ("13005", "Marseille", "13"),
    ("31000", "Toulouse", "31"),
    ("01000", "Bourg-en-Bresse", "01"),
    ("33000", "Bordeaux", "33"),
    ("59000", "Lille", "59"),
    ("44000", "Nantes", "44"),
    ("06000", "Nice", "06"),
)
STREETS = (
    "rue des Lilas",
    "avenue des Tilleuls",
    "boulevard de la Liberté",
    "rue du Moulin",
    "impasse des Glycines",
    "place de la Fontaine",
    "chemin des Vignes",
)
TAGS = (
    "sympathisant",
    "bénévole",
    "porte-à-porte",
    "newsletter",
    "donateur",
    "quartier nord",
    "réunion publique 2024",
)
CONCERNS = (
    "Le prix des loyers dans le quartier",
    "Les horaires du bus 12",
    "Plus de pistes cyclables",
    "La sécurité à la sortie des écoles",
    "L'accès aux soins",
)
PROFESSIONS = ("Infirmière", "Enseignant", "Artisan", "Étudiante", "Retraité", "Ingénieure")
NOTES = (
    "Préfère être contacté le soir.",
    "A participé à la réunion publique de mars.",
    "Intéressé pour tenir un stand au marché.",
    "Ne souhaite pas de visite à domicile.",
)


ROLE_ADMIN = {
    "id": 1,
    "name": "Administrateur",
    "color": "#4f46e5",
    "order": 1,
    "web": True,
    "mobile": True,
}
ROLE_ORGANISER = {
    "id": 2,
    "name": "Responsable de quartier",
    "color": "#16a34a",
    "order": 2,
    "web": True,
    "mobile": True,
}
ROLE_CANVASSER = {
    "id": 3,
    "name": "Militant",
    "color": "#ca8a04",
    "order": 3,
    "web": False,
    "mobile": True,
}


def _user(
    user_id: int,
    firstname: str,
    surname: str,
    role: JsonObject,
    *,
    created: str,
    birthdate: str | None = None,
    two_factor: bool = False,
) -> JsonObject:
    """A user of the space in the documented shape of a note's author (invented values;
    what `status` and `location` hold is not documented)."""
    return {
        "id": user_id,
        "CreatedAt": created,
        "UpdatedAt": created,
        "created": created,
        "firstname": firstname,
        "surname": surname,
        "mail": f"{_ascii(firstname)}.{_ascii(surname)}@example.org",
        "phone": f"+33 6 00 00 00 {90 + user_id % 10}",
        "address": None,
        "postal": "75011",
        "city": "Paris",
        "location": None,
        "locale": "fr",
        "avatar": None,
        "birthdate": birthdate,
        "status": "active",
        "group_id": [GROUP_ID],
        "role_data": dict(role),
        "two_factor_enable": two_factor,
    }


def build_users() -> tuple[JsonObject, list[JsonObject]]:
    """The user behind the API key, and the team whose members wrote the seeded notes."""
    api_user = _user(9001, "Intégration", "API", ROLE_ADMIN, created="2021-01-04T09:00:00.000000Z")
    team = [
        _user(
            9002,
            "Marion",
            "Dubois",
            ROLE_ORGANISER,
            created="2021-02-01T18:12:40.512304Z",
            birthdate="1984-02-11T00:00:00.000Z",
            two_factor=True,
        ),
        _user(9003, "Youssef", "Amrani", ROLE_CANVASSER, created="2022-09-14T17:03:11.000981Z"),
        _user(
            9004,
            "Hélène",
            "Carpentier",
            ROLE_ADMIN,
            created="2021-01-04T09:30:05.250000Z",
            two_factor=True,
        ),
    ]
    return api_user, team


def _choice_form(
    form_id: int,
    form_type: str,
    label: str,
    section: str,
    values: list[tuple[str, str]],
    *,
    activate: bool = True,
) -> JsonObject:
    return {
        "id": form_id,
        "type": form_type,
        "label": label,
        "section": section,
        "activate": activate,
        "refvalues": [
            {"id": form_id * 10 + n, "form_id": form_id, "label": text, "value": slug}
            for n, (slug, text) in enumerate(values, start=1)
        ],
    }


def _free_form(
    form_id: int, form_type: str, label: str, section: str, **bounds: float
) -> JsonObject:
    refvalue: JsonObject = {"id": form_id * 10 + 1, "form_id": form_id, "label": label}
    refvalue["value"] = None
    refvalue.update(bounds)
    return {
        "id": form_id,
        "type": form_type,
        "label": label,
        "section": section,
        "activate": True,
        "refvalues": [refvalue],
    }


def build_forms() -> list[JsonObject]:
    return [
        _choice_form(
            CONSENT,
            "checkbox",
            "Consentements",
            "consent",
            [
                ("consent_email", "J'accepte d'être contacté·e par e-mail"),
                ("consent_sms", "J'accepte d'être contacté·e par SMS"),
                ("consent_phone", "J'accepte d'être contacté·e par téléphone"),
                ("consent_post", "J'accepte d'être contacté·e par courrier"),
                ("refuse_all", "Je refuse toute sollicitation"),
            ],
        ),
        _choice_form(
            LEVEL_OF_SUPPORT,
            "radio",
            "Niveau de soutien",
            "level_of_support",
            [
                ("very_favorable", "Très favorable"),
                ("favorable", "Favorable"),
                ("undecided", "Indécis"),
                ("unfavorable", "Défavorable"),
                ("very_unfavorable", "Très défavorable"),
            ],
        ),
        _choice_form(
            PRESENCE_STATUS,
            "radio",
            "Statut de présence",
            "presence_status",
            [
                ("present", "Présent"),
                ("absent", "Absent"),
                ("refused_to_talk", "Refuse de discuter"),
                ("moved_out", "A déménagé"),
            ],
        ),
        _free_form(SURVEY_CONCERN, "text", "Quelle est votre principale préoccupation ?", "survey"),
        _free_form(
            SURVEY_HOUSEHOLD,
            "numeric",
            "Combien de personnes vivent dans votre foyer ?",
            "survey",
            min=0,
            max=20,
            step=1,
        ),
        _free_form(SURVEY_LAST_VOTE, "date", "Date de votre dernier vote", "survey"),
        _choice_form(
            SURVEY_CALL_BACK,
            "radio",
            "Souhaitez-vous être recontacté·e ?",
            "survey",
            [("yes", "Oui"), ("no", "Non"), ("maybe", "Peut-être")],
        ),
        _choice_form(
            SURVEY_TOPICS,
            "checkbox",
            "Quels sujets vous intéressent ?",
            "survey",
            [
                ("housing", "Logement"),
                ("transport", "Transports"),
                ("education", "Éducation"),
                ("environment", "Environnement"),
                ("health", "Santé"),
            ],
        ),
        _free_form(
            SURVEY_RATING,
            "range",
            "De 0 à 10, votre intérêt pour la campagne",
            "survey",
            min=0,
            max=10,
            step=1,
        ),
        _choice_form(
            SURVEY_ARCHIVED,
            "radio",
            "Avez-vous reçu notre tract de 2022 ?",
            "survey",
            [("received", "Oui"), ("not_received", "Non")],
            activate=False,
        ),
        _choice_form(
            TASKS,
            "checkbox",
            "Tâches",
            "tasks",
            [
                ("call_back", "Rappeler"),
                ("send_leaflet", "Envoyer un tract"),
                ("invite_to_event", "Inviter à un événement"),
                ("volunteer_follow_up", "Suivi bénévole"),
            ],
        ),
        _free_form(PROFESSION, "text", "Profession", "custom_fields"),
        _choice_form(
            MEMBERSHIP_TIER,
            "select",
            "Niveau d'adhésion",
            "custom_fields",
            [
                ("member_basic", "Adhérent"),
                ("member_active", "Adhérent actif"),
                ("member_donor", "Adhérent donateur"),
                ("member_honorary", "Membre d'honneur"),
            ],
        ),
        _free_form(DONATIONS, "numeric", "Montant total des dons (€)", "custom_fields", min=0),
        _free_form(MEMBER_SINCE, "date", "Date d'adhésion", "custom_fields"),
    ]


def _entry(
    forms: dict[int, JsonObject],
    form_id: int,
    answer: str | None = None,
    *,
    data: str | None = None,
    date: str | None = None,
    survey_id: int = SURVEY_ID,
) -> JsonObject:
    """An entry for a choice (`answer` is the value's slug) or a free input (`data`)."""
    refvalues = forms[form_id]["refvalues"]
    if answer is not None:
        refvalue = next(r for r in refvalues if r["value"] == answer)
        data = answer
    else:
        refvalue = refvalues[0]
    entry: JsonObject = {"form_id": form_id, "form_ref_id": refvalue["id"], "data": data}
    if date is not None:
        entry["date"] = date
    if forms[form_id]["section"] == "survey":
        entry["survey_id"] = survey_id
    return entry


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _timestamp(rng: random.Random, first_year: int, last_year: int) -> str:
    return (
        f"{rng.randint(first_year, last_year)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        f"T{rng.randint(8, 20):02d}:{rng.choice((0, 15, 30, 45)):02d}:00.000Z"
    )


def _server_times(rng: random.Random) -> JsonObject:
    """Past server timestamps in Qomon's precisions, so seeded history reads plausibly."""
    created = datetime(2021, 1, 4, 9, tzinfo=UTC) + timedelta(
        days=rng.randint(0, 900),
        seconds=rng.randint(0, 36_000),
        microseconds=rng.randint(0, 999_999),
    )
    changed = datetime(2024, 3, 1, 8, tzinfo=UTC) + timedelta(
        days=rng.randint(0, 200),
        seconds=rng.randint(0, 36_000),
        microseconds=rng.randint(0, 999_999),
    )
    return {
        "CreatedAt": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "UpdatedAt": changed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "lastchange": changed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }


def _contact(
    rng: random.Random,
    forms: dict[int, JsonObject],
    number: int,
    *,
    firstname: str,
    surname: str,
    mail: str | None,
) -> JsonObject:
    gender = rng.choice(("F", "M", "O", None, "F", "M"))
    birthdate = rng.choice(
        (
            f"{rng.randint(1945, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            "T00:00:00Z",
            f"{rng.randint(1945, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            "T00:00:00.000Z",
            None,
        )
    )
    postalcode, city, dept = rng.choice(PLACES)
    contact: JsonObject = {
        "id": 700_100 + number * 3,
        **_server_times(rng),
        "firstname": firstname,
        "surname": surname,
        "married_name": None,
        "gender": gender,
        "birthdate": birthdate,
        "age_category": None,
        "birth_city": rng.choice((city, None)),
        "birth_country": rng.choice(("France", None)),
        "birth_dept": rng.choice((dept, None)),
        "nationality": rng.choice(("française", None)),
        "mail": mail,
        "phone": rng.choice((f"+33 1 00 00 00 {number:02d}", None, None)),
        "phone_invalid": False,
        "mobile": rng.choice((f"+33 6 00 00 00 {number:02d}", f"+3360000{number:04d}", None)),
        "mobile_invalid": False,
        "black_list": False,
        "user_contact_id": None,
        "address": {
            "housenumber": rng.choice((str(rng.randint(1, 120)), f"{rng.randint(1, 40)} bis")),
            "street": rng.choice(STREETS),
            "postalcode": postalcode,
            "city": city,
            "country": "France",
            "building": rng.choice(("Bâtiment B", None)),
            "floor": rng.choice(("3", None)),
            "pollingstation": f"{dept}{rng.randint(1, 40):03d}",
        },
        "tags": [{"name": name} for name in rng.sample(TAGS, rng.randint(0, 3))],
        "action_ids": sorted(rng.sample((11, 12, 15, 21, 34), rng.randint(0, 2))),
        "formdatas": [],
        "custom_fields": [],
        "notes": [],
    }
    contact["address"] = {k: v for k, v in contact["address"].items() if v is not None}
    formdatas: list[JsonObject] = contact["formdatas"]
    consents = rng.sample(("consent_email", "consent_sms", "consent_phone", "consent_post"), 2)
    for consent in consents[: rng.randint(0, 2)]:
        formdatas.append(_entry(forms, CONSENT, consent, date=_timestamp(rng, 2023, 2024)))
    if rng.random() < 0.8:
        level = rng.choice(("very_favorable", "favorable", "undecided", "unfavorable"))
        formdatas.append(_entry(forms, LEVEL_OF_SUPPORT, level))
    if rng.random() < 0.5:
        formdatas.append(_entry(forms, PRESENCE_STATUS, rng.choice(("present", "absent"))))
    if rng.random() < 0.4:
        answered = _timestamp(rng, 2024, 2024)
        formdatas += [
            _entry(forms, SURVEY_CONCERN, data=rng.choice(CONCERNS), date=answered),
            _entry(forms, SURVEY_HOUSEHOLD, data=str(rng.randint(1, 6)), date=answered),
            _entry(forms, SURVEY_LAST_VOTE, data="2022-06-19T00:00:00.000Z", date=answered),
            _entry(forms, SURVEY_CALL_BACK, rng.choice(("yes", "no", "maybe")), date=answered),
            *(
                _entry(forms, SURVEY_TOPICS, topic, date=answered)
                for topic in rng.sample(("housing", "transport", "health"), rng.randint(1, 2))
            ),
            _entry(forms, SURVEY_RATING, data=str(rng.randint(3, 10)), date=answered),
        ]
    if rng.random() < 0.3:
        formdatas.append(_entry(forms, TASKS, rng.choice(("call_back", "send_leaflet"))))
    custom_fields: list[JsonObject] = contact["custom_fields"]
    if rng.random() < 0.5:
        custom_fields.append(_entry(forms, PROFESSION, data=rng.choice(PROFESSIONS)))
    if rng.random() < 0.4:
        tier = rng.choice(("member_basic", "member_active", "member_donor"))
        custom_fields += [
            _entry(forms, MEMBERSHIP_TIER, tier),
            _entry(forms, MEMBER_SINCE, data=f"{rng.randint(2015, 2024)}-09-01T00:00:00.000Z"),
        ]
        if tier == "member_donor":
            custom_fields.append(_entry(forms, DONATIONS, data=rng.choice(("50", "120", "42.5"))))
    if rng.random() < 0.3:
        contact["notes"].append({"data": rng.choice(NOTES), "pinned": rng.random() < 0.3})
    return contact


def build_contacts(forms: list[JsonObject]) -> list[JsonObject]:
    by_id = {form["id"]: form for form in forms}
    rng = random.Random(20_240_501)
    people: list[tuple[str, str, str | None]] = [
        ("Ana", "Martin", "ana.martin@example.org"),
        # Begins with Ana Martin's address: a loose `eql` search for hers finds this too.
        ("Ana", "Martin-Roche", "ana.martin@example.org.example.com"),
        ("Camille", "Roux", "camille.roux@example.com"),
        # The same e-mail in another case: several contacts may share one e-mail, and a
        # case-sensitive `eql:strictdata` search finds only one of them.
        ("Camille", "Roux", "Camille.Roux@example.com"),
    ]
    names = iter(zip(FIRST_NAMES, rng.sample(SURNAMES * 2, len(FIRST_NAMES)), strict=True))
    for firstname, surname in names:
        domain = rng.choice(("example.org", "example.com"))
        mail = f"{_ascii(firstname)}.{_ascii(surname)}@{domain}".replace(" ", "-")
        people.append((firstname, surname, mail if rng.random() < 0.9 else None))
    contacts = [
        _contact(rng, by_id, number, firstname=firstname, surname=surname, mail=mail)
        for number, (firstname, surname, mail) in enumerate(people, start=1)
    ]

    # Fields no schema lists, as integrators found in search results: kept, never dropped.
    contacts[0]["external_id"] = "nb-100231"
    contacts[5]["external_id"] = "nb-100587"
    contacts[5]["membership_number"] = "M-2021-0042"
    contacts[12]["membership_number"] = "M-2023-0318"

    # A contact who refused everything, and one blocked by hand.
    contacts[7]["black_list"] = True
    contacts[7]["formdatas"] = [_entry(by_id, CONSENT, "refuse_all")]
    contacts[20]["black_list"] = True

    # History: answers replaced by later writes, stored soft-deleted.
    for index, (form_id, old) in {
        0: (LEVEL_OF_SUPPORT, "undecided"),
        2: (PRESENCE_STATUS, "absent"),
        9: (LEVEL_OF_SUPPORT, "unfavorable"),
        15: (CONSENT, "consent_sms"),
        23: (SURVEY_CALL_BACK, "maybe"),
    }.items():
        deleted = _entry(by_id, form_id, old, date="2023-11-04T10:00:00.000Z")
        deleted["deleted_at"] = "2024-02-12T09:30:00.000Z"
        contacts[index]["deleted_formdatas"] = [deleted]

    # What the documented contact carries that the random draw does not (after the draw,
    # so that every contact drawn above stays as it was).
    _, team = build_users()
    for index, age_category in {13: 2, 16: 4, 22: 1, 33: 5, 36: 3}.items():
        contacts[index]["age_category"] = age_category
    # An integer, as documented; what it points at is not documented.
    contacts[17]["user_contact_id"] = 9002
    contacts[35]["formdatas"].append(
        _entry(
            by_id,
            SURVEY_CONCERN,
            data="Le prix des loyers dans le quartier",
            date="2024-10-02T18:20:00.000Z",
            survey_id=FOLLOW_UP_SURVEY_ID,
        )
    )
    _documented_showcase(contacts[29], by_id, team)
    contacts += _more_contacts(by_id, first_number=len(contacts) + 1)
    _document_notes(contacts, team)
    return contacts


def _more_contacts(forms: dict[int, JsonObject], *, first_number: int) -> list[JsonObject]:
    """Ordinary people after the hand-shaped ones, each with an e-mail of their own."""
    rng = random.Random(20_261_201)
    more = []
    for number in range(first_number, first_number + MORE_CONTACTS):
        firstname = FIRST_NAMES[number % len(FIRST_NAMES)]
        surname = SURNAMES[(number * 7) % len(SURNAMES)]
        domain = rng.choice(("example.org", "example.com"))
        mail = f"{_ascii(firstname)}.{_ascii(surname)}.{number}@{domain}".replace(" ", "-")
        more.append(
            _contact(
                rng,
                forms,
                number,
                firstname=firstname,
                surname=surname,
                mail=mail if rng.random() < 0.9 else None,
            )
        )
    return more


def _documented_showcase(
    contact: JsonObject, forms: dict[int, JsonObject], team: list[JsonObject]
) -> None:
    """One contact with every key of the documented contact holding a value."""
    contact.update(
        married_name="Lemaire-Brunet",
        birthdate="1986-04-23T00:00:00.000Z",
        age_category=3,
        birth_city="Lyon",
        birth_country="France",
        birth_dept="69",
        phone="+33 1 00 00 00 30",
        mobile="+33 6 00 00 00 30",
        user_contact_id=9003,
        action_ids=[12, 21],
    )
    contact["address"] = {
        "housenumber": "14",
        "street": "rue du Moulin",
        "postalcode": "69003",
        "city": "Lyon",
        "county": "Rhône",
        "state": "Auvergne-Rhône-Alpes",
        "country": "France",
        "addition": "Résidence Les Tilleuls",
        "infos": "Code 4512, interphone Lemaire",
        "building": "Bâtiment C",
        "floor": "2",
        "door": "24",
        "pollingstation": "69012",
    }
    contact["formdatas"] = [
        entry for entry in contact["formdatas"] if entry["form_id"] != SURVEY_CONCERN
    ]
    contact["formdatas"] += [
        _entry(
            forms,
            SURVEY_CONCERN,
            data="Les horaires du bus 12",
            date="2024-04-18T17:45:00.000Z",
        ),
        _entry(
            forms,
            SURVEY_CONCERN,
            data="L'accès aux soins",
            date="2024-10-05T10:15:00.000Z",
            survey_id=FOLLOW_UP_SURVEY_ID,
        ),
    ]
    contact["custom_fields"] = [
        _entry(forms, PROFESSION, data="Enseignant", date="2024-06-03T14:12:09.418Z"),
        _entry(forms, MEMBERSHIP_TIER, "member_active", date="2024-06-03T14:12:09.418Z"),
    ]
    contact["notes"] = [
        {
            "data": "Référent de son immeuble pour la distribution.",
            "pinned": True,
            "user": team[0],
        },
        {
            "data": "Signale des difficultés de santé : ne pas insister au téléphone.",
            "pinned": False,
            "only_super_admin": True,
            "user": team[2],
        },
        {
            "data": "Disponible le samedi matin pour le marché (confirmé en octobre).",
            "pinned": False,
            "created_at": "2024-09-21T09:12:44.000Z",
            "updated_at": "2024-10-06T16:40:02.731Z",
            "user": team[1],
        },
    ]


def _document_notes(contacts: list[JsonObject], team: list[JsonObject]) -> None:
    """Gives every note the documented shape, keeping what a note already says."""
    note_ids = iter(range(FIRST_NOTE_ID, FIRST_NOTE_ID + 10_000))
    for index, contact in enumerate(contacts):
        changed = datetime.fromisoformat(contact["UpdatedAt"])
        for position, note in enumerate(contact["notes"]):
            created = _millis(changed - timedelta(days=3 + position, hours=2 * index % 7))
            contact["notes"][position] = copy.deepcopy(
                {
                    "id": next(note_ids),
                    "contact_id": contact["id"],
                    "created_at": created,
                    "data": note["data"],
                    "group_id": GROUP_ID,
                    "only_super_admin": False,
                    "pinned": False,
                    "updated_at": note.get("created_at", created),
                    "user": team[(index + position) % len(team)],
                    **note,
                }
            )


def _millis(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def build_seed() -> JsonObject:
    forms = build_forms()
    api_user, _ = build_users()
    return {"forms": forms, "api_user": api_user, "contacts": build_contacts(forms)}


def main() -> int:
    text = json.dumps(build_seed(), ensure_ascii=False, indent=2) + "\n"
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
