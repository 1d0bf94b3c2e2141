"""The client against scripted answers (httpx.MockTransport): retries, budget, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from qomon_sync import __version__
from qomon_sync.adapters.qomon import (
    Deadline,
    QomonAuthError,
    QomonBudgetExhausted,
    QomonClient,
    QomonError,
    QomonMalformedResponse,
    QomonNotFound,
    QomonRateLimited,
    QomonRequestError,
    QomonServerError,
    QomonTransportError,
    QomonValidationError,
    RetryPolicy,
    TokenBucket,
)
from qomon_sync.adapters.qomon.client import parse_retry_after
from tests.unit.fakes import FakeClock

Answer = httpx.Response | Exception


class Script:
    """Answers requests in order and remembers them."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(data: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(200, json={"status": "success", "data": data}, headers=headers)


def problem(status: int, detail: str = "nope", **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "t", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def make_client(
    script: Script, fake: FakeClock, *, max_attempts: int = 5, bucket: TokenBucket | None = None
) -> QomonClient:
    return QomonClient(
        "https://qomon.test",
        "secret-key",
        bucket=bucket or TokenBucket(100, 10, clock=fake, sleep=fake.sleep),
        retry=RetryPolicy(max_attempts=max_attempts),
        transport=httpx.MockTransport(script),
        sleep=fake.sleep,
        jitter=lambda: 0.5,
    )


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


def deadline(fake: FakeClock, seconds: float = 60) -> Deadline:
    return Deadline.after(seconds, fake)


CONTACT = {"id": 7, "firstname": "Ana"}


def test_get_sends_bearer_and_descriptive_user_agent(fake: FakeClock) -> None:
    script = Script([ok({"contact": CONTACT})])
    client = make_client(script, fake)
    assert client.get_contact(7, deadline=deadline(fake)) == CONTACT
    sent = script.requests[0]
    assert sent.url.path == "/contacts/7"
    assert sent.headers["authorization"] == "Bearer secret-key"
    assert sent.headers["user-agent"].startswith(f"qomon-sync/{__version__} ")


def test_replace_sends_the_whole_contact_in_the_data_envelope(fake: FakeClock) -> None:
    script = Script([ok({"contact": CONTACT})])
    client = make_client(script, fake)
    client.replace_contact(7, {"firstname": "Ana", "tags": []}, deadline=deadline(fake))
    sent = script.requests[0]
    assert sent.method == "PATCH"
    assert json.loads(sent.content) == {"data": {"contact": {"firstname": "Ana", "tags": []}}}


@pytest.mark.parametrize(
    ("response", "error", "retryable"),
    [
        (problem(401), QomonAuthError, False),
        (problem(403), QomonAuthError, False),
        (problem(404), QomonNotFound, False),
        (problem(400), QomonValidationError, False),
        (problem(422), QomonValidationError, False),
        (problem(405), QomonRequestError, False),
        (httpx.Response(404, json={"status": "fail"}), QomonNotFound, False),
    ],
)
def test_permanent_errors_are_typed_and_not_retried(
    fake: FakeClock, response: httpx.Response, error: type[QomonError], retryable: bool
) -> None:
    script = Script([response, ok({"contact": CONTACT})])
    client = make_client(script, fake)
    with pytest.raises(error) as caught:
        client.get_contact(7, deadline=deadline(fake))
    assert caught.value.retryable is retryable
    assert len(script.requests) == 1


def test_validation_error_names_locations_and_never_echoes_values(fake: FakeClock) -> None:
    body_errors = [
        {
            "location": "contact.mail",
            "message": "ana@example.org is invalid",
            "value": "ana@example.org",
        },
        {"location": "contact.formdatas[1].form_ref_id", "message": "unknown", "value": 99},
    ]
    script = Script([problem(422, "validation failed for +33 6 12 34 56 78", errors=body_errors)])
    client = make_client(script, fake)
    with pytest.raises(QomonValidationError) as caught:
        client.replace_contact(7, {}, deadline=deadline(fake))
    err = caught.value
    assert [e.location for e in err.errors] == ["contact.mail", "contact.formdatas[1].form_ref_id"]
    text = str(err)
    assert "contact.formdatas[1].form_ref_id: unknown" in text
    assert "example.org" not in text
    assert "12 34" not in text
    assert err.status == 422


def test_legacy_fail_body_is_understood(fake: FakeClock) -> None:
    script = Script([httpx.Response(400, json={"status": "fail", "data": "bad gender"})])
    client = make_client(script, fake)
    with pytest.raises(QomonValidationError, match="bad gender"):
        client.get_contact(7, deadline=deadline(fake))


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>proxy</html>"),
        httpx.Response(200, json={"status": "fail"}),
        httpx.Response(200, json={"status": "success"}),
        httpx.Response(200, json={"status": "success", "data": {"contact": {"no": "id"}}}),
        httpx.Response(200, json=[1, 2]),
    ],
)
def test_malformed_success_is_an_error_not_a_contact(
    fake: FakeClock, response: httpx.Response
) -> None:
    client = make_client(Script([response]), fake)
    with pytest.raises(QomonMalformedResponse):
        client.get_contact(7, deadline=deadline(fake))


def test_server_errors_and_resets_are_retried_then_succeed(fake: FakeClock) -> None:
    script = Script(
        [problem(503), httpx.ReadError("reset"), problem(500), ok({"contact": CONTACT})]
    )
    client = make_client(script, fake)
    assert client.get_contact(7, deadline=deadline(fake)) == CONTACT
    assert len(script.requests) == 4
    assert len(fake.slept) == 3
    assert client.stats.retries == 3
    assert client.stats.calls == 4


def test_retries_stop_at_max_attempts_with_the_last_error(fake: FakeClock) -> None:
    client = make_client(Script([problem(502)] * 3), fake, max_attempts=3)
    with pytest.raises(QomonServerError) as caught:
        client.get_contact(7, deadline=deadline(fake))
    assert caught.value.retryable
    assert caught.value.status == 502


def test_budget_exhaustion_is_retryable_and_keeps_the_cause(fake: FakeClock) -> None:
    script = Script([problem(503)] * 10)
    client = make_client(script, fake, max_attempts=10)
    with pytest.raises(QomonBudgetExhausted) as caught:
        client.get_contact(7, deadline=deadline(fake, 1.0))
    err = caught.value
    assert err.retryable
    assert isinstance(err.last_error, QomonServerError)
    assert fake.now <= 1.0  # never slept past the caller's deadline


class TimedScript(Script):
    """A script that also notes when (on the fake clock) each request was sent."""

    def __init__(self, answers: list[Answer], clock: FakeClock) -> None:
        super().__init__(answers)
        self.clock = clock
        self.sent_at: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent_at.append(self.clock.now)
        return super().__call__(request)


def rate_limited(retry_after: str) -> httpx.Response:
    limited = problem(429)
    limited.headers["Retry-After"] = retry_after
    return limited


def test_429_honours_retry_after_seconds(fake: FakeClock) -> None:
    script = TimedScript([rate_limited("3"), ok({"contact": CONTACT})], fake)
    client = make_client(script, fake)
    client.get_contact(7, deadline=deadline(fake))
    # Not before the 3 s Qomon asked; then the call's token at 10/s, from an empty bucket.
    assert script.sent_at == [0.0, pytest.approx(3.1)]
    assert client.stats.rate_limited == 1


def test_a_retry_after_holds_back_every_call_that_shares_the_bucket(fake: FakeClock) -> None:
    bucket = TokenBucket(100, 10, clock=fake, sleep=fake.sleep)
    refused = make_client(
        TimedScript([rate_limited("3")], fake), fake, max_attempts=1, bucket=bucket
    )
    with pytest.raises(QomonRateLimited):
        refused.get_contact(7, deadline=deadline(fake))
    other_script = TimedScript([ok({"contact": CONTACT})], fake)
    other = make_client(other_script, fake, bucket=bucket)
    other.get_contact(8, deadline=deadline(fake))
    assert other_script.sent_at[0] >= 3.0


def test_429_without_retry_after_backs_off_for_the_refill_with_jitter(fake: FakeClock) -> None:
    script = Script([problem(429), ok({"contact": CONTACT})])
    client = make_client(script, fake)
    client.get_contact(7, deadline=deadline(fake))
    # The pause covers the refill of the call's cost (1 token at 10/s) plus jitter
    # (0.5 x max(0.1, base 0.2)); by then the drained bucket holds the token again.
    assert fake.slept == [pytest.approx(0.1 + 0.5 * 0.2)]


def test_429_whose_wait_exceeds_the_budget_surfaces_as_budget_exhausted(fake: FakeClock) -> None:
    limited = problem(429)
    limited.headers["Retry-After"] = "30"
    client = make_client(Script([limited]), fake)
    with pytest.raises(QomonBudgetExhausted) as caught:
        client.get_contact(7, deadline=deadline(fake, 5))
    assert isinstance(caught.value.last_error, QomonRateLimited)
    assert fake.slept == []


def test_create_is_not_resent_once_the_request_may_have_arrived(fake: FakeClock) -> None:
    script = Script([httpx.ReadTimeout("slow"), ok({"contact": CONTACT})])
    client = make_client(script, fake)
    with pytest.raises(QomonTransportError) as caught:
        client.create_contact({"firstname": "Ana"}, deadline=deadline(fake))
    assert caught.value.request_sent
    assert len(script.requests) == 1


def test_create_is_resent_after_a_refused_connection_or_a_429(fake: FakeClock) -> None:
    script = Script([httpx.ConnectError("refused"), problem(429), ok({"contact": CONTACT})])
    client = make_client(script, fake)
    assert client.create_contact({"firstname": "Ana"}, deadline=deadline(fake)) == CONTACT
    assert len(script.requests) == 3


def test_counts_tokens_per_endpoint_from_the_server_or_the_documented_cost(fake: FakeClock) -> None:
    script = Script(
        [
            ok({"contact": CONTACT}, **{"x-ratelimit-cost": "1"}),
            ok({"contact": CONTACT}),  # no header: the documented PATCH cost, 5
            problem(429),
            ok({"contact": CONTACT}),
        ]
    )
    client = make_client(script, fake)
    client.get_contact(7, deadline=deadline(fake))
    client.replace_contact(7, {}, deadline=deadline(fake))
    client.get_contact(7, deadline=deadline(fake))
    stats = client.stats.as_dict()
    assert stats["endpoints"]["GET /contacts/{id}"]["calls"] == 3
    assert stats["endpoints"]["GET /contacts/{id}"]["tokens"] == 2  # the 429 cost nothing
    assert stats["endpoints"]["PATCH /contacts/{id}"]["tokens"] == 5
    assert stats["tokens"] == 7
    assert stats["rate_limited"] == 1


def test_pacing_waits_before_sending_rather_than_meeting_a_429(fake: FakeClock) -> None:
    bucket = TokenBucket(10, 5, clock=fake, sleep=fake.sleep)
    answers: list[Answer] = [ok({"contact": CONTACT}) for _ in range(3)]
    client = make_client(Script(answers), fake, bucket=bucket)
    for _ in range(3):
        client.replace_contact(7, {}, deadline=deadline(fake))
    assert fake.slept == [pytest.approx(1.0)]  # third PATCH waited for 5 tokens at 5/s


def search_page(contacts: list[dict[str, Any]]) -> httpx.Response:
    return ok({"contacts": contacts})


def test_find_by_email_pages_until_a_short_page_and_compares_exactly(fake: FakeClock) -> None:
    full_page = [{"id": i, "mail": f"other{i}@example.org"} for i in range(2)]
    script = Script(
        [
            search_page(
                [{"id": 1, "mail": "Ana@Example.org "}, {"id": 2, "mail": "ana@example.org.uk"}]
            ),
            search_page(full_page),
            search_page([{"id": 9, "mail": "ana@example.org"}]),
        ]
    )
    client = make_client(script, fake)
    found = client.find_contacts_by_email("ana@example.org", deadline=deadline(fake), per_page=2)
    assert [c["id"] for c in found] == [1, 9]
    bodies = [json.loads(r.content)["data"]["advanced_search"] for r in script.requests]
    assert [b["page"] for b in bodies] == [0, 1, 2]
    assert bodies[0]["query"] == {
        "$all": [
            {"$all": [{"$condition": {"attr": "mail", "ope": "eql", "value": "ana@example.org"}}]}
        ]
    }


def test_find_by_email_asks_the_case_insensitive_eql_once_and_keeps_only_the_address(
    fake: FakeClock,
) -> None:
    # Documented: `eql:strictdata` is case-sensitive, so it would miss a person stored as
    # Lea.Martin@Example.org. `eql` ignores case but is loose (a longer address that begins
    # with the one asked, a matching token): only the address itself is kept.
    script = Script(
        [
            search_page(
                [
                    {"id": 1, "mail": "Lea.Martin@Example.org"},
                    {"id": 2, "mail": "lea.martin@example.org.uk"},
                    {"id": 3, "mail": "lea@example.org"},
                    {"id": 4, "mail": None},
                ]
            )
        ]
    )
    client = make_client(script, fake)
    found = client.find_contacts_by_email(" lea.martin@example.org ", deadline=deadline(fake))
    assert [c["id"] for c in found] == [1]
    [sent] = [json.loads(r.content)["data"]["advanced_search"] for r in script.requests]
    [[condition]] = [group["$all"] for group in sent["query"]["$all"]]
    assert condition["$condition"] == {
        "attr": "mail",
        "ope": "eql",
        "value": "lea.martin@example.org",
    }


def conditions_of(request: httpx.Request) -> list[str]:
    """The e-mails one search asked, from its `$at_least_one` group."""
    [group] = json.loads(request.content)["data"]["advanced_search"]["query"]["$all"]
    return [c["$condition"]["value"] for c in group["$at_least_one"]]


def test_many_emails_are_looked_up_in_one_search_and_matched_exactly(fake: FakeClock) -> None:
    script = Script(
        [
            search_page(
                [
                    {"id": 1, "mail": "Ana@Example.org"},
                    {"id": 2, "mail": "ana@example.org.uk"},  # loose `eql`: nobody's
                    {"id": 3, "mail": "bob@example.org"},
                    {"id": 4, "mail": "BOB@example.org"},
                ]
            )
        ]
    )
    client = make_client(script, fake)
    found = client.find_contacts_by_emails(
        ["ana@example.org", " Bob@Example.org", "cy@example.org", "ANA@example.org"],
        deadline=deadline(fake),
    )
    assert {k: [c["id"] for c in v] for k, v in found.items()} == {
        "ana@example.org": [1],
        "bob@example.org": [3, 4],
        "cy@example.org": [],
    }
    [request] = script.requests
    sent = json.loads(request.content)["data"]["advanced_search"]
    assert sent["per_page"] == 1000
    assert sent["page"] == 0
    assert conditions_of(request) == ["ana@example.org", "Bob@Example.org", "cy@example.org"]
    [group] = sent["query"]["$all"]
    assert {c["$condition"]["ope"] for c in group["$at_least_one"]} == {"eql"}
    assert client.stats.endpoints["POST /search"].tokens == 1


def test_many_emails_follow_every_page_and_groups_of_the_configured_size(
    fake: FakeClock,
) -> None:
    page = [{"id": i, "mail": f"p{i}@example.org"} for i in range(2)]
    script = Script(
        [search_page(page), search_page([{"id": 9, "mail": "a@example.org"}]), search_page([])]
    )
    client = make_client(script, fake)
    client.search_group_size = 2
    found = client.find_contacts_by_emails(
        ["a@example.org", "p0@example.org", "z@example.org"], deadline=deadline(fake), per_page=2
    )
    assert [c["id"] for c in found["a@example.org"]] == [9]
    assert [c["id"] for c in found["p0@example.org"]] == [0]
    assert found["z@example.org"] == []
    pages = [json.loads(r.content)["data"]["advanced_search"]["page"] for r in script.requests]
    assert pages == [0, 1, 0]  # two pages for the first group, one for the second
    assert [conditions_of(r) for r in script.requests] == [
        ["a@example.org", "p0@example.org"],
        ["a@example.org", "p0@example.org"],
        ["z@example.org"],
    ]
    assert client.stats.endpoints["POST /search"].tokens == 3


def test_a_refused_group_is_halved_and_the_smaller_size_kept(fake: FakeClock) -> None:
    mails = [f"m{i}@example.org" for i in range(5)]
    script = Script(
        [
            problem(422, "too many conditions"),
            problem(422, "too many conditions"),
            *[search_page([{"id": i, "mail": m}]) for i, m in enumerate(mails)],
        ]
    )
    client = make_client(script, fake)
    client.search_group_size = 4
    found = client.find_contacts_by_emails(mails, deadline=deadline(fake))
    assert {k: [c["id"] for c in v] for k, v in found.items()} == {
        m: [i] for i, m in enumerate(mails)
    }
    assert [len(conditions_of(r)) for r in script.requests] == [4, 2, 1, 1, 1, 1, 1]
    assert client.search_group_size == 1


def test_an_address_refused_alone_is_the_callers_error(fake: FakeClock) -> None:
    client = make_client(Script([problem(422), problem(422)]), fake)
    client.search_group_size = 2
    with pytest.raises(QomonValidationError):
        client.find_contacts_by_emails(["a@example.org", "b@example.org"], deadline=deadline(fake))


def test_forms_fall_back_to_the_deprecated_path_once(fake: FakeClock) -> None:
    form = {
        "id": 1,
        "type": "checkbox",
        "label": "Consents",
        "refvalues": [{"id": 11, "value": "consent_email"}],
    }
    script = Script([problem(404), ok({"forms": [form]}), ok({"forms": []})])
    client = make_client(script, fake)
    forms = client.list_forms("consent", deadline=deadline(fake))
    assert forms[0].refvalues[0].value == "consent_email"
    client.list_forms("survey", deadline=deadline(fake))
    paths = [r.url.path for r in script.requests]
    assert paths == ["/v1/forms/type/consent", "/forms/consent", "/forms/survey"]


def test_a_form_we_cannot_read_is_a_malformed_response(fake: FakeClock) -> None:
    client = make_client(Script([ok({"forms": [{"id": "x"}]})]), fake)
    with pytest.raises(QomonMalformedResponse, match="form"):
        client.list_forms("consent", deadline=deadline(fake))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-2", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(header, now=now) == expected


def test_timeouts_never_exceed_the_remaining_budget(fake: FakeClock) -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return ok({"contact": CONTACT})

    client = QomonClient(
        "https://qomon.test",
        "k",
        read_timeout_s=10,
        transport=httpx.MockTransport(answer),
        bucket=TokenBucket(100, 10, clock=fake, sleep=fake.sleep),
    )
    client.get_contact(7, deadline=Deadline.after(2.5, fake))
    assert seen[0]["read"] == pytest.approx(2.5)


def test_delete_accepts_an_empty_204(fake: FakeClock) -> None:
    script = Script([httpx.Response(204)])
    make_client(script, fake).delete_contact(7, deadline=deadline(fake))
    assert script.requests[0].method == "DELETE"


def test_a_replace_that_may_have_reached_qomon_is_not_resent(fake: FakeClock) -> None:
    # Qomon may still apply the first PATCH later; a resend followed by our next write
    # would let that late request overwrite the newer data.
    script = Script([httpx.ReadTimeout("slow"), ok({"contact": CONTACT})])
    client = make_client(script, fake)
    with pytest.raises(QomonTransportError) as caught:
        client.replace_contact(7, {"firstname": "Ana"}, deadline=deadline(fake))
    assert caught.value.retryable
    assert caught.value.request_sent
    assert len(script.requests) == 1


def test_a_replace_is_resent_when_qomon_surely_did_not_take_it(fake: FakeClock) -> None:
    script = Script(
        [httpx.ConnectError("refused"), problem(429), problem(503), ok({"contact": CONTACT})]
    )
    client = make_client(script, fake)
    assert client.replace_contact(7, {"firstname": "Ana"}, deadline=deadline(fake)) == CONTACT
    assert len(script.requests) == 4
