"""Contact assembly: from change events to one complete, loss-free replacement body.

Qomon's `PATCH /contacts/{id}` deletes whatever its body leaves out, so every change is
turned into a whole contact built from the current one:

1. translate the contact as read into the write shape (contact_shape.to_write_shape);
2. apply each change event in order, with type-aware rules from the space's forms;
3. guard: anything that differs from what Qomon has must be something an event asked for;
4. compare by meaning: nothing differs -> Unchanged (no PATCH, no tokens spent);
5. otherwise Replace, with the body and the paths that change.

Several events for one contact fold into one body; because they are applied one after
another to the same draft, the result equals applying them one by one.
Qomon quirks handled here: see docs/qomon-api.md#answers-formdatas-and-custom-fields.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qomon_sync.domain.change_event import ChangeEvent, FieldChange
from qomon_sync.domain.contact_fields import ADDRESS, CONTACT, Node
from qomon_sync.domain.contact_meaning import (
    answer_meaning,
    as_number,
    changed_paths,
    means_the_same,
    note_key,
    note_path,
    tag_key,
)
from qomon_sync.domain.contact_shape import ANSWER_LISTS, ShapeError, WriteContact, to_write_shape
from qomon_sync.domain.dates import NotADate, to_qomon_date
from qomon_sync.domain.forms import Form, FormCatalog, FormLookupError, RefValue
from qomon_sync.domain.policy import AssemblyPolicy, ShapePolicy
from qomon_sync.domain.refusal import Code, Refusal, Refused
from qomon_sync.domain.replacement_body import body_problems

__all__ = [
    "AssemblyPolicy",
    "ChangeRejected",
    "Outcome",
    "Rejected",
    "Replace",
    "Unchanged",
    "assemble_contact",
    "outcome_as_json",
    "same_meaning",
]

SINGLE_CHOICE = frozenset({"radio", "select"})
MULTI_CHOICE = frozenset({"checkbox"})
NUMBER_TYPES = frozenset({"numeric", "integer", "range"})
TEXT_TYPES = frozenset({"text"})
DATE_TYPES = frozenset({"date"})


@dataclass(frozen=True)
class Replace:
    body: dict[str, Any]
    """`{"data": {"contact": {...}}}`, ready for PATCH /contacts/{id} or POST /contacts."""
    changed: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def contact(self) -> WriteContact:
        contact: WriteContact = self.body["data"]["contact"]
        return contact


@dataclass(frozen=True)
class Unchanged:
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejected(Refusal):
    """A refusal; `event_id` names the event at fault, None when the contact is."""

    event_id: str | None = None


Outcome = Replace | Unchanged | Rejected


class ChangeRejected(Refused):
    """One event cannot be applied: the others still are."""


def assemble_contact(
    current: Mapping[str, Any],
    forms: FormCatalog,
    events: Sequence[ChangeEvent],
    policy: AssemblyPolicy | None = None,
) -> Outcome:
    """The replacement body for `current` (as GET returned it; `{}` for a new contact)."""
    policy = policy or AssemblyPolicy()
    try:
        baseline = to_write_shape(current, forms, policy.shape)
    except ShapeError as exc:
        return Rejected(exc.code, exc.detail, exc.fields)

    draft = _Draft(copy.deepcopy(baseline), forms, policy)
    for event in events:
        try:
            draft.apply(event)
        except ChangeRejected as exc:
            return Rejected(exc.code, exc.detail, exc.fields, event_id=event.event_id)

    # The guard compares what Qomon holds, as read, with what would be sent: a key the
    # translation dropped shows here as much as one an event changed without asking.
    changed = changed_paths(current, draft.contact, forms, policy.shape)
    unasked = [path for path in changed if path not in draft.intended]
    if unasked:
        return Rejected(
            Code.DATA_LOSS_GUARD,
            "the replacement would change fields no event asked to change; nothing is written",
            tuple(unasked),
        )
    if not changed:
        return Unchanged(tuple(draft.warnings))
    problems = body_problems(draft.contact, policy.shape.passthrough)
    if problems:
        return Rejected(
            Code.INVALID_REPLACEMENT,
            "the replacement does not match Qomon's documented PATCH body, which is a "
            "qomon-sync bug; nothing is written: " + "; ".join(problems),
            tuple(problem.split(":", 1)[0] for problem in problems),
        )
    return Replace({"data": {"contact": draft.contact}}, tuple(changed), tuple(draft.warnings))


# Keys Qomon fills in on a note it saves, and may restamp: not a loss when they differ.
NOTE_STAMPS = ("id", "contact_id", "group_id", "created_at", "updated_at")


def _undate_what_qomon_dated(
    sent: list[dict[str, Any]], echoed: list[dict[str, Any]], forms: FormCatalog
) -> None:
    """Drop the date Qomon gave an answer that was sent undated, one answer for one; an
    answer is matched by what it means (Qomon may store `4.0` as `4`, or text in NFC)."""

    def key(answer: Mapping[str, Any]) -> tuple[Any, ...]:
        form = forms.get(answer["form_id"])
        return (
            answer["form_id"],
            answer["form_ref_id"],
            answer_meaning(form.type if form is not None else "", answer.get("data")),
            answer.get("survey_id"),
        )

    dated = Counter((key(a), a["date"]) for a in sent if a.get("date") is not None)
    undated = Counter(key(a) for a in sent if a.get("date") is None)
    for answer in echoed:
        if answer.get("date") is None:
            continue
        if dated[(key(answer), answer["date"])] > 0:
            dated[(key(answer), answer["date"])] -= 1
        elif undated[key(answer)] > 0:
            undated[key(answer)] -= 1
            answer.pop("date")


def same_meaning(
    sent: Mapping[str, Any],
    echoed: Mapping[str, Any],
    forms: FormCatalog,
    policy: ShapePolicy | None = None,
) -> list[str]:
    """Paths where Qomon's answer to a PATCH differs from what was sent.

    It reads the answer with the very policy the write used (nested passthroughs and
    droppables included). What Qomon adds itself is not a loss: an answer sent without a
    `date` may come back dated; a note comes back with its id, stamps and, when it was
    new, its author.
    """
    policy = policy or ShapePolicy()
    try:
        echoed_shape = to_write_shape(echoed, forms, policy)
    except ShapeError as exc:
        return list(exc.fields)
    sent_shape = copy.deepcopy(dict(sent))
    for list_name in ANSWER_LISTS:
        _undate_what_qomon_dated(
            sent_shape.get(list_name) or [], echoed_shape.get(list_name) or [], forms
        )
    authored = {note_path(n["data"]) for n in sent_shape.get("notes") or [] if n.get("user")}
    for notes, is_echo in ((sent_shape.get("notes"), False), (echoed_shape.get("notes"), True)):
        for note in notes or []:
            for key in NOTE_STAMPS:
                note.pop(key, None)
            if is_echo and note_path(note["data"]) not in authored:
                note.pop("user", None)
    return changed_paths(sent_shape, echoed_shape, forms, policy)


class _Draft:
    """The contact being assembled, and the paths the events asked to change."""

    def __init__(self, contact: WriteContact, forms: FormCatalog, policy: AssemblyPolicy) -> None:
        self.contact = contact
        self.forms = forms
        self.policy = policy
        self.intended: set[str] = set()
        self.warnings: list[str] = []
        self._refusal = re.compile(policy.refusal_pattern, re.IGNORECASE)
        self._answered_at: datetime | None = None

    def apply(self, event: ChangeEvent) -> None:
        # A new answer is dated when the person gave it (the event's time, unless the
        # change says otherwise), not when a queue happened to deliver it.
        self._answered_at = event.occurred_at
        self._set_basic_fields(event.set_fields())
        if event.tags is not None:
            self._change_tags(event.tags.add, event.tags.remove)
        for index, change in enumerate(event.fields):
            self._change_answers(change, f"fields[{index}]")
        for note in event.notes:
            self._add_note(note.data, pinned=note.pinned, only_super_admin=note.only_super_admin)

    # -- basic fields: JSON Merge Patch ------------------------------------------------

    def _set_basic_fields(self, patch: Mapping[str, Any]) -> None:
        for name, value in patch.items():
            if name == "address":
                address = self.contact.get("address") or {}
                # `"address": null` clears every part, as a merge patch's null does.
                parts = value if value is not None else dict.fromkeys(address)
                for part, text in parts.items():
                    _set_unless_held(
                        address, part, text, ADDRESS.written.get(part), f"address.{part}"
                    )
                    self.intended.add(f"address.{part}")
                self.contact["address"] = address
            elif name == "black_list" and not value and self.contact.get("black_list") is True:
                if not self.policy.allow_unblacklist:
                    self.warnings.append("black_list kept true: opt-outs are sticky")
                    continue
                self.contact[name] = value
                self.intended.add(name)
            else:
                new = to_qomon_date(value) if name == "birthdate" and value else value
                _set_unless_held(self.contact, name, new, CONTACT.written.get(name), name)
                self.intended.add(name)

    # -- tags ----------------------------------------------------------------------------

    def _change_tags(self, add: Sequence[str], remove: Sequence[str]) -> None:
        tags: list[dict[str, Any]] = self.contact.setdefault("tags", [])
        present = {tag_key(t["name"]) for t in tags}
        for name in add:
            if tag_key(name) not in present:
                tags.append({"name": name})
                present.add(tag_key(name))
            self.intended.add(f"tags[{tag_key(name)}]")
        dropped = {tag_key(name) for name in remove}
        tags[:] = [t for t in tags if tag_key(t["name"]) not in dropped]
        self.intended.update(f"tags[{key}]" for key in dropped)

    # -- advanced fields and custom fields ----------------------------------------------

    def _change_answers(self, change: FieldChange, where: str) -> None:
        try:
            form = self.forms.find(change.field)
        except FormLookupError as exc:
            raise ChangeRejected(
                exc.code, f"{where}.field: {exc.detail}", [_field_name(change)]
            ) from None
        list_name = "custom_fields" if form.section == "custom_fields" else "formdatas"
        if list_name == "custom_fields" and change.survey_id is not None:
            raise ChangeRejected(
                Code.UNSUPPORTED_OPERATION,
                f"{where}.survey_id: `{form.label}` is a custom field, which belongs to no survey",
                [form.label],
            )
        answers: list[dict[str, Any]] = self.contact.setdefault(list_name, [])
        current = [a for a in answers if a.get("form_id") == form.id]
        wanted = self._answers_after(form, change, current, where)
        wanted = self._keep_refusals(form, current, wanted)
        kept_ids = {id(a) for a in wanted}
        answers[:] = [a for a in answers if a.get("form_id") != form.id or id(a) in kept_ids]
        answers.extend(a for a in wanted if not any(a is b for b in answers))
        self.intended.add(f"{list_name}[form_id={form.id}]")

    def _answers_after(
        self, form: Form, change: FieldChange, current: list[dict[str, Any]], where: str
    ) -> list[dict[str, Any]]:
        """The form's answers once `change` is applied; unchanged answers keep their object
        (and so their `date`), which is what makes a repeated answer a no-op."""
        kind = form.type.lower()
        if change.op == "clear":
            # With a survey, only that survey's answers; without, every answer of the form.
            if change.survey_id is None:
                return []
            return [a for a in current if a.get("survey_id") != change.survey_id]
        if kind in MULTI_CHOICE:
            return self._checkbox(form, change, current, where)
        if kind in SINGLE_CHOICE:
            return self._single_choice(form, kind, change, current, where)
        if kind in NUMBER_TYPES | TEXT_TYPES | DATE_TYPES:
            return self._free_input_answers(form, kind, change, current, where)
        raise ChangeRejected(
            Code.UNSUPPORTED_FORM_TYPE,
            f"{where}: `{form.label}` is a `{form.type}` form, which qomon-sync cannot answer yet",
            [form.label],
        )

    def _checkbox(
        self, form: Form, change: FieldChange, current: list[dict[str, Any]], where: str
    ) -> list[dict[str, Any]]:
        chosen = [self._choice(form, value, where) for value in change.values]
        chosen_ids = {ref.id for ref in chosen}
        if change.op == "remove":
            return [a for a in current if a.get("form_ref_id") not in chosen_ids]
        kept = (
            current
            if change.op == "add"
            else [a for a in current if a.get("form_ref_id") in chosen_ids]
        )
        have = {a.get("form_ref_id") for a in kept}
        return kept + [
            self._answer(form, ref, ref.value, change) for ref in chosen if ref.id not in have
        ]

    def _single_choice(
        self, form: Form, kind: str, change: FieldChange, current: list[dict[str, Any]], where: str
    ) -> list[dict[str, Any]]:
        # Qomon documents that a new radio entry replaces the existing ones; we read that
        # as one entry per radio form, whatever the survey.
        self._one_value(form, kind, change, where, "holds one value")
        ref = self._choice(form, change.values[0], where)
        if change.op == "remove":
            return [a for a in current if a.get("form_ref_id") != ref.id]
        same = [a for a in current if a.get("form_ref_id") == ref.id]
        if len(current) == 1 and same:
            return same
        return [self._answer(form, ref, ref.value, change)]

    def _free_input_answers(
        self, form: Form, kind: str, change: FieldChange, current: list[dict[str, Any]], where: str
    ) -> list[dict[str, Any]]:
        """Qomon documents that a new text, number or date answer is added beside the
        existing ones; our convention is one answer per survey, so an answer is known by
        its form and its `survey_id`.

        An answer that names no survey speaks of the field as a whole, as `clear` without
        a survey does: a value the field holds in any survey, or in none, is no change
        (nothing rewritten, re-dated or deleted), and `remove` removes it wherever it is.
        """
        self._one_value(form, kind, change, where, "is a free-input form")
        data = self._free_input(form, kind, change.values[0], where)
        mine = [a for a in current if a.get("survey_id") == change.survey_id]
        others = [a for a in current if not any(a is m for m in mine)]
        held = current if change.survey_id is None else mine
        saying = [a for a in held if _same_data(kind, a.get("data"), data)]
        if change.op == "remove":
            return [a for a in current if not any(a is s for s in saying)]
        if saying and (change.survey_id is None or len(mine) == 1):
            return current
        if not form.refvalues:
            raise ChangeRejected(
                Code.UNKNOWN_VALUE,
                f"{where}: `{form.label}` has no value to answer with",
                [form.label],
            )
        return [*others, self._answer(form, form.refvalues[0], data, change)]

    @staticmethod
    def _one_value(form: Form, kind: str, change: FieldChange, where: str, what: str) -> None:
        if change.op == "add" or len(change.values) > 1:
            raise ChangeRejected(
                Code.UNSUPPORTED_OPERATION,
                f"{where}: `{form.label}` {what} ({kind}); use `set` with one value",
                [form.label],
            )

    def _choice(self, form: Form, value: str | int | float, where: str) -> RefValue:
        try:
            return self.forms.choice(form, value)
        except FormLookupError as exc:
            raise ChangeRejected(
                exc.code, f"{where}.value for `{form.label}` {exc.detail}", [form.label]
            ) from None

    def _free_input(self, form: Form, kind: str, value: str | int | float, where: str) -> str:
        if kind in DATE_TYPES:
            if not isinstance(value, str):
                raise ChangeRejected(
                    Code.INVALID_DATE,
                    f"{where}.value for `{form.label}` is not a date",
                    [form.label],
                )
            try:
                return to_qomon_date(value)
            except NotADate:
                raise ChangeRejected(
                    Code.INVALID_DATE,
                    f"{where}.value for `{form.label}` is not an ISO 8601 date",
                    [form.label],
                ) from None
        if kind in NUMBER_TYPES:
            number = as_number(value)
            if number is None:
                raise ChangeRejected(
                    Code.INVALID_NUMBER,
                    f"{where}.value for `{form.label}` is not a number",
                    [form.label],
                )
            if kind == "integer" and not number.is_integer():
                raise ChangeRejected(
                    Code.INVALID_NUMBER,
                    f"{where}.value for `{form.label}` is not a whole number",
                    [form.label],
                )
            bounds = form.refvalues[0] if form.refvalues else None
            if bounds is not None and (
                (bounds.min is not None and number < bounds.min)
                or (bounds.max is not None and number > bounds.max)
            ):
                raise ChangeRejected(
                    Code.OUT_OF_RANGE,
                    f"{where}.value for `{form.label}` is outside {bounds.min}..{bounds.max}",
                    [form.label],
                )
            return str(int(number)) if number.is_integer() else repr(number)
        return str(value).strip()  # booleans never get here: FieldChange refuses them

    def _answer(
        self, form: Form, ref: RefValue, data: str | None, change: FieldChange
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"form_id": form.id, "form_ref_id": ref.id, "data": data}
        answered_at = change.date or self._answered_at
        if answered_at is not None:
            answer["date"] = to_qomon_date(answered_at)
        if change.survey_id is not None:
            answer["survey_id"] = change.survey_id
        return answer

    def _keep_refusals(
        self, form: Form, current: list[dict[str, Any]], wanted: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """A recorded consent refusal survives any automated change, unless allowed."""
        if self.policy.allow_refusal_withdrawal or form.section != "consent":
            return wanted
        refusal_ids = {r.id for r in form.refvalues if r.value and self._refusal.search(r.value)}
        lost = [
            a
            for a in current
            if a.get("form_ref_id") in refusal_ids and not any(a is w for w in wanted)
        ]
        if not lost:
            return wanted
        self.warnings.append(f"consent refusal kept on form {form.id}: opt-outs are sticky")
        if form.type.lower() in SINGLE_CHOICE:
            return lost[:1]
        return lost + wanted

    # -- notes ---------------------------------------------------------------------------

    def _add_note(self, text: str, *, pinned: bool, only_super_admin: bool) -> None:
        notes: list[dict[str, Any]] = self.contact.setdefault("notes", [])
        same_text = note_key(text)
        if any(note_key(str(n.get("data", ""))) == same_text for n in notes):
            # Notes have no key Qomon would dedupe on; a redelivered event must not add its
            # note twice, so a note whose text the contact already has is not added again.
            self.warnings.append("note not added: the contact already has a note with this text")
            return
        note: dict[str, Any] = {"data": text, "pinned": pinned}
        if only_super_admin:
            note["only_super_admin"] = True
        notes.append(note)
        self.intended.add(note_path(text))


def _same_data(kind: str, held: Any, data: str) -> bool:
    """Whether a held answer already says `data`, as the meaning compares answers: numbers
    as numbers ("4.0" is 4), dates as instants, text in one Unicode form."""
    return bool(answer_meaning(kind, held) == answer_meaning(kind, data))


def _set_unless_held(
    where: dict[str, Any], key: str, value: Any, node: Node | None, path: str
) -> None:
    """Sets `where[key]`, unless what it holds already means `value`: the held spelling
    stays (no rewrite, and no PATCH for a value Qomon already has)."""
    if node is not None and key in where and means_the_same(node, where[key], value, path):
        return
    where[key] = value


def _field_name(change: FieldChange) -> str:
    return str(change.field)


def outcome_as_json(outcome: Outcome) -> dict[str, Any]:
    """The preview's JSON: `replace` with the body, `unchanged`, or `reject` with a reason."""
    if isinstance(outcome, Replace):
        result: dict[str, Any] = {
            "action": "replace",
            "body": outcome.body,
            "changed": list(outcome.changed),
        }
    elif isinstance(outcome, Unchanged):
        result = {"action": "unchanged"}
    else:
        error: dict[str, Any] = {
            "code": outcome.code,
            "detail": outcome.detail,
            "fields": list(outcome.fields),
        }
        if outcome.event_id is not None:
            error["event_id"] = outcome.event_id
        return {"action": "reject", "error": error}
    if outcome.warnings:
        result["warnings"] = list(outcome.warnings)
    return result
