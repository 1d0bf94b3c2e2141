"""The `typeform` preset: Typeform's `form_response` webhooks.

Authentication (https://www.typeform.com/developers/webhooks/secure-your-webhooks/): the
webhook's secret signs the raw body, and the request carries
`Typeform-Signature: sha256=<base64 HMAC-SHA256 of the body>`.

The payload (https://www.typeform.com/developers/webhooks/example-payload/) is flattened
into answers keyed by each question's `ref` (its `id` when it has no ref):

| answer `type`                              | value                                   |
|--------------------------------------------|-----------------------------------------|
| text, email, phone_number, url, file_url   | the text                                |
| date                                       | the ISO date text (`2005-10-15`)        |
| number (number, rating, opinion_scale)     | the number                              |
| boolean (yes_no, legal)                    | true / false                            |
| choice                                     | the choice's label (or the "other" text)|
| choices                                    | the labels (and the "other" text)       |
| anything else holding a plain value        | that value; richer ones are left out    |

plus `hidden.<name>` (hidden fields), `variables.<key>`, `calculated.score`, `form_id` and
`form_title` (the form's title). `submitted_at` dates the change event; the response's
`token` is the delivery id, and the change event's id is `typeform-<token>`: Typeform's
unique id of the response, which its retries resend. The signature has no timestamp: that
id is what makes a replay change nothing (sources/form_tool.py).

A `form_response_partial` delivery (a partial response, sent when the form enables them)
is acknowledged and changes nothing: it carries the token of the response it is part of,
and the submitted response, which holds every answer, is the change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qomon_sync.sources.answers import FormSubmission
from qomon_sync.sources.base import BadPayload
from qomon_sync.sources.form_tool import FormTool, check_event_type, submission
from qomon_sync.sources.payload import (
    ROOT,
    as_bool,
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

SIGNATURE_HEADER = "Typeform-Signature"
EVENT_TYPE = "form_response"
PARTIAL_EVENT_TYPE = "form_response_partial"
TEXT_ANSWERS = frozenset({"text", "email", "phone_number", "url", "file_url", "date"})


class TypeformSource(FormTool):
    auth = HmacAuth(
        scheme="hmac-sha256", header=SIGNATURE_HEADER, encoding="base64", prefix="sha256="
    )
    delivery_id_at = ("form_response", "token")

    def flatten(self, body: Any) -> FormSubmission | None:
        if isinstance(body, dict) and body.get("event_type") == PARTIAL_EVENT_TYPE:
            return None  # the submitted response, under the same token, is the change
        return flatten_form_response(body)


def flatten_form_response(body: Any) -> FormSubmission:
    """A `form_response` webhook as answers; BadPayload names the field at fault."""
    payload = as_object(body, ROOT)
    check_event_type(payload, "event_type", EVENT_TYPE)
    path = "form_response"
    response = as_object(payload.get(path), path)
    token = as_sender_id(response.get("token"), at(path, "token"))
    submitted_at = as_instant(response.get("submitted_at"), at(path, "submitted_at"))
    form_id = as_optional_text(response.get("form_id"), at(path, "form_id"))
    definition_path = at(path, "definition")
    definition = response.get("definition")
    title = (
        as_optional_text(
            as_object(definition, definition_path).get("title"), at(definition_path, "title")
        )
        if definition is not None
        else None
    )
    answers: dict[str, AnswerValue] = {}
    answers.update(_hidden(response.get("hidden"), at(path, "hidden")))
    answers.update(_variables(response.get("variables"), at(path, "variables")))
    calculated = response.get("calculated")
    if isinstance(calculated, dict) and isinstance(calculated.get("score"), int | float):
        answers["calculated.score"] = calculated["score"]
    answers_path = at(path, "answers")
    for index, item in enumerate(as_list(response.get("answers", []), answers_path)):
        key, value = _answer(item, at(answers_path, index))
        answers[key] = value
    return submission("typeform", token, submitted_at, answers, form_id=form_id, form_title=title)


def _answer(item: Any, path: str) -> tuple[str, AnswerValue]:
    answer = as_object(item, path)
    field = as_object(answer.get("field"), at(path, "field"))
    key = field.get("ref") or field.get("id")
    if not isinstance(key, str) or not key.strip():
        raise BadPayload(f"`{path}.field` needs a `ref` or an `id`", field=at(path, "field"))
    kind = as_text(answer.get("type"), at(path, "type"))
    value_path = at(path, kind)
    raw = answer.get(kind)
    if raw is None:
        return key, None
    read = _READERS.get("text" if kind in TEXT_ANSWERS else kind)
    if read is not None:
        return key, read(raw, value_path)
    if isinstance(raw, str | int | float | bool):
        return key, raw
    return key, None  # payment, multi_format...: nothing a Qomon field takes


def _choice(raw: Any, path: str) -> AnswerValue:
    choice = as_object(raw, path)
    label = choice.get("label")
    if label is None:
        label = choice.get("other")
    return as_optional_text(label, at(path, "label"))


def _choices(raw: Any, path: str) -> AnswerValue:
    choices = as_object(raw, path)
    labels_path = at(path, "labels")
    labels = [
        as_text(label, at(labels_path, i))
        for i, label in enumerate(as_list(choices.get("labels", []), labels_path))
    ]
    other = as_optional_text(choices.get("other"), at(path, "other"))
    return [*labels, *([other] if other else [])]


_READERS: dict[str, Callable[[Any, str], AnswerValue]] = {
    "text": as_text,
    "number": as_number,
    "boolean": as_bool,
    "choice": _choice,
    "choices": _choices,
}
"""How each Typeform answer type is read (text-like types share `text`)."""


def _hidden(value: Any, path: str) -> dict[str, AnswerValue]:
    if value is None:
        return {}
    hidden = as_object(value, path)
    return {
        f"hidden.{name}": as_optional_text(text, at(path, name)) for name, text in hidden.items()
    }


def _variables(value: Any, path: str) -> dict[str, AnswerValue]:
    if value is None:
        return {}
    found: dict[str, AnswerValue] = {}
    for index, item in enumerate(as_list(value, path)):
        variable = as_object(item, at(path, index))
        key = as_text(variable.get("key"), at(at(path, index), "key"))
        kind = as_text(variable.get("type"), at(at(path, index), "type"))
        raw = variable.get(kind)
        found[f"variables.{key}"] = raw if isinstance(raw, str | int | float) else None
    return found
