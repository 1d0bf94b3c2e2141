"""One way to say no: a Refusal (code, detail, fields), and the one list of its codes.

Every reason an event is not applied, from a malformed event to Qomon refusing the key,
is a Refusal with one of these codes; it is what a dead letter carries (`error_code`,
`error_detail`, `error_fields`), what metrics count (`EventsDeadLettered` by reason) and
what docs/runbook.md explains, code by code (a test keeps the two lists equal).
`detail` says why in words and never quotes a person's data; `fields` names the paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Code(StrEnum):
    # The event itself.
    INVALID_EVENT = "invalid_event"
    OUTSIDE_REPLAY_WINDOW = "outside_replay_window"
    # The event against the space's forms.
    UNKNOWN_FIELD = "unknown_field"
    AMBIGUOUS_FIELD = "ambiguous_field"
    UNKNOWN_VALUE = "unknown_value"
    AMBIGUOUS_VALUE = "ambiguous_value"
    INVALID_NUMBER = "invalid_number"
    INVALID_DATE = "invalid_date"
    OUT_OF_RANGE = "out_of_range"
    UNSUPPORTED_OPERATION = "unsupported_operation"
    UNSUPPORTED_FORM_TYPE = "unsupported_form_type"
    # The contact Qomon holds.
    CONTACT_NOT_FOUND = "contact_not_found"
    AMBIGUOUS_CONTACT = "ambiguous_contact"
    INVALID_CONTACT = "invalid_contact"
    CONFLICTING_NAMES = "conflicting_names"
    # Our own safety checks.
    DATA_LOSS_GUARD = "data_loss_guard"
    INVALID_REPLACEMENT = "invalid_replacement"
    ECHO_MISMATCH = "echo_mismatch"
    # Qomon's answers that a retry cannot change.
    QOMON_AUTH = "qomon_auth"
    MISSING_API_KEY = "missing_api_key"
    QOMON_VALIDATION = "qomon_validation"
    QOMON_NOT_FOUND = "qomon_not_found"
    QOMON_REQUEST = "qomon_request"
    QOMON_MALFORMED_RESPONSE = "qomon_malformed_response"
    QOMON_ERROR = "qomon_error"
    # A failure that might have passed, still there on the last delivery.
    RETRIES_EXHAUSTED = "retries_exhausted"
    # Transient: the event stays on the queue and SQS delivers it again; these codes are
    # logged as the reason, never carried by a letter (after maxReceiveCount the redrive
    # policy moves the message without a reason).
    QOMON_RATE_LIMITED = "qomon_rate_limited"
    QOMON_SERVER = "qomon_server"
    QOMON_TRANSPORT = "qomon_transport"
    QOMON_BUDGET_EXHAUSTED = "qomon_budget_exhausted"


@dataclass(frozen=True)
class Refusal:
    code: Code
    detail: str
    fields: tuple[str, ...] = ()


class Refused(ValueError):
    """An error that carries a Refusal: the domain raises its subclasses."""

    def __init__(self, code: Code, detail: str, fields: Iterable[str] = ()) -> None:
        self.refusal = Refusal(code, detail, tuple(fields))
        super().__init__(detail)

    @property
    def code(self) -> Code:
        return self.refusal.code

    @property
    def detail(self) -> str:
        return self.refusal.detail

    @property
    def fields(self) -> tuple[str, ...]:
        return self.refusal.fields


EXPLAINED: Mapping[Code, tuple[str, str]] = MappingProxyType(
    {
        Code.INVALID_EVENT: (
            "the message is not a change event v1",
            "fix the source's mapping (error_fields names the keys), then redrive",
        ),
        Code.OUTSIDE_REPLAY_WINDOW: (
            "the event occurred longer ago than the ledger remembers applied events, or too far "
            "in the future: it could be a replay, which could revert later changes",
            "if it is genuine and still wanted, send it again as a new event (new event_id and "
            "occurred_at); else drop the letter. LedgerRetentionDays sets the window",
        ),
        Code.UNKNOWN_FIELD: (
            "the event names a form no field of the space has, or the contact holds a field no "
            "schema lists (a contact path such as `external_id`)",
            "fix the label in the mapping; for a contact field, declare it in "
            "UnknownFieldsPassthrough (or Droppable); then redrive",
        ),
        Code.AMBIGUOUS_FIELD: (
            "several forms share the label the event names",
            "name the form by its id in the mapping, then redrive",
        ),
        Code.UNKNOWN_VALUE: (
            "the value is not one of the form's values",
            "map the source's value to the form's value or label, then redrive",
        ),
        Code.AMBIGUOUS_VALUE: (
            "several of the form's values match",
            "use the value's slug (`value`) rather than its label, then redrive",
        ),
        Code.INVALID_NUMBER: ("a number form got something that is not a number", "fix the source"),
        Code.INVALID_DATE: ("a date form got something that is not a date", "fix the source"),
        Code.OUT_OF_RANGE: ("a number is outside the form's min/max", "fix the source or the form"),
        Code.UNSUPPORTED_OPERATION: (
            "the operation does not fit the form (e.g. `add` on a radio, a survey on a custom "
            "field)",
            "fix the mapping's `op`, then redrive",
        ),
        Code.UNSUPPORTED_FORM_TYPE: (
            "qomon-sync cannot answer this form type yet",
            "leave the answer out of the mapping; drop the letter",
        ),
        Code.CONTACT_NOT_FOUND: (
            "no Qomon contact matches the event's id or e-mail",
            "create the person in Qomon (or let the source send if_missing: create), then "
            "redrive; or drop the letter",
        ),
        Code.AMBIGUOUS_CONTACT: (
            "several Qomon contacts share the e-mail",
            "merge them in Qomon, or have the source send the Qomon id; then redrive",
        ),
        Code.INVALID_CONTACT: (
            "the contact as Qomon returns it has a key of an unexpected type",
            "report it with error_fields: Qomon's answer differs from its documentation",
        ),
        Code.CONFLICTING_NAMES: (
            "the contact holds a field under both naming generations, with different values",
            "fix the contact in Qomon's UI, then redrive",
        ),
        Code.DATA_LOSS_GUARD: (
            "the write would have changed what no event asked for, so nothing was written",
            "report it (a qomon-sync bug) with error_fields; do not redrive until fixed",
        ),
        Code.INVALID_REPLACEMENT: (
            "the body did not match Qomon's documented PATCH body, so nothing was written",
            "report it (a qomon-sync bug) with error_fields; do not redrive until fixed",
        ),
        Code.ECHO_MISMATCH: (
            "Qomon accepted the write but stores something other than what was sent",
            "check the contact in Qomon (error_fields names the paths); redriving re-applies",
        ),
        Code.QOMON_AUTH: (
            "Qomon answered 403 for this contact on every delivery while answering others "
            "(the key may lack the rights on it), or refused the key in a version before the "
            "pause (a refused key now pauses the sync, and nothing is dead-lettered for it)",
            "check the key's rights on the contact in Qomon (or put a valid key in the "
            "QomonApiKey secret), then redrive",
        ),
        Code.MISSING_API_KEY: (
            "the QomonApiKey secret held no key, in a version before the pause (now that pauses "
            "the sync, as a refused key does)",
            "put the space's key in the secret, then redrive",
        ),
        Code.QOMON_VALIDATION: (
            "Qomon refused the body (400/422)",
            "see http_status and error_fields; fix the cause, then redrive",
        ),
        Code.QOMON_NOT_FOUND: (
            "Qomon answered 404 for the contact or form",
            "the contact was deleted in Qomon: drop the letter, or recreate it and redrive",
        ),
        Code.QOMON_REQUEST: ("Qomon refused the request itself", "see http_status; report it"),
        Code.QOMON_MALFORMED_RESPONSE: (
            "Qomon's answer could not be read",
            "report it; redrive once Qomon answers normally",
        ),
        Code.QOMON_ERROR: ("an unexpected error from Qomon", "see error_detail; redrive"),
        Code.RETRIES_EXHAUSTED: (
            "the contact's events were kept waiting (staged) and every delivery of their flush "
            "met a failure that may pass (429, 5xx, timeouts, another consumer holding an event); "
            "error_detail names the last",
            "check the dashboard for the cause (QomonRateLimited, errors); once it has passed, "
            "redrive: events already applied are not applied again",
        ),
        Code.QOMON_RATE_LIMITED: (
            "transient: Qomon answered 429 (never on a letter: the event was retried)",
            "nothing; a persistent qomon-rate-limited alarm means the space's quota is too small",
        ),
        Code.QOMON_SERVER: (
            "transient: Qomon answered 5xx (never on a letter: the event was retried)",
            "nothing unless it lasts",
        ),
        Code.QOMON_TRANSPORT: (
            "transient: Qomon could not be reached (never on a letter: the event was retried)",
            "nothing unless it lasts",
        ),
        Code.QOMON_BUDGET_EXHAUSTED: (
            "transient: too little time or tokens left in the invocation (never on a letter)",
            "nothing: SQS delivers it again",
        ),
    }
)
"""What each code means and what to do, in words: the runbook's table."""
