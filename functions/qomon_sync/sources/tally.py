"""The `tally` preset: Tally's `FORM_RESPONSE` webhooks.

Authentication (https://tally.so/help/webhooks, "Add a signing secret"): the webhook's
signing secret signs the raw body, and the request carries
`Tally-Signature: <base64 HMAC-SHA256 of the body>`. Like Typeform's, the scheme has no
timestamp: a replay is stopped by the delivery id (`eventId`), which becomes the change
event's id (`tally-<eventId>`) and is applied only once downstream (sources/form_tool.py).

Each of `data.fields[]` is an answer under its `key` (`question_3EKz4n`) and, when no other
field shares it, its `label` ("E-mail"); hidden fields also as `hidden.<label>`. Choices
(MULTIPLE_CHOICE, DROPDOWN, CHECKBOXES, MULTI_SELECT, RANKING) arrive as option ids and are
turned into the options' texts: one text for a single choice, a list otherwise. Tally also
sends one yes/no field per checkbox option (`question_wQ1K7w_<option id>`, label
"Checkboxes (Soccer)"). Numbers stay numbers, file uploads become their URLs, and richer
answers (MATRIX) are left out. `data.formName` is `form_title`, `data.formId` `form_id`,
and `createdAt` dates the change event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qomon_sync.sources.answers import FormSubmission
from qomon_sync.sources.form_tool import FormTool, check_event_type, submission
from qomon_sync.sources.payload import (
    ROOT,
    as_instant,
    as_list,
    as_number,
    as_object,
    as_optional_text,
    as_sender_id,
    as_text,
    at,
)
from qomon_sync.sources.signatures import HmacAuth
from qomon_sync.sources.values import AnswerValue

SIGNATURE_HEADER = "Tally-Signature"
EVENT_TYPE = "FORM_RESPONSE"
CHOICE_TYPES = frozenset({"MULTIPLE_CHOICE", "DROPDOWN", "CHECKBOXES", "MULTI_SELECT", "RANKING"})
SINGLE_CHOICE_TYPES = frozenset({"MULTIPLE_CHOICE", "DROPDOWN"})
NUMBER_TYPES = frozenset({"INPUT_NUMBER", "RATING", "LINEAR_SCALE"})
TEXT_TYPES = frozenset(
    {
        "INPUT_TEXT",
        "INPUT_EMAIL",
        "INPUT_PHONE_NUMBER",
        "INPUT_LINK",
        "INPUT_DATE",
        "INPUT_TIME",
        "TEXTAREA",
        "HIDDEN_FIELDS",
    }
)
FILE_TYPES = frozenset({"FILE_UPLOAD", "SIGNATURE"})


class TallySource(FormTool):
    auth = HmacAuth(scheme="hmac-sha256", header=SIGNATURE_HEADER, encoding="base64")
    delivery_id_at = ("eventId",)

    def flatten(self, body: Any) -> FormSubmission:
        return flatten_form_response(body)


def flatten_form_response(body: Any) -> FormSubmission:
    """A `FORM_RESPONSE` webhook as answers; BadPayload names the field at fault."""
    payload = as_object(body, ROOT)
    event_id = as_sender_id(payload.get("eventId"), "eventId")
    check_event_type(payload, "eventType", EVENT_TYPE)
    data = as_object(payload.get("data"), "data")
    created = payload.get("createdAt")
    occurred_at = (
        as_instant(created, "createdAt")
        if created is not None
        else as_instant(data.get("createdAt"), "data.createdAt")
    )
    form_id = as_optional_text(data.get("formId"), "data.formId")
    by_key: dict[str, AnswerValue] = {}
    by_label: dict[str, list[AnswerValue]] = {}
    hidden: dict[str, AnswerValue] = {}
    fields_path = "data.fields"
    for index, item in enumerate(as_list(data.get("fields"), fields_path)):
        path = at(fields_path, index)
        field = as_object(item, path)
        key = as_text(field.get("key"), at(path, "key"))
        label = (as_optional_text(field.get("label"), at(path, "label")) or "").strip()
        kind = as_text(field.get("type"), at(path, "type"))
        value = _value(field, kind, path)
        by_key[key] = value
        if label:
            by_label.setdefault(label, []).append(value)
            if kind == "HIDDEN_FIELDS":
                hidden[f"hidden.{label}"] = value
    answers: dict[str, AnswerValue] = {
        label: values[0]
        for label, values in by_label.items()
        if len(values) == 1  # a label two fields share names neither
    }
    answers.update(hidden)
    answers.update(by_key)
    title = as_optional_text(data.get("formName"), "data.formName")
    return submission("tally", event_id, occurred_at, answers, form_id=form_id, form_title=title)


def _value(field: dict[str, Any], kind: str, path: str) -> AnswerValue:
    raw = field.get("value")
    value_path = at(path, "value")
    if raw is None:
        return None
    if kind in CHOICE_TYPES and isinstance(raw, list):
        options = _options(field.get("options"), at(path, "options"))
        texts = [options.get(as_text(v, at(value_path, i)), v) for i, v in enumerate(raw)]
        return texts[0] if kind in SINGLE_CHOICE_TYPES and len(texts) == 1 else texts
    if kind == "CHECKBOXES" and isinstance(raw, bool):
        return raw  # the per-option field: is this option ticked?
    read = _reader(kind)
    return read(raw, value_path) if read is not None else _plain(raw)


def _plain(raw: Any) -> AnswerValue:
    if isinstance(raw, str | int | float | bool):
        return raw
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    return None  # MATRIX and other structured answers: nothing a Qomon field takes


def _reader(kind: str) -> Callable[[Any, str], AnswerValue] | None:
    if kind in NUMBER_TYPES:
        return as_number
    if kind in TEXT_TYPES:
        return as_text
    return _file_urls if kind in FILE_TYPES else None


def _file_urls(raw: Any, path: str) -> AnswerValue:
    files = as_list(raw, path)
    return [
        as_text(as_object(f, at(path, i)).get("url"), at(at(path, i), "url"))
        for i, f in enumerate(files)
    ]


def _options(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    options: dict[str, str] = {}
    for index, item in enumerate(as_list(value, path)):
        option = as_object(item, at(path, index))
        option_id = as_text(option.get("id"), at(at(path, index), "id"))
        options[option_id] = as_text(option.get("text"), at(at(path, index), "text"))
    return options
