"""Hostile requests (once the probe's; test_hostile_requests.py sends them): header
tricks, path traversal, wrong methods, oversized bodies, deep nesting, characters the
queue refuses and broken bodies, sent over a raw HTTP connection (no client normalises
the path or merges the headers), each with the answer it must get: a 4xx problem JSON
(RFC 7807), never a 2xx, never a 5xx except a 503 when the queue is down (not caused here).

A few requests go beyond what local mode's HTTP server (playing API Gateway) takes
(a header over 8 KiB, a body over 10 MiB): that server refuses them itself before the
ingest sees them, with a 4xx of its own that is not problem JSON, as API Gateway would;
they are marked so and reported apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from qomon_sync_dev.signing import sign, standard_webhooks
from tests.probe.logs import Personal
from tests.probe.traffic import TrafficBuilder, as_body, fixture

HEADER_TRICK = "header trick"
PATH_TRAVERSAL = "path traversal"
WRONG_METHOD = "wrong method"
OVERSIZED = "oversized body"
DEEP_NESTING = "deeply nested JSON"
REFUSED_CHARACTER = "character the queue refuses"
BAD_BODY = "broken body"
HOSTILE_KINDS = (
    HEADER_TRICK,
    PATH_TRAVERSAL,
    WRONG_METHOD,
    OVERSIZED,
    DEEP_NESTING,
    REFUSED_CHARACTER,
    BAD_BODY,
)
WRONG_GENERIC_SECRET = "whsec_" + base64.b64encode(b"not the secret of this deployment").decode()
NESTING = 100_000
"""Lists this deep are 200 KB: under the queue's limit, so the depth check must answer."""
OBJECT_NESTING = 40_000
OVERSIZED_BYTES = 300_000
"""Over SQS's 256 KiB: the ingest must answer 413."""
HTTP_LAYER_HEADER = 9_000
HTTP_LAYER_BODY = 11 * 1024 * 1024

Header = tuple[str, bytes]


@dataclass(frozen=True)
class Hostile:
    kind: str
    label: str
    method: str
    path: str
    headers: tuple[Header, ...]
    body: bytes = b""
    http_layer: bool = False
    """Beyond local mode's HTTP server's limits: refused before the ingest, not in JSON."""


@dataclass(frozen=True)
class HostileAnswer:
    request: Hostile
    status: int
    problem_json: bool
    title: str
    verdict: str
    """"ok", "refused by the HTTP server", or what is wrong."""

    @property
    def ok(self) -> bool:
        return self.verdict in ("ok", "refused by the HTTP server")


def _h(headers: Mapping[str, str]) -> tuple[Header, ...]:
    return tuple((k, v.encode("utf-8")) for k, v in headers.items())


JSON = ("content-type", b"application/json")


@dataclass
class HostileBuilder:
    traffic: TrafficBuilder
    secrets: Mapping[str, str]
    personal: Personal
    requests: list[Hostile] = field(default_factory=list)

    def add(
        self,
        kind: str,
        label: str,
        body: bytes,
        headers: tuple[Header, ...],
        *,
        path: str = "/webhooks/generic",
        method: str = "POST",
        http_layer: bool = False,
    ) -> None:
        self.requests.append(Hostile(kind, label, method, path, (JSON, *headers), body, http_layer))

    def generic_body(self, **changes: Any) -> bytes:
        event = self.traffic.change_event("seed by id")
        event.update(changes)
        return as_body(event)

    def signed(self, source: str, body: bytes) -> tuple[Header, ...]:
        secret = self.secrets[source]
        if source == "generic":
            return _h(_standard_webhooks_bytes(secret, body))
        return _h(sign(source, secret, body))

    def build(self) -> list[Hostile]:
        self.header_tricks()
        self.form_header_tricks()
        self.paths()
        self.methods()
        self.oversized()
        self.nesting()
        self.refused_characters()
        self.broken_bodies()
        return self.requests

    def header_tricks(self) -> None:
        body = self.generic_body()
        good = dict(standard_webhooks(self.secrets["generic"], body))
        stamp = good["webhook-timestamp"]
        signature = good["webhook-signature"]

        def without(name: str) -> tuple[Header, ...]:
            return _h({k: v for k, v in good.items() if k != name})

        def stamped(value: str) -> tuple[Header, ...]:
            return _h({**good, "webhook-timestamp": value})

        add = self.add
        add(HEADER_TRICK, "generic: no signature headers", body, ())
        for name in good:
            add(HEADER_TRICK, f"generic: {name} missing", body, without(name))
        for value in (
            "999999999999",
            "-1",
            "1e9",
            "abc",
            " ",
            "0x6553f100",
            "\u0661\u0667" + "\u0660" * 8,  # Arabic-Indic digits, which int() reads
            stamp + ".5",
        ):
            add(HEADER_TRICK, f"generic: webhook-timestamp {value!r}", body, stamped(value))
        for label, at in (("stale", -3600), ("future", 3600)):
            when = datetime.now(UTC) + timedelta(seconds=at)
            headers = standard_webhooks(self.secrets["generic"], body, at=when)
            add(HEADER_TRICK, f"generic: {label} timestamp, signed", body, _h(headers))
        wrong = standard_webhooks(WRONG_GENERIC_SECRET, body, msg_id=good["webhook-id"])
        add(HEADER_TRICK, "generic: signed with another secret", body, _h(wrong))
        other = wrong["webhook-signature"]
        duplicated = (*without("webhook-signature"), ("webhook-signature", other.encode()))
        duplicated += (("webhook-signature", b"v1," + b"A" * 43 + b"="),)
        add(HEADER_TRICK, "generic: webhook-signature twice (both wrong)", body, duplicated)
        big = "v1," + "A" * 8000
        add(HEADER_TRICK, "generic: 8 KB signature", body, _h({**good, "webhook-signature": big}))
        huge = "v1," + "A" * HTTP_LAYER_HEADER
        add(
            HEADER_TRICK,
            "generic: 9 KB signature (over the HTTP server's header limit)",
            body,
            _h({**good, "webhook-signature": huge}),
            http_layer=True,
        )
        for value in (
            "v1,é" + signature[4:],
            "v1,\u200b" + signature[3:],
            "v2," + signature[3:],
            "v1,",
        ):
            add(
                HEADER_TRICK,
                f"generic: signature {value[:6]!r}...",
                body,
                _h({**good, "webhook-signature": value}),
            )
        add(HEADER_TRICK, "generic: body changed after signing", body + b" ", _h(good))
        add(
            HEADER_TRICK,
            "generic: non-ASCII webhook-id",
            body,
            _h({**good, "webhook-id": "msg_é" + uuid.uuid4().hex}),
        )

    def form_header_tricks(self) -> None:
        typeform = self.traffic.typeform(0).body
        tally = self.traffic.tally(0).body
        brevo = as_body(self.traffic.brevo_event("unsubscribed"))
        digest = hmac.new(b"wrong secret", typeform, hashlib.sha256).digest()
        wrong = base64.b64encode(digest).decode()
        cases: list[tuple[str, str, bytes, dict[str, str] | tuple[Header, ...]]] = [
            ("typeform", "no Typeform-Signature", typeform, {}),
            ("typeform", "sha256= empty", typeform, {"typeform-signature": "sha256="}),
            ("typeform", "sha1 scheme", typeform, {"typeform-signature": "sha1=" + wrong}),
            ("typeform", "not base64", typeform, {"typeform-signature": "sha256=!!!!"}),
            ("typeform", "wrong secret", typeform, {"typeform-signature": "sha256=" + wrong}),
            ("typeform", "non-ASCII", typeform, {"typeform-signature": "sha256=é" + wrong}),
            ("typeform", "8 KB", typeform, {"typeform-signature": "sha256=" + "A" * 8000}),
            (
                "typeform",
                "twice (both wrong)",
                typeform,
                (
                    ("typeform-signature", f"sha256={wrong}".encode()),
                    ("typeform-signature", b"sha256=" + b"B" * 44),
                ),
            ),
            ("tally", "no Tally-Signature", tally, {}),
            ("tally", "wrong secret", tally, {"tally-signature": wrong}),
            ("tally", "non-ASCII", tally, {"tally-signature": "é" + wrong}),
            ("tally", "8 KB", tally, {"tally-signature": "A" * 8000}),
            (
                "tally",
                "Typeform's signature scheme",
                tally,
                sign("typeform", self.secrets["tally"], tally),
            ),
            ("brevo", "no Authorization", brevo, {}),
            ("brevo", "Bearer with no token", brevo, {"authorization": "Bearer "}),
            ("brevo", "Basic scheme", brevo, {"authorization": "Basic " + self.secrets["brevo"]}),
            ("brevo", "wrong token", brevo, {"authorization": "Bearer not-the-token"}),
            ("brevo", "non-ASCII token", brevo, {"authorization": "Bearer jéton"}),
            ("brevo", "8 KB token", brevo, {"authorization": "Bearer " + "t" * 8000}),
            (
                "brevo",
                "twice (both wrong)",
                brevo,
                (("authorization", b"Bearer wrong-one"), ("authorization", b"Bearer wrong-two")),
            ),
            (
                "tally",
                "Typeform's signature on the Tally path",
                typeform,
                sign("typeform", self.secrets["typeform"], typeform),
            ),
        ]
        for source, label, body, headers in cases:
            encoded = _h(headers) if isinstance(headers, dict) else headers
            self.add(HEADER_TRICK, f"{source}: {label}", body, encoded, path=f"/webhooks/{source}")

    def paths(self) -> None:
        for path in (
            "/webhooks/../x",
            "/webhooks/%2e%2e/",
            "/webhooks/%2e%2e%2fgeneric",
            "/webhooks/..%2f..%2fetc%2fpasswd",
            "/webhooks/generic/../../etc/passwd",
            "/webhooks/generic/..",
            "/webhooks/unknown",
            "/webhooks/GENERIC",
            "/webhooks/generic/extra",
            "/webhooks//generic",
            "/webhooks/generic%00",
            "/webhooks/generic%2f",
            "/webhooks/",
            "/webhooks",
            "/",
            "/webhooks/%ff%fe",
            "/webhooks/" + "a" * 2000,
        ):
            body = self.generic_body()
            self.add(PATH_TRAVERSAL, path[:60], body, self.signed("generic", body), path=path)

    def methods(self) -> None:
        for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"):
            body = self.generic_body()
            self.add(WRONG_METHOD, method, body, self.signed("generic", body), method=method)

    def oversized(self) -> None:
        padding = self.text("note", "Note énorme {token} ") * (OVERSIZED_BYTES // 20)
        body = self.generic_body(notes=[{"data": padding[:OVERSIZED_BYTES]}])
        self.add(OVERSIZED, "generic: 300 KB, signed", body, self.signed("generic", body))
        self.add(OVERSIZED, "generic: 2 MB, unsigned", b"[" + b"0," * 1_000_000 + b"0]", ())
        typeform = fixture("typeform", "form-response.json")
        typeform["form_response"]["hidden"]["padding"] = "x" * OVERSIZED_BYTES
        body = as_body(typeform)
        self.add(
            OVERSIZED,
            "typeform: 300 KB, signed",
            body,
            self.signed("typeform", body),
            path="/webhooks/typeform",
        )
        self.add(
            OVERSIZED,
            "generic: 11 MB (over the HTTP server's body limit)",
            b" " * HTTP_LAYER_BODY,
            (),
            http_layer=True,
        )

    def nesting(self) -> None:
        deep = b"[" * NESTING + b"]" * NESTING
        self.add(
            DEEP_NESTING,
            "generic: 100,000 nested lists, signed",
            deep,
            self.signed("generic", deep),
        )
        body = self.generic_body(contact={"mail": "<nested>"})
        nested = b'{"a":' * 5000 + b'"x"' + b"}" * 5000
        body = body.replace(b'"<nested>"', nested, 1)
        self.add(
            DEEP_NESTING,
            "generic: contact nested 5,000 deep, signed",
            body,
            self.signed("generic", body),
        )
        for source in ("typeform", "tally", "brevo"):
            objects = b'{"a":' * OBJECT_NESTING + b"1" + b"}" * OBJECT_NESTING
            self.add(
                DEEP_NESTING,
                f"{source}: 40,000 nested objects, signed",
                objects,
                self.signed(source, objects),
                path=f"/webhooks/{source}",
            )
        self.add(DEEP_NESTING, "generic: 100,000 nested lists, unsigned", deep, ())

    def text(self, kind: str, template: str) -> str:
        return self.traffic.text(kind, template)

    def refused_characters(self) -> None:
        for label, char in (
            ("U+FFFF", "\uffff"),
            ("U+FFFE", "\ufffe"),
            ("NUL", "\u0000"),
            ("U+0008", "\b"),
        ):
            note = self.text("note", "Note refusée {token} ") + char
            raw = self.generic_body(notes=[{"data": note}])
            self.add(
                REFUSED_CHARACTER,
                f"generic: {label} in a note, signed",
                raw,
                self.signed("generic", raw),
            )
        street = self.text("address", "Impasse {token} ")
        event = json.loads(self.generic_body())
        event["set"]["address"] = {"street": street + "\uffff"}
        body = json.dumps(event, ensure_ascii=True).encode()  # written `\uffff` in the JSON
        self.add(
            REFUSED_CHARACTER,
            "generic: U+FFFF escaped as \\uffff in an address, signed",
            body,
            self.signed("generic", body),
        )
        first = self.text("first_name", "Prénom{token}")
        escaped = self.generic_body(set={"firstname": first + "<surrogate>"})
        escaped = escaped.replace(b"<surrogate>", b"\\ud800", 1)
        self.add(
            REFUSED_CHARACTER,
            "generic: a lone surrogate, signed",
            escaped,
            self.signed("generic", escaped),
        )
        typeform = fixture("typeform", "form-response.json")
        for answer in typeform["form_response"]["answers"]:
            if answer["field"]["ref"] == "commentaire":
                answer["text"] = self.text("answer_text", "Commentaire {token} ") + "\uffff"
        body = as_body(typeform)
        self.add(
            REFUSED_CHARACTER,
            "typeform: U+FFFF in an answer, signed",
            body,
            self.signed("typeform", body),
            path="/webhooks/typeform",
        )
        tally = fixture("tally", "form-response.json")
        for item in tally["data"]["fields"]:
            if item["key"] == "question_3EKz4n":
                item["value"] = self.text("answer_text", "Profession {token} ") + "\ufffe"
        body = as_body(tally)
        self.add(
            REFUSED_CHARACTER,
            "tally: U+FFFE in an answer, signed",
            body,
            self.signed("tally", body),
            path="/webhooks/tally",
        )
        brevo = self.traffic.brevo_event("hard_bounce")
        brevo["email"] = self.text("email", "{token}\uffff@example.net")
        body = as_body(brevo)
        self.add(
            REFUSED_CHARACTER,
            "brevo: U+FFFF in the e-mail, signed",
            body,
            self.signed("brevo", body),
            path="/webhooks/brevo",
        )

    def broken_bodies(self) -> None:
        mail = self.text("email", "{token}@example.net")
        for label, body in (
            ("malformed JSON", ('{"event_id": "x", "contact": {"mail": "' + mail + '"').encode()),
            ("not UTF-8", b'{"event_id": "\xff\xfe"}'),
            ("NaN", self.generic_body().replace(b'"pinned": false', b'"pinned": NaN', 1)),
            ("a 4,000-digit number", self.generic_body(contact={"id": int("9" * 4000)})),
            ("empty", b""),
            ("no contact", self.generic_body(contact=None)),
            ("51 events", as_body([self.traffic.change_event("seed by id") for _ in range(51)])),
        ):
            self.add(BAD_BODY, f"generic: {label}, signed", body, self.signed("generic", body))


def _standard_webhooks_bytes(secret: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks' signature over any bytes (its package signs text only)."""
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def send_hostile(host: str, port: int, request: Hostile, timeout: float = 30.0) -> HostileAnswer:
    """One request on its own connection, path and headers exactly as given."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.putrequest(request.method, request.path, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value)
        connection.putheader("content-length", str(len(request.body)))
        connection.endheaders(request.body or None)
        response = connection.getresponse()
        status = response.status
        content_type = response.getheader("content-type") or ""
        payload = response.read()
    except (ConnectionError, http.client.HTTPException, TimeoutError) as error:
        # A server that closes on a request it will not read is a refusal, not an answer.
        return HostileAnswer(request, 0, False, type(error).__name__, _judge(request, 0, False))
    finally:
        connection.close()
    problem, title = _problem(payload, content_type, status, head=request.method == "HEAD")
    return HostileAnswer(request, status, problem, title, _judge(request, status, problem, title))


def _problem(payload: bytes, content_type: str, status: int, *, head: bool) -> tuple[bool, str]:
    if "application/problem+json" not in content_type:
        return False, ""
    if head:
        return True, ""  # a HEAD answer has no body: its type is all there is
    try:
        body = json.loads(payload)
    except ValueError:
        return False, ""
    if not isinstance(body, dict):
        return False, ""
    title = str(body.get("title", ""))
    return body.get("status") == status and bool(title), title


def _judge(request: Hostile, status: int, problem: bool, title: str = "") -> str:
    verdict = "ok" if problem else "a 4xx that is not problem JSON"
    if 200 <= status < 300:
        verdict = "ACCEPTED (a 2xx)"
    elif status == 503 and title == "Queue unavailable":
        verdict = "ok"
    elif status >= 500:
        verdict = f"A {status} (a 5xx)"
    elif request.http_layer and (400 <= status < 500 or status == 0):
        verdict = "refused by the HTTP server"
    elif status == 0:
        verdict = "connection closed without an answer"
    elif not 400 <= status < 500:
        verdict = f"a {status}"
    return verdict


def send_all(
    host: str,
    port: int,
    requests: list[Hostile],
    *,
    deadline: float,
    on_answer: Callable[[HostileAnswer], None] | None = None,
) -> list[HostileAnswer]:
    answers = []
    for request in requests:
        if time.monotonic() > deadline:
            break
        answer = send_hostile(host, port, request)
        answers.append(answer)
        if on_answer is not None:
            on_answer(answer)
    return answers


def hostile_figures(answers: list[HostileAnswer], problems: list[str]) -> dict[str, Any]:
    by_kind: dict[str, Counter[str]] = {kind: Counter() for kind in HOSTILE_KINDS}
    for answer in answers:
        by_kind[answer.request.kind][str(answer.status)] += 1
    wrong = [a for a in answers if not a.ok]
    for answer in wrong[:10]:
        problems.append(
            f"hostile {answer.request.kind} `{answer.request.label}`: {answer.verdict} "
            f"({answer.status} {answer.title})".rstrip()
        )
    if len(wrong) > 10:
        problems.append(f"... and {len(wrong) - 10} more hostile requests wrongly answered")
    return {
        "sent": len(answers),
        "by_kind": {k: dict(sorted(v.items())) for k, v in by_kind.items() if v},
        "problem_json_4xx": sum(1 for a in answers if a.verdict == "ok" and a.status < 500),
        "refused_by_the_http_server": sum(
            1 for a in answers if a.verdict == "refused by the HTTP server"
        ),
        "accepted_2xx": sum(1 for a in answers if 200 <= a.status < 300),
        "answered_5xx": sum(1 for a in answers if a.status >= 500),
        "wrongly_answered": len(wrong),
        "answers": [
            {
                "kind": a.request.kind,
                "request": a.request.label,
                "method": a.request.method,
                "status": a.status,
                "title": a.title,
                "verdict": a.verdict,
            }
            for a in answers
        ],
    }
