"""The Qomon HTTP client: the only code that speaks to Qomon.

Every call is paced by a token bucket (Qomon's rate limit is per space and tokens, not
latency, bound our throughput), retried in-process only while the caller's deadline
allows, and counted (calls and tokens per endpoint) for metrics and benchmarks.
Qomon quirks handled here: see docs/qomon-api.md#calls-and-answers.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from qomon_sync import __version__
from qomon_sync.adapters.qomon.errors import (
    QomonAuthError,
    QomonBudgetExhausted,
    QomonError,
    QomonMalformedResponse,
    QomonNotFound,
    QomonRateLimited,
    QomonRequestError,
    QomonServerError,
    QomonTransportError,
    QomonValidationError,
    problem_detail,
    problem_items,
)
from qomon_sync.adapters.qomon.pacing import BucketWaitTooLong, Deadline, Pacer, TokenBucket
from qomon_sync.domain.forms import Form
from qomon_sync.domain.validation import error_paths

USER_AGENT = (
    f"qomon-sync/{__version__} (Qomon connector for forms and CRMs; httpx/{httpx.__version__})"
)

# Documented ("Rate limits"): PATCH and POST /contacts cost 5 tokens, every other call 1.
WRITE_COST = 5
READ_COST = 1
MAX_PER_PAGE = 1000
"""Documented (search "Overview"): `per_page` is 1 to 1,000, and a page costs 1 token."""
SEARCH_GROUP_SIZE = 100
"""E-mails asked in one search unless told otherwise (settings.qomon_search_group_size)."""

Contact = dict[str, Any]
CallKind = Literal["read", "replace", "create"]


@dataclass
class EndpointStats:
    calls: int = 0
    tokens: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0
    latency_s: float = 0.0


@dataclass
class CallStats:
    """What the client spent, per endpoint ("GET /contacts/{id}", ...)."""

    endpoints: dict[str, EndpointStats] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(e.calls for e in self.endpoints.values())

    @property
    def tokens(self) -> int:
        return sum(e.tokens for e in self.endpoints.values())

    @property
    def rate_limited(self) -> int:
        return sum(e.rate_limited for e in self.endpoints.values())

    @property
    def retries(self) -> int:
        return sum(e.retries for e in self.endpoints.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tokens": self.tokens,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "endpoints": {name: vars(e).copy() for name, e in sorted(self.endpoints.items())},
        }


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    min_call_s: float = 0.25
    """Never start a call with less time than this left: it could not finish."""


class QomonClient:
    """Synchronous client (a Lambda handles one batch at a time)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout_s: float = 3.05,
        read_timeout_s: float = 10.0,
        bucket: Pacer | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        on_call: Callable[[str, int | None, float], None] | None = None,
        search_group_size: int = SEARCH_GROUP_SIZE,
    ) -> None:
        """`on_call(endpoint, status or None for no answer, latency in s)` after each call."""
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            transport=transport,
        )
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self.bucket: Pacer = bucket or TokenBucket(sleep=sleep)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        self._stats_lock = threading.Lock()
        self.stats = CallStats()
        self._forms_v1 = True
        self._on_call = on_call
        self.search_group_size = max(1, search_group_size)
        """How many e-mails one search asks: halved, for this client's life, by a refusal."""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QomonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- contacts ---------------------------------------------------------------------

    def get_contact(self, contact_id: int | str, *, deadline: Deadline) -> Contact:
        data = self._call("GET", f"/contacts/{contact_id}", "GET /contacts/{id}", deadline)
        return _contact_of(data, "GET /contacts/{id}")

    def replace_contact(
        self, contact_id: int | str, contact: Mapping[str, Any], *, deadline: Deadline
    ) -> Contact:
        """PATCH /contacts/{id}: a full replacement. Whatever `contact` omits is deleted.

        Not resent here once the request may have reached Qomon (a timeout, a connection
        dropped after sending): Qomon may still apply it later, and if another write of
        ours for this contact landed first, the late one would overwrite it (full
        replacement, no ETag: the last writer wins). The error is retryable: the caller
        leaves the contact to the queue, whose visibility timeout keeps its later changes
        back until the late request has landed or died; then a fresh GET shows what won.
        """
        data = self._call(
            "PATCH",
            f"/contacts/{contact_id}",
            "PATCH /contacts/{id}",
            deadline,
            json={"data": {"contact": dict(contact)}},
            cost=WRITE_COST,
            kind="replace",
        )
        return _contact_of(data, "PATCH /contacts/{id}")

    def create_contact(self, contact: Mapping[str, Any], *, deadline: Deadline) -> Contact:
        """POST /contacts: synchronous create; the answer carries the new `id`.

        Not idempotent: once the request may have reached Qomon it is not retried here,
        since a second POST could create the person twice.
        """
        data = self._call(
            "POST",
            "/contacts",
            "POST /contacts",
            deadline,
            json={"data": {"contact": dict(contact)}},
            cost=WRITE_COST,
            kind="create",
        )
        return _contact_of(data, "POST /contacts")

    def delete_contact(self, contact_id: int | str, *, deadline: Deadline) -> None:
        """DELETE /contacts/{id} (204). Used to clean up after contract tests."""
        self._call("DELETE", f"/contacts/{contact_id}", "DELETE /contacts/{id}", deadline)

    def find_contacts_by_email(
        self, mail: str, *, deadline: Deadline, per_page: int = 100, max_pages: int = 100
    ) -> list[Contact]:
        """Every contact whose e-mail is `mail`, whatever its case and outer blanks.

        Qomon documents `eql:strictdata` as case-sensitive: searching the address as a form
        sent it would miss the person Qomon holds as Lea.Martin@Example.org (a
        `contact_not_found`, or with `if_missing: create` a second person). `eql` ignores
        case but is loose (observed: it also finds longer addresses that begin with the one
        asked), so it is asked once, every page read, and only the results whose address
        equals `mail` (`normalise_email`) are kept. Several contacts may share one e-mail:
        all are returned, for the caller to refuse.
        """
        wanted = normalise_email(mail)
        condition = {"attr": "mail", "ope": "eql", "value": mail.strip()}
        # Exactly two levels: a condition directly under the root is refused with 422.
        query = {"$all": [{"$all": [{"$condition": condition}]}]}
        found = self._search(query, deadline, per_page=per_page, max_pages=max_pages)
        return [c for c in found if normalise_email(c.get("mail")) == wanted]

    def find_contacts_by_emails(
        self,
        mails: Iterable[str],
        *,
        deadline: Deadline,
        per_page: int = MAX_PER_PAGE,
        max_pages: int = 100,
    ) -> dict[str, list[Contact]]:
        """Every contact of each e-mail, in as few searches as Qomon takes: the address
        (`normalise_email`) -> the contacts that hold it exactly (empty: none).

        The same matching as `find_contacts_by_email`, for many addresses at once: one
        search asks up to `search_group_size` of them in an `$at_least_one` group of `eql`
        conditions (a page costs 1 token whatever it holds, up to 1,000 contacts), every
        page is read, and each result is kept only for the address it holds exactly, so
        a longer address that begins with an asked one is nobody's. Qomon documents no
        limit on the conditions of a group: a search it refuses (400 or 422) is asked
        again in two halves, and the smaller group is kept for the next searches of this
        client. One address refused alone is the caller's error (`QomonValidationError`).
        """
        asked: dict[str, str] = {}
        for mail in mails:
            key = normalise_email(mail)
            if key:
                asked.setdefault(key, mail.strip())
        found: dict[str, list[Contact]] = {key: [] for key in asked}
        pending = list(asked)
        while pending:
            size = min(self.search_group_size, len(pending))
            group, rest = pending[:size], pending[size:]
            conditions = [
                {"$condition": {"attr": "mail", "ope": "eql", "value": asked[key]}} for key in group
            ]
            query = {"$all": [{"$at_least_one": conditions}]}
            try:
                contacts = self._search(query, deadline, per_page=per_page, max_pages=max_pages)
            except QomonValidationError:
                if size == 1:
                    raise
                self.search_group_size = size // 2
                continue  # the same addresses again, in smaller groups
            wanted = set(group)
            for contact in contacts:
                key = normalise_email(contact.get("mail"))
                if key in wanted:
                    found[key].append(contact)
            pending = rest
        return found

    def _search(
        self, query: dict[str, Any], deadline: Deadline, *, per_page: int, max_pages: int
    ) -> list[Contact]:
        """Every page of one search (each a call, so 1 token): no total is returned, and
        a short page is the last one."""
        found: list[Contact] = []
        for page in range(max_pages):
            body = {
                "data": {"advanced_search": {"query": query, "per_page": per_page, "page": page}}
            }
            data = self._call("POST", "/search", "POST /search", deadline, json=body)
            contacts = data.get("contacts")
            if not isinstance(contacts, list) or not all(isinstance(c, dict) for c in contacts):
                raise QomonMalformedResponse(
                    "search answer has no list in data.contacts", endpoint="POST /search"
                )
            found.extend(contacts)
            if len(contacts) < per_page:
                return found
        raise QomonMalformedResponse(
            f"search still returned full pages after {max_pages} pages", endpoint="POST /search"
        )

    # -- forms ------------------------------------------------------------------------

    def list_forms(self, form_type: str, *, deadline: Deadline) -> list[Form]:
        """The forms of one family, from `/v1/forms/type/{type}` or the deprecated path."""
        data: dict[str, Any] | None = None
        if self._forms_v1:
            try:
                data = self._call(
                    "GET", f"/v1/forms/type/{form_type}", "GET /v1/forms/type/{type}", deadline
                )
            except QomonNotFound:
                # Older spaces only know `/forms/{type}`; remember it so we pay one call, not two.
                self._forms_v1 = False
        if data is None:
            data = self._call("GET", f"/forms/{form_type}", "GET /forms/{type}", deadline)
        raw = data.get("forms")
        if not isinstance(raw, list):
            raise QomonMalformedResponse("forms answer has no list in data.forms")
        try:
            return [Form.model_validate(item) for item in raw]
        except ValidationError as exc:
            raise QomonMalformedResponse(f"a form is not understood: {_first_error(exc)}") from None

    # -- the call loop ----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        deadline: Deadline,
        *,
        json: Any = None,
        cost: int = READ_COST,
        kind: CallKind = "read",
    ) -> dict[str, Any]:
        last_error: QomonError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                self._count(endpoint, retries=1)
            if deadline.remaining() < self.retry.min_call_s:
                raise QomonBudgetExhausted(
                    "no time left for another call", endpoint=endpoint, last_error=last_error
                )
            try:
                self.bucket.acquire(cost, deadline)
            except BucketWaitTooLong as exc:
                raise QomonBudgetExhausted(
                    f"rate-limit tokens not available in time ({exc})",
                    endpoint=endpoint,
                    last_error=last_error,
                ) from None
            try:
                return self._attempt(
                    method=method,
                    path=path,
                    endpoint=endpoint,
                    deadline=deadline,
                    json=json,
                    cost=cost,
                )
            except QomonError as error:
                last_error = error
                if not error.retryable or not _may_resend(error, kind):
                    raise
                wait = self._wait_before_retry(error, attempt, cost)
                if attempt == self.retry.max_attempts:
                    raise
                if wait + self.retry.min_call_s > deadline.remaining():
                    raise QomonBudgetExhausted(
                        f"a retry in {wait:.2f}s would not finish in time",
                        endpoint=endpoint,
                        last_error=error,
                    ) from None
                self._sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _attempt(
        self,
        *,
        method: str,
        path: str,
        endpoint: str,
        deadline: Deadline,
        json: Any,
        cost: int,
    ) -> dict[str, Any]:
        remaining = deadline.remaining()
        timeout = httpx.Timeout(
            min(self._read_timeout_s, remaining), connect=min(self._connect_timeout_s, remaining)
        )
        started = time.perf_counter()
        try:
            response = self._http.request(method, path, json=json, timeout=timeout)
        except httpx.TransportError as exc:
            latency = time.perf_counter() - started
            self._count(endpoint, calls=1, errors=1, latency_s=latency)
            if self._on_call is not None:
                self._on_call(endpoint, None, latency)
            sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise QomonTransportError(
                f"{type(exc).__name__}: no answer from Qomon", endpoint=endpoint, request_sent=sent
            ) from None
        latency = time.perf_counter() - started
        if self._on_call is not None:
            self._on_call(endpoint, response.status_code, latency)
        self.bucket.observe(response.headers)
        spent = _spent_tokens(response, cost)
        if response.is_success:
            self._count(endpoint, calls=1, tokens=spent, latency_s=latency)
            return _envelope_data(response, endpoint)
        self._count(
            endpoint,
            calls=1,
            tokens=spent,
            errors=1,
            rate_limited=int(response.status_code == 429),
            latency_s=latency,
        )
        error = _error_from(response, endpoint)
        if isinstance(error, QomonRateLimited):
            # Documented: the space's bucket is empty and Retry-After says for how long.
            # Held in the bucket, so that every call that shares it (every instance, for
            # the shared bucket) waits it out, not only this call's retry.
            self.bucket.drain(error.retry_after or 0.0)
        raise error

    def _wait_before_retry(self, error: QomonError, attempt: int, cost: int) -> float:
        if isinstance(error, QomonRateLimited):
            if error.retry_after is not None:
                return error.retry_after
            # No Retry-After: wait for the tokens this call needs, plus jitter so that
            # several consumers sharing the space's bucket do not come back together.
            refill_wait = cost / self.bucket.refill_per_s
            return refill_wait + self._jitter() * max(refill_wait, self.retry.base_backoff_s)
        ceiling = min(self.retry.max_backoff_s, self.retry.base_backoff_s * 2.0 ** (attempt - 1))
        return self.retry.base_backoff_s / 2 + self._jitter() * ceiling  # jittered exponential

    def _count(self, endpoint: str, **deltas: float) -> None:
        with self._stats_lock:
            stats = self.stats.endpoints.setdefault(endpoint, EndpointStats())
            for name, delta in deltas.items():
                setattr(stats, name, getattr(stats, name) + delta)


def normalise_email(mail: object) -> str | None:
    return mail.strip().casefold() if isinstance(mail, str) else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _may_resend(error: QomonError, kind: CallKind) -> bool:
    """Whether a retryable failure may be retried in-process.

    A read may always be. A write whose request may still be in flight (a timeout or a
    connection dropped after sending) may not: see `replace_contact`. A create answered
    with a 5xx may have created the person, so only a 429 or a refused connection (the
    request surely did nothing) lets it be sent again.
    """
    in_flight = isinstance(error, QomonTransportError) and error.request_sent
    if kind == "read":
        return True
    if kind == "replace":
        return not in_flight
    return isinstance(error, QomonRateLimited) or (
        isinstance(error, QomonTransportError) and not in_flight
    )


def _spent_tokens(response: httpx.Response, default_cost: int) -> int:
    header = response.headers.get("x-ratelimit-cost")
    if header is not None:
        try:
            return int(float(header))
        except ValueError:
            pass
    return 0 if response.status_code == 429 else default_cost


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _envelope_data(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    if response.status_code == 204:
        return {}
    body = _json_or_none(response)
    if not isinstance(body, dict):
        raise QomonMalformedResponse(
            f"HTTP {response.status_code} answer is not a JSON object", endpoint=endpoint
        )
    if body.get("status") != "success":
        raise QomonMalformedResponse(
            f"envelope status is {body.get('status')!r}, not 'success'", endpoint=endpoint
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise QomonMalformedResponse("envelope has no data object", endpoint=endpoint)
    return data


def _contact_of(data: dict[str, Any], endpoint: str) -> Contact:
    contact = data.get("contact")
    if not isinstance(contact, dict) or "id" not in contact:
        raise QomonMalformedResponse(
            "answer has no contact with an id in data.contact", endpoint=endpoint
        )
    return contact


def _error_from(response: httpx.Response, endpoint: str) -> QomonError:
    status = response.status_code
    body = _json_or_none(response)
    detail = problem_detail(body, fallback=response.reason_phrase or f"HTTP {status}")
    if status in (401, 403):
        return QomonAuthError(detail, status=status, endpoint=endpoint)
    if status == 404:
        return QomonNotFound(detail, status=status, endpoint=endpoint)
    if status in (400, 422):
        return QomonValidationError(
            detail, status=status, endpoint=endpoint, errors=problem_items(body)
        )
    if status == 429:
        return QomonRateLimited(
            detail,
            endpoint=endpoint,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500 or status == 408:
        return QomonServerError(detail, status=status, endpoint=endpoint)
    return QomonRequestError(detail, status=status, endpoint=endpoint)


def _first_error(exc: ValidationError) -> str:
    path, why = error_paths(exc)[0]
    return f"{path}: {why}"
