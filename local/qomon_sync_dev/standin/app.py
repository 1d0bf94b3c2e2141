"""The stand-in's HTTP surface: Qomon's routes, its key check and token-bucket rate limit,
injected faults, and an uncounted `/_standin/` surface for tests to inspect and steer it.

A request on a Qomon path goes through, in order: the injected latency, a scheduled fault,
a random fault, the key check, the rate limit, then the route. Faults and refused keys
cost no tokens. Every answer on a Qomon path carries the four rate-limit headers Qomon
documents ("Rate limits": `X-Ratelimit-Limit`, `-Remaining`, `-Cost`, `-Reset`), and a 429
its `Retry-After` in whole seconds, rounded up.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from qomon_sync_dev.standin.common import InvalidRequest, JsonObject, Problem, UnknownContact
from qomon_sync_dev.standin.config import ErrorStyle, RetryAfterMode, StandinConfig
from qomon_sync_dev.standin.forms import FORM_FAMILIES
from qomon_sync_dev.standin.limits import Fault, FaultSchedule, TokenBucket
from qomon_sync_dev.standin.records import StoredContact
from qomon_sync_dev.standin.search import parse_search
from qomon_sync_dev.standin.stats import Stats
from qomon_sync_dev.standin.store import ContactStore
from qomon_sync_dev.standin.writes import WriteRules

logger = logging.getLogger(__name__)

INSPECTION_PREFIX = "/_standin/"
WRITE_COST = 5
"""Documented ("Rate limits"): PATCH and POST /contacts cost 5 tokens, every other call 1."""
WRITE_ENDPOINTS = frozenset({"PATCH /contacts/{id}", "POST /contacts"})
CONTACT_LOCATION = "body.data.contact"
"""Where a write's contact sits in the body: its problems name paths below it, like the
envelope's and the search's problems do."""
SEARCH_VALIDATION_STATUS = 422
"""Observed live for a malformed search; only contact writes leave 400 versus 422 open."""
INJECTED_SERVER_ERRORS = (500, 502, 503)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- the stand-in's state ---------------------------------------------------------------


class StandinState:
    """Everything one stand-in holds. Only its event loop's thread touches it."""

    def __init__(self, config: StandinConfig, seed: Mapping[str, Any]) -> None:
        self.config = config
        self._seed = copy.deepcopy(dict(seed))
        # Loading once here makes a bad seed fail at start, not at the first reset.
        self.store = ContactStore.from_seed(self._seed)
        self.stats = Stats()
        self.bucket = TokenBucket(config.burst, config.refill)
        self.faults = FaultSchedule()
        self.rng = random.Random(config.random_seed)

    def reset(self) -> None:
        """Back to the seed: contacts, stats, a full bucket, no pending faults, the rng."""
        self.store = ContactStore.from_seed(self._seed)
        self.stats = Stats()
        self.bucket = TokenBucket(self.config.burst, self.config.refill)
        self.faults.clear()
        self.rng = random.Random(self.config.random_seed)

    def reconfigure(self, changes: Mapping[str, Any]) -> None:
        new = self.config.with_changes(changes)
        if (new.burst, new.refill) != (self.config.burst, self.config.refill):
            self.bucket = TokenBucket(new.burst, new.refill)
        if "random_seed" in changes:
            self.rng = random.Random(new.random_seed)
        self.config = new

    def write_rules(self) -> WriteRules:
        return WriteRules(documented_types=self.config.strict_types)

    def render(self, contact: StoredContact) -> JsonObject:
        return self.store.render(
            contact, naming=self.config.naming, include_deleted=self.config.include_deleted
        )


STATE = web.AppKey("standin_state", StandinState)


# -- answers ----------------------------------------------------------------------------


class QomonProblem(Exception):
    """An error answer, rendered in the configured style by the middleware."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: Iterable[Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


def _problem_response(
    request: web.Request, problem: QomonProblem, *, style: ErrorStyle = "problem"
) -> web.Response:
    if style == "legacy":
        # The older spec documents only `{"status": "fail"}` error bodies.
        body: JsonObject = {"status": "fail", "message": problem.detail}
        content_type = "application/json"
    else:
        body = {
            "type": "about:blank",
            "title": HTTPStatus(problem.status).phrase,
            "status": problem.status,
            "detail": problem.detail,
            "instance": request.path,
            "errors": [item.as_json() for item in problem.errors],
        }
        content_type = "application/problem+json"
    return web.json_response(
        body, status=problem.status, content_type=content_type, headers=problem.headers
    )


def _success(data: JsonObject, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"status": "success", "data": data}, headers=headers)


def _invalid(error: InvalidRequest, status: int) -> QomonProblem:
    detail = "the request is not valid: " + "; ".join(
        f"{p.location}: {p.message}" for p in error.problems
    )
    return QomonProblem(status, detail, error.problems)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = Problem("body", f"is not valid JSON ({error})", None)
        raise QomonProblem(400, "the body is not valid JSON", [problem]) from None


def _enveloped(body: Any, key: str) -> Any:
    """`body.data.<key>`; raises `InvalidRequest` naming the first level that is wrong."""
    if not isinstance(body, Mapping):
        expected = f'must be an object {{"data": {{"{key}": {{...}}}}}}'
        raise InvalidRequest([Problem("body", expected, body)])
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise InvalidRequest([Problem("body.data", f'must be an object {{"{key}": ...}}', data)])
    return data.get(key)


def _retry_after_header(wait_s: float, mode: RetryAfterMode) -> dict[str, str]:
    seconds = max(1, math.ceil(wait_s))
    if mode == "seconds":
        return {"Retry-After": str(seconds)}
    if mode == "date":
        # An HTTP date has whole seconds: round up so it is never earlier than the wait.
        ready = datetime.fromtimestamp(math.ceil(time.time()) + seconds, UTC)
        return {"Retry-After": email.utils.format_datetime(ready, usegmt=True)}
    return {}


def _too_many_requests(wait_s: float, mode: RetryAfterMode, detail: str) -> QomonProblem:
    return QomonProblem(429, detail, headers=_retry_after_header(wait_s, mode))


# -- the Qomon routes -------------------------------------------------------------------


def _state(request: web.Request) -> StandinState:
    return request.app[STATE]


def _contact_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def get_contact(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    contact = state.store.get(_contact_id(request))
    return _success({"contact": state.render(contact)})


async def replace_contact(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    contact_id = _contact_id(request)
    state.store.get(contact_id)  # a missing contact is a 404 before any body problem
    body = await _json_body(request)
    try:
        stored = state.store.replace(
            contact_id,
            _contact_in(body),
            naming=state.config.naming,
            rules=state.write_rules(),
            location=CONTACT_LOCATION,
        )
    except InvalidRequest as error:
        raise _invalid(error, state.config.validation_status) from None
    state.stats.wrote(stored.id)
    return _success({"contact": state.render(stored)})


async def create_contact(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    body = await _json_body(request)
    try:
        stored = state.store.create(
            _contact_in(body),
            naming=state.config.naming,
            rules=state.write_rules(),
            location=CONTACT_LOCATION,
        )
    except InvalidRequest as error:
        raise _invalid(error, state.config.validation_status) from None
    state.stats.wrote(stored.id)
    return _success({"contact": state.render(stored)})


def _contact_in(body: Any) -> Mapping[str, Any]:
    contact = _enveloped(body, "contact")
    if not isinstance(contact, Mapping):
        raise InvalidRequest([Problem(CONTACT_LOCATION, "must be a contact object", contact)])
    return contact


async def delete_contact(request: web.Request) -> web.StreamResponse:
    _state(request).store.delete(_contact_id(request))
    return web.Response(status=204)


async def search(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    body = await _json_body(request)
    try:
        limit = state.config.search_max_conditions
        query = parse_search(_enveloped(body, "advanced_search"), max_conditions=limit)
    except InvalidRequest as error:
        raise _invalid(error, SEARCH_VALIDATION_STATUS) from None
    # No total is returned: a short or empty page tells the caller it has them all.
    return _success({"contacts": [state.render(c) for c in state.store.search(query)]})


async def forms_by_type(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    if not state.config.forms_v1:
        raise QomonProblem(404, "this space does not know /v1/forms/type/{type}")
    return _success({"forms": _forms_of(state, request.match_info["type"])})


async def forms_by_type_deprecated(request: web.Request) -> web.StreamResponse:
    forms = _forms_of(_state(request), request.match_info["type"])
    return _success({"forms": forms}, headers={"Deprecation": "true"})


async def form_by_id(request: web.Request) -> web.StreamResponse:
    form_id = int(request.match_info["id"])
    form = _state(request).store.forms.definition(form_id)
    if form is None:
        raise QomonProblem(404, f"no form has id {form_id}")
    return _success({"form": form})


def _forms_of(state: StandinState, form_type: str) -> list[JsonObject]:
    if form_type not in FORM_FAMILIES:
        raise QomonProblem(404, f"unknown form type {form_type!r}")
    return state.store.forms.definitions(form_type)


# -- the pipeline every Qomon call goes through -----------------------------------------


def _endpoint(request: web.Request) -> str:
    """Method and route template, e.g. `PATCH /contacts/{id}`, as stats and costs key it."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "(no route)"
    return f"{request.method} {template}"


def _authorised(request: web.Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        credentials.strip().encode(), token.encode()
    )


def _random_fault(state: StandinState, draw: float) -> Fault | None:
    config = state.config
    if draw < config.drop_rate:
        return Fault("drop")
    if draw < config.drop_rate + config.timeout_rate:
        return Fault("timeout")
    if draw < config.drop_rate + config.timeout_rate + config.fail_rate:
        return Fault("status", state.rng.choice(INJECTED_SERVER_ERRORS))
    return None


async def _call_route(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnknownContact as error:
        raise QomonProblem(404, str(error)) from None
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        detail = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        raise QomonProblem(405, detail, headers={"Allow": error.headers["Allow"]}) from None
    except web.HTTPNotFound:
        raise QomonProblem(404, f"no route for {request.path}") from None
    except web.HTTPException as error:
        # Raised while reading the body (413) and the like.
        raise QomonProblem(error.status, error.text or error.reason) from None


def _switched_faults(request: web.Request, state: StandinState) -> None:
    """The pause's switches (issue 20): a poison contact's calls answered 500 (or 403, a
    contact the key may not touch), or every call 503 while Qomon is down."""
    named = request.match_info.get("id")
    if named is not None and named.isdigit() and int(named) in state.config.failing_contacts:
        state.stats.server_errors += 1
        raise QomonProblem(500, "injected server error for this contact")
    if named is not None and named.isdigit() and int(named) in state.config.forbidden_contacts:
        raise QomonProblem(403, "injected: the key may not act on this contact")
    if state.config.outage:
        state.stats.server_errors += 1
        state.stats.outage_calls += 1
        raise QomonProblem(503, "Qomon is down (the stand-in's outage switch)")


async def _admit(request: web.Request, state: StandinState, cost: int) -> bool:
    """Latency, then faults, the key and the rate limit, in Qomon's order.

    Raises the refusal as a `QomonProblem`; answers False when the connection was dropped.
    Tokens are taken only when the call is admitted.
    """
    if state.config.latency_ms:
        await asyncio.sleep(state.config.latency_ms / 1000)
    _switched_faults(request, state)
    draw = state.rng.random()  # one draw per call, so a seed replays the same faults
    storm_left = state.faults.storm_left()
    if storm_left > 0:
        detail = f"rate limit storm: every call is refused for {storm_left:.1f} s more"
        raise _too_many_requests(storm_left, state.config.retry_after, detail)
    fault = state.faults.take() or _random_fault(state, draw)
    if fault is not None and fault.kind == "drop":
        state.stats.dropped += 1
        if request.transport is not None:
            request.transport.abort()
        return False
    if fault is not None and fault.kind == "timeout":
        state.stats.timeouts += 1
        # The body is taken in first and the call then goes on as usual, so a write still
        # lands after its caller gave up waiting, as it may on a slow real server.
        await request.read()
        await asyncio.sleep(state.config.hang_s)
    elif fault is not None and fault.status == 429:
        mode = fault.retry_after or state.config.retry_after
        wait = state.bucket.seconds_until(cost)
        raise _too_many_requests(wait, mode, "rate limit exceeded (forced by a test)")
    elif fault is not None and fault.status is not None:
        state.stats.server_errors += 1
        raise QomonProblem(fault.status, "injected server error")
    if not _authorised(request, state.config.new_token or state.config.token):
        state.stats.refused_key += 1
        raise QomonProblem(
            401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )
    if not state.bucket.try_take(cost):
        wait = state.bucket.seconds_until(cost)
        detail = (
            f"rate limit exceeded: this call costs {cost} tokens, "
            f"{state.bucket.remaining()} left, refilled at {state.config.refill:g}/s"
        )
        raise _too_many_requests(wait, state.config.retry_after, detail)
    return True


@web.middleware
async def qomon_pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(INSPECTION_PREFIX):
        try:
            return await _call_route(request, handler)
        except QomonProblem as problem:
            return _problem_response(request, problem)

    state = _state(request)
    endpoint = _endpoint(request)
    state.stats.calls[endpoint] += 1
    cost = WRITE_COST if endpoint in WRITE_ENDPOINTS else 1
    spent = 0
    try:
        if not await _admit(request, state, cost):
            return web.Response(status=499)  # never sent: the connection is gone
        # Tokens taken stay spent whatever the route answers, as with any rate limiter.
        spent = cost
        state.stats.tokens_by_endpoint[endpoint] += cost
        response = await _call_route(request, handler)
    except QomonProblem as problem:
        response = _problem_response(request, problem, style=state.config.error_style)
    except ConnectionResetError:
        return web.Response(status=499)  # the caller left: nobody to answer
    except Exception:
        logger.exception("stand-in bug while answering %s", endpoint)
        failure = QomonProblem(500, "the stand-in failed: see its log")
        response = _problem_response(request, failure, style=state.config.error_style)

    state.stats.answered(response.status)
    response.headers.update(_rate_limit_headers(state, spent))
    return response


def _rate_limit_headers(state: StandinState, spent: int) -> dict[str, str]:
    """Documented ("Rate limits") on every answer. `-Cost` is what this call took: nothing
    when it was refused (a fault, the key, the rate limit)."""
    config = state.config
    # `rate:10.0` as documented; a rate one decimal cannot hold is written in full.
    rate = (
        f"{config.refill:.1f}" if round(config.refill, 1) == config.refill else f"{config.refill:g}"
    )
    return {
        "X-Ratelimit-Limit": f"burst:{config.burst};rate:{rate}",
        "X-Ratelimit-Remaining": str(state.bucket.remaining()),
        "X-Ratelimit-Cost": str(spent),
        "X-Ratelimit-Reset": _seconds(state.bucket.seconds_until_full()),
    }


def _seconds(value: float) -> str:
    """Seconds to the millisecond, rounded up (never sooner than the truth): `0.6`, `0`."""
    text = f"{math.ceil(value * 1000 - 1e-6) / 1000:.3f}".rstrip("0").rstrip(".")
    return text or "0"


# -- the inspection surface: no key, no tokens, not counted -----------------------------


async def inspect_contacts(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    return web.json_response({"contacts": [store.raw(c) for c in store.contacts()]})


async def inspect_contact(request: web.Request) -> web.StreamResponse:
    store = _state(request).store
    return web.json_response({"contact": store.raw(store.get(_contact_id(request)))})


async def put_contact(request: web.Request) -> web.StreamResponse:
    """Insert or replace one contact from the seed format, for test setup."""
    store = _state(request).store
    record = await _json_body(request)
    try:
        stored, inserted = store.put_seed_contact(record, contact_id=_contact_id(request))
    except InvalidRequest as error:
        raise _invalid(error, 422) from None
    return web.json_response({"contact": store.raw(stored)}, status=201 if inserted else 200)


async def inspect_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(_state(request).stats.as_json())


async def reset(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    state.reset()
    return web.json_response({"reset": True, "contacts": len(state.store.contacts())})


async def inspect_config(request: web.Request) -> web.StreamResponse:
    return web.json_response({"config": _state(request).config.public_view()})


async def change_config(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    changes = await _json_body(request)
    if not isinstance(changes, Mapping):
        raise QomonProblem(422, "the body must be an object of settings to change")
    try:
        state.reconfigure(changes)
    except ValidationError as error:
        problems = [
            Problem(".".join(str(part) for part in item["loc"]), item["msg"], item.get("input"))
            for item in error.errors(include_url=False)
        ]
        raise QomonProblem(422, "invalid settings", problems) from None
    except ValueError as error:
        raise QomonProblem(422, str(error)) from None
    return web.json_response({"config": state.config.public_view()})


async def inspect_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response({"faults": _state(request).faults.as_json()})


async def schedule_faults(request: web.Request) -> web.StreamResponse:
    """`{"status": 503, "count": 2}`, `{"kind": "drop"}` or `{"rate_limit_storm_s": 3}`."""
    state = _state(request)
    body = await _json_body(request)
    if not isinstance(body, Mapping):
        raise QomonProblem(422, "the body must be an object")
    problems: list[Problem] = []
    storm = body.get("rate_limit_storm_s")
    if storm is not None:
        if isinstance(storm, bool) or not isinstance(storm, int | float) or storm <= 0:
            problems.append(Problem("rate_limit_storm_s", "must be a positive number", storm))
        else:
            state.faults.start_storm(float(storm))
    elif "status" in body or "kind" in body:
        fault = _fault_in(body, problems)
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(Problem("count", "must be a positive integer", count))
        elif fault is not None:
            state.faults.add(fault, count)
    else:
        message = 'give "status", "kind" or "rate_limit_storm_s"'
        problems.append(Problem("body", message, dict(body)))
    if problems:
        raise QomonProblem(422, "invalid fault", problems)
    return web.json_response({"faults": state.faults.as_json()})


def _fault_in(body: Mapping[str, Any], problems: list[Problem]) -> Fault | None:
    if "kind" in body:
        kind = body["kind"]
        if kind in ("drop", "timeout"):
            return Fault(kind)
        problems.append(Problem("kind", 'must be "drop" or "timeout"', kind))
        return None
    status = body["status"]
    retry_after = body.get("retry_after")
    if retry_after not in (None, "seconds", "date", "none"):
        problems.append(Problem("retry_after", 'must be "seconds", "date" or "none"', retry_after))
        return None
    if status == 429:
        return Fault("status", 429, retry_after)
    if isinstance(status, int) and not isinstance(status, bool) and 500 <= status <= 599:
        return Fault("status", status)
    problems.append(Problem("status", "must be 429 or a 5xx status", status))
    return None


# -- assembly ---------------------------------------------------------------------------


def build_app(config: StandinConfig, seed: Mapping[str, Any]) -> web.Application:
    """The stand-in as an aiohttp application; raises `SeedError` for a bad seed."""
    app = web.Application(middlewares=[qomon_pipeline])
    app[STATE] = StandinState(config, seed)
    contact = r"/contacts/{id:\d+}"
    app.router.add_get(contact, get_contact, allow_head=False)
    app.router.add_patch(contact, replace_contact)
    app.router.add_delete(contact, delete_contact)
    app.router.add_post("/contacts", create_contact)
    app.router.add_post("/search", search)
    app.router.add_get("/v1/forms/type/{type}", forms_by_type, allow_head=False)
    # Registered first so that a numeric key is a form id, anything else a form type.
    app.router.add_get(r"/forms/{id:\d+}", form_by_id, allow_head=False)
    app.router.add_get("/forms/{type}", forms_by_type_deprecated, allow_head=False)

    inspected = r"/_standin/contacts/{id:\d+}"
    app.router.add_get("/_standin/contacts", inspect_contacts, allow_head=False)
    app.router.add_get(inspected, inspect_contact, allow_head=False)
    app.router.add_put(inspected, put_contact)
    app.router.add_get("/_standin/stats", inspect_stats, allow_head=False)
    app.router.add_post("/_standin/reset", reset)
    app.router.add_get("/_standin/config", inspect_config, allow_head=False)
    app.router.add_post("/_standin/config", change_config)
    app.router.add_get("/_standin/faults", inspect_faults, allow_head=False)
    app.router.add_post("/_standin/faults", schedule_faults)
    return app
