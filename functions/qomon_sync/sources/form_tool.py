"""What the form tools' presets (`typeform`, `tally`) share: a delivery is one response to
a form, as JSON, signed with an HMAC of the body; it is read into answers and mapped by
the source's `FormSourceConfig` (sources/answers.py).

A form tool is a subclass of `FormTool`, registered in `registry.PRESETS` with
`FormSourceConfig`, which says only what is its own: its signature (`auth`), where its
id of the response is (`delivery_id_at`), and how a response is read (`flatten`, most
of it the tool's module-level `flatten_form_response`, which ends with `submission`).

Neither tool's signature carries a timestamp, so a captured delivery could be replayed
with a valid signature at any time. The defence is the response's id: it becomes the
change event's id (`<tool>-<id>`: `typeform-<token>`, `tally-<eventId>`), which the
tool's retries resend, and the sync applies an event id only once (the queue's
deduplication within 5 minutes, the idempotency table for 7 days). A replay changes
nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.sources.answers import FormSourceConfig, FormSubmission, map_submission
from qomon_sync.sources.base import BadPayload, WebhookRequest
from qomon_sync.sources.payload import as_text, parse_json
from qomon_sync.sources.signatures import HmacAuth
from qomon_sync.sources.values import AnswerValue


class FormTool:
    """A form tool's source: the shared steps, around what its subclass says."""

    auth: ClassVar[HmacAuth]
    delivery_id_at: ClassVar[tuple[str, ...]]
    """The keys, one inside the other, of the response's id in the body."""

    def __init__(self, name: str, config: FormSourceConfig) -> None:
        self.name = name
        self.config = config

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.auth.check(request, secret, lambda: None)

    def delivery_id(self, request: WebhookRequest) -> str | None:
        try:
            found: Any = parse_json(request.body)
        except BadPayload:
            return None
        for key in self.delivery_id_at:
            found = found.get(key) if isinstance(found, dict) else None
        return found if isinstance(found, str) and found else None

    def change_events(self, request: WebhookRequest) -> list[ChangeEvent]:
        submission = self.flatten(parse_json(request.body))
        return [] if submission is None else [map_submission(self.name, self.config, submission)]

    def flatten(self, body: Any) -> FormSubmission | None:
        """The response as answers, or None for a delivery that changes nothing; BadPayload
        names the field at fault."""
        raise NotImplementedError


def check_event_type(payload: dict[str, Any], key: str, expected: str) -> None:
    """BadPayload unless the body's `key` says it is a submitted response."""
    if as_text(payload.get(key), key) != expected:
        raise BadPayload(f"`{key}` must be `{expected}` (a submitted response)", field=key)


def submission(
    tool: str,
    response_id: str,
    occurred_at: datetime,
    answers: dict[str, AnswerValue],
    *,
    form_id: str | None,
    form_title: str | None,
) -> FormSubmission:
    """The response read: its answers with `form_id` and `form_title`, its change event's
    id `<tool>-<response id>`."""
    answers["form_id"] = form_id
    answers["form_title"] = form_title
    return FormSubmission(
        event_id=f"{tool}-{response_id}", occurred_at=occurred_at, answers=answers, form_id=form_id
    )
