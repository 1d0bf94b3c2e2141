"""Typed Qomon errors. Each says whether trying again can help (`retryable`).

Messages never carry the values Qomon quotes back (they may be e-mails or phones): only
the location at fault, Qomon's message with contact data masked, and the HTTP status.
Qomon quirks handled here: see docs/qomon-api.md#errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from qomon_sync.domain.privacy import redact_text
from qomon_sync.domain.refusal import Code


@dataclass(frozen=True)
class ProblemItem:
    """One entry of a problem body's `errors[]`, without its `value`."""

    location: str
    message: str


class QomonError(Exception):
    """Base of every error the client raises."""

    retryable: ClassVar[bool] = False
    code: ClassVar[Code] = Code.QOMON_ERROR

    def __init__(self, detail: str, *, status: int | None = None, endpoint: str = "") -> None:
        self.detail = redact_text(detail)
        self.status = status
        self.endpoint = endpoint
        where = f" ({endpoint})" if endpoint else ""
        http = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{http}{self.detail}{where}")


class QomonAuthError(QomonError):
    """401/403: the API key is wrong, revoked or lacks rights. Fix the secret."""

    code = Code.QOMON_AUTH


class QomonNotFound(QomonError):
    """404: the contact (or form) does not exist."""

    code = Code.QOMON_NOT_FOUND


class QomonValidationError(QomonError):
    """400/422: Qomon refused the body. Sending it again cannot help."""

    code = Code.QOMON_VALIDATION

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        endpoint: str = "",
        errors: tuple[ProblemItem, ...] = (),
    ) -> None:
        self.errors = errors
        if errors:
            detail = f"{detail}; " + "; ".join(f"{e.location}: {e.message}" for e in errors)
        super().__init__(detail, status=status, endpoint=endpoint)


class QomonRequestError(QomonError):
    """Another 4xx (405, 409, 413, ...): our request is wrong in a way retries cannot fix."""

    code = Code.QOMON_REQUEST


class QomonMalformedResponse(QomonError):
    """A 2xx whose body is not `{"status": "success", "data": {...}}` with what we asked for.

    Not retried: for a PATCH we cannot tell whether it was applied, and a proxy page
    answering 200 will not turn into Qomon by itself.
    """

    code = Code.QOMON_MALFORMED_RESPONSE


class QomonRateLimited(QomonError):
    """429: the space's token bucket is empty. `retry_after` is Qomon's wait, when given."""

    retryable = True
    code = Code.QOMON_RATE_LIMITED

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = 429,
        endpoint: str = "",
        retry_after: float | None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(detail, status=status, endpoint=endpoint)


class QomonServerError(QomonError):
    """5xx (and 408): Qomon failed; the same call may well succeed later."""

    retryable = True
    code = Code.QOMON_SERVER


class QomonTransportError(QomonError):
    """No usable answer: connection refused or reset, timeout, protocol error."""

    retryable = True
    code = Code.QOMON_TRANSPORT

    def __init__(self, detail: str, *, endpoint: str = "", request_sent: bool) -> None:
        # A request that may have reached Qomon is ambiguous for a create: it may exist now.
        self.request_sent = request_sent
        super().__init__(detail, endpoint=endpoint)


class QomonBudgetExhausted(QomonError):
    """The caller's time budget ran out before the call could succeed.

    Retryable: nothing is known to have gone wrong with the request itself; the caller
    should hand the work back (to the queue) instead of being killed mid-call.
    """

    retryable = True
    code = Code.QOMON_BUDGET_EXHAUSTED

    def __init__(self, detail: str, *, endpoint: str = "", last_error: QomonError | None) -> None:
        self.last_error = last_error
        if last_error is not None:
            detail = f"{detail}; last error: {last_error}"
        super().__init__(detail, endpoint=endpoint, status=getattr(last_error, "status", None))


def problem_items(body: Any) -> tuple[ProblemItem, ...]:
    """The `errors[]` of an RFC 7807 body, values left out."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return ()
    items = []
    for entry in body["errors"]:
        if isinstance(entry, dict):
            items.append(
                ProblemItem(
                    location=redact_text(str(entry.get("location", "?"))),
                    message=redact_text(str(entry.get("message", ""))),
                )
            )
    return tuple(items)


def problem_detail(body: Any, fallback: str) -> str:
    """Qomon's explanation: problem `detail`/`title`, or the legacy `{"status": "fail"}`."""
    if isinstance(body, dict):
        for key in ("detail", "title", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        if body.get("status") == "fail":
            data = body.get("data")
            if isinstance(data, str) and data:
                return data
            return "Qomon answered status 'fail' without a message"
    return fallback
