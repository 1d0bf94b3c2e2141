"""How the stand-in plays Qomon: the key it accepts, its rate limit, its faults, and which
side of each documented-versus-observed question it takes.

Every point where Qomon's documentation and live behaviour disagree, or where the live
answer is unknown, is a setting here, so that tests can run the client against each answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Naming = Literal["current", "legacy"]
RetryAfterMode = Literal["seconds", "date", "none"]
ErrorStyle = Literal["problem", "legacy"]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class StandinConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(min_length=1)
    """The space's API key: every Qomon path wants `Authorization: Bearer <token>`."""

    naming: Naming = "current"
    """Which documentation generation GET speaks: the two spell several fields differently,
    and which one live Qomon returns today is unknown."""

    burst: int = Field(default=100, ge=5)
    """Documented: 100. At least 5: a write costs 5 tokens, so a smaller bucket could never
    take one."""
    refill: float = Field(default=10.0, gt=0.0)
    """Tokens per second. Documented: 10 (`X-Ratelimit-Limit: burst:100;rate:10.0`)."""

    latency_ms: float = Field(default=0.0, ge=0.0)
    fail_rate: Probability = 0.0
    drop_rate: Probability = 0.0
    timeout_rate: Probability = 0.0
    hang_s: float = Field(default=30.0, ge=0.0)
    """How long a "timeout" fault holds the answer back (longer than the client waits)."""
    random_seed: int | None = None
    failing_contacts: tuple[int, ...] = ()
    """Poison contacts: every call naming one of these ids (`/contacts/{id}`) is answered
    500, and only those (a contact Qomon fails on by itself, not an outage)."""
    forbidden_contacts: tuple[int, ...] = ()
    """Every call naming one of these ids (`/contacts/{id}`) is answered 403, and only
    those (the key lacks the rights for that contact, not for the space)."""
    outage: bool = False
    """Qomon is down: every Qomon call is answered 503, before the key and the rate limit
    (the pause's outage switch; the inspection surface still answers)."""
    new_token: str | None = Field(default=None, min_length=1)
    """The key was revoked and this one issued: `token` is refused with 401 and only this
    one is accepted, until an operator puts it in the sync's secret (the refused-key
    switch). Never shown by the inspection surface."""

    retry_after: RetryAfterMode = "seconds"
    """Documented: a 429 carries `Retry-After` in whole seconds (`seconds`, rounded up).
    `date` (an HTTP date) and `none` (no header, as a proxy that strips it would leave)
    stay playable because the client still copes with both."""
    validation_status: Literal[400, 422] = 422
    """400 or 422 on PATCH validation: unknown which one Qomon sends."""
    strict_types: bool = True
    """Refuse a PATCH or POST /contacts body whose values do not have the types Qomon's PATCH
    reference documents: integers (`age_category`, `user_contact_id`, note ids) must be JSON
    integers, answers' `data` strings, dates `YYYY-MM-DDTHH:mm:ss.SSSZ` (see
    `standin.fields`). False plays a lenient server: any scalar for `age_category` and
    `user_contact_id`, numbers for numeric answers, any string as a birthdate, and the
    note keys the reference adds (times, author) unchecked."""
    error_style: ErrorStyle = "problem"
    """RFC 7807 problem JSON (newest docs, observed live) or the older `{"status": "fail"}`."""
    forms_v1: bool = True
    """False plays an older space that only knows the deprecated `GET /forms/{type}`."""
    search_max_conditions: int = Field(default=250, ge=1)
    """How many conditions one search may hold before a 422. Qomon documents no limit (only
    pages of 1 to 1,000 contacts): unknown until a sandbox run (contract
    `test_how_many_mail_conditions_one_search_takes`). Above the client's default group
    (100), so that only a test that lowers it sees the client shrink its groups."""
    include_deleted: bool = False
    """Observed live: GET may return soft-deleted entries (`deleted_at` set)."""

    def with_changes(self, changes: Mapping[str, Any]) -> StandinConfig:
        """A validated copy with `changes` applied; the key cannot change at run time.

        Raises `ValueError` for the key, `pydantic.ValidationError` for a bad value.
        """
        if "token" in changes:
            raise ValueError("the token cannot be changed while the stand-in runs")
        return StandinConfig.model_validate({**self.model_dump(), **changes})

    def public_view(self) -> dict[str, Any]:
        """The settings without the key, for the inspection surface."""
        return self.model_dump(exclude={"token", "new_token"})
