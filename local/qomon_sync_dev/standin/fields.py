"""The stand-in's own lists of Qomon's contact fields and their documented types.

The documented types of a write body, from Qomon's PATCH reference (request body, and
the response body GET also answers), which `WriteRules.documented_types` enforces
(`standin.writes`):

- integers: `age_category`, `user_contact_id`; an answer's `form_id`, `form_ref_id`,
  `survey_id`; a note's `id`, `contact_id`, `group_id`; its author's `id` and
  `role_data.id` / `role_data.order`. Lists of integers: `action_ids`, the author's
  `group_id`. A JSON number with a fraction, a numeric string or a boolean is refused.
- booleans: `black_list`, `phone_invalid`, `mobile_invalid`; a note's `pinned`,
  `only_super_admin`; the author's `two_factor_enable`, `role_data.web` / `.mobile`.
- strings: the names, `mail`, `phone`, `mobile`, nationality and birth place, every
  address key, tag names, an answer's `data` (also for numeric forms: `"4"`, not `4`),
  a note's `data`, the author's names, `mail`, `phone`, address and the like.
- dates: `birthdate`, an answer's `date`, a note's `created_at` / `updated_at`, the
  author's `birthdate`. On write the reference gives one input form, milliseconds in UTC:
  `YYYY-MM-DDTHH:mm:ss.SSSZ` with a 4-digit year; only that form is taken (no seconds-only,
  no microseconds, no offset), although reads may carry other precisions. The seed, which
  holds stored values rather than writes, may give any ISO 8601 instant.

null: every optional value may be null, which means the same as leaving it out (a basic
field or the address is cleared, a list is empty, a note flag is false, a note without
an id is new). null is refused where a value is what the item is: a list item, a tag's
`name`, an answer's `form_id` / `form_ref_id` / `data`, a note's `data`.

Keys outside the write schema: at the top level they are kept as sent (integrators find
such fields in search results); inside an address, answer, tag, note or author they are
ignored, as are the server-owned keys the response adds (`id`, `CreatedAt`, ...).

These lists deliberately repeat Qomon's documented names instead of importing the
client's whitelist from `qomon_sync.domain`: a stand-in that shared the client's lists
would share its mistakes, and the contract tests could no longer catch them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

EntryKind = Literal["formdatas", "custom_fields"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("formdatas", "custom_fields")

ValueKind = Literal["string", "integer", "integers", "boolean", "date", "gender", "scalar"]
Schema = Mapping[str, "ValueKind | Schema"]
"""The documented type of each key of an object; a nested schema is an object."""

BASIC_FIELD_KINDS: Mapping[str, ValueKind] = {
    "firstname": "string",
    "surname": "string",
    "married_name": "string",
    # Not in the current reference, only in the older schema: M, F or O.
    "gender": "gender",
    "birthdate": "date",
    "age_category": "integer",
    "birth_city": "string",
    "birth_country": "string",
    "birth_dept": "string",
    "nationality": "string",
    "mail": "string",
    "phone": "string",
    "phone_invalid": "boolean",
    "mobile": "string",
    "mobile_invalid": "boolean",
    "black_list": "boolean",
    "user_contact_id": "integer",
}
BASIC_FIELDS = tuple(BASIC_FIELD_KINDS)
LENIENT_FIELD_KINDS: Mapping[str, ValueKind] = {
    "birthdate": "string",
    "age_category": "scalar",
    "user_contact_id": "scalar",
}
"""What lenient rules check these fields against instead: the stand-in's checks from
before it played the documented types."""

LIST_FIELDS = ("tags", "action_ids", "formdatas", "custom_fields", "notes")
WRITABLE_FIELDS = frozenset({*BASIC_FIELDS, "address", *LIST_FIELDS})
GENDERS = ("M", "F", "O")

LEGACY_NAMES = {
    "birth_city": "birthcity",
    "birth_country": "birthcountry",
    "birth_dept": "birthdept",
    "action_ids": "actions_ids",
    "custom_fields": "customfields",
}
"""Current write name -> the older generation's name, used by GET when naming=legacy."""
CURRENT_NAMES = {legacy: current for current, legacy in LEGACY_NAMES.items()}

ADDRESS_KEYS = (
    "housenumber",
    "street",
    "postalcode",
    "city",
    "county",
    "state",
    "country",
    "addition",
    "infos",
    "building",
    "floor",
    "door",
    "pollingstation",
)

# The older generation renders these as JSON numbers when they are all digits.
LEGACY_NUMERIC_ADDRESS_KEYS = ("housenumber", "postalcode")

SERVER_OWNED_FIELDS = frozenset(
    {"id", "group_id", "CreatedAt", "UpdatedAt", "lastchange", "lastchangeuserid", "user_id"}
)


# -- notes and their authors ------------------------------------------------------------

ROLE_SCHEMA: Schema = {
    "color": "string",
    "id": "integer",
    "mobile": "boolean",
    "name": "string",
    "order": "integer",
    "web": "boolean",
}

USER_SCHEMA: Schema = {
    # `id` is in the response only, but a note's author is nobody without it.
    "id": "integer",
    "address": "string",
    "avatar": "string",
    "birthdate": "date",
    "city": "string",
    "firstname": "string",
    "group_id": "integers",
    "locale": "string",
    "location": "string",
    "mail": "string",
    "phone": "string",
    "postal": "string",
    "role_data": ROLE_SCHEMA,
    "status": "string",
    "surname": "string",
    "two_factor_enable": "boolean",
}
"""A note's author (`notes[].user`) as the request body documents it. The response adds
`CreatedAt`, `UpdatedAt` and `created`, server-owned: a write's are ignored, unchecked."""

USER_KEYS = (
    "id",
    "CreatedAt",
    "UpdatedAt",
    "created",
    "firstname",
    "surname",
    "mail",
    "phone",
    "address",
    "postal",
    "city",
    "location",
    "locale",
    "avatar",
    "birthdate",
    "status",
    "group_id",
    "role_data",
    "two_factor_enable",
)
"""What an author renders: every key of the documented response, null when unknown."""

NOTE_FLAGS_SCHEMA: Schema = {"id": "integer", "pinned": "boolean", "only_super_admin": "boolean"}
"""What a note's keys are checked against whatever the rules (the stand-in always did)."""
NOTE_SCHEMA: Schema = {
    "id": "integer",
    "contact_id": "integer",
    "created_at": "date",
    "group_id": "integer",
    "only_super_admin": "boolean",
    "pinned": "boolean",
    "updated_at": "date",
    "user": USER_SCHEMA,
}
"""A note's keys besides its text, as the request body documents them. `contact_id`,
`group_id`, the times and the author are the server's: checked, then taken from the
stored note (or, for a new note, from the write's instant and the API key's user)."""
