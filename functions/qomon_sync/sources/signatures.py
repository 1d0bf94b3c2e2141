"""HMAC-SHA256 signatures and shared tokens, checked in constant time over the raw bytes.

A missing, malformed or wrong signature is always a rejection, never a pass, and the
detail says which of the three it was (never the value received or expected). Header
values are read as what every sender writes, printable ASCII of a bounded length: anything
else (non-ASCII text, control characters, a lone surrogate from a JSON escape in the
Lambda event, a header of megabytes) is malformed before any decoding or comparison.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StringConstraints, field_validator, model_validator

from qomon_sync.sources.base import Unauthenticated, WebhookError, WebhookRequest
from qomon_sync.sources.values import Config

BodyReader = Callable[[], Any]
"""The delivery's body, parsed as its source reads it (for a token inside the body)."""
SHA256_BYTES = 32
MAX_HEADER_CHARS = 4096
"""Far above any signature, token or id a sender writes (API Gateway takes 10 KB in all)."""
_HEADER_TEXT = re.compile(r"[\t\x20-\x7e]*")


def header(headers: Mapping[str, str], name: str) -> str:
    """The header's value, blanks around it removed; Unauthenticated naming the header when
    it is missing, blank, or not printable ASCII of at most MAX_HEADER_CHARS."""
    value = headers.get(name.lower(), "")
    if not isinstance(value, str) or not value.strip():
        raise Unauthenticated(f"missing header {name}", field=name)
    value = value.strip()
    if len(value) > MAX_HEADER_CHARS:
        raise Unauthenticated(
            f"malformed header {name} (longer than {MAX_HEADER_CHARS} characters)", field=name
        )
    if not _HEADER_TEXT.fullmatch(value):
        raise Unauthenticated(f"malformed header {name} (not printable ASCII)", field=name)
    return value


def decode_sha256_base64(text: str, header_name: str, expected_form: str) -> bytes:
    """The 32 bytes of a base64 HMAC-SHA256, or Unauthenticated saying the header is
    malformed (strict base64: no stray characters, exact length)."""
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != SHA256_BYTES:
        raise Unauthenticated(
            f"malformed header {header_name} (expected {expected_form})", field=header_name
        )
    return digest


def require_secret(secret: str) -> None:
    if not secret:
        raise Unauthenticated("no secret is configured for this source, so nothing can pass")


def check_token(received: str, secret: str, header_name: str) -> None:
    if not hmac.compare_digest(received.encode("utf-8"), secret.encode("utf-8")):
        raise Unauthenticated(f"wrong token in {header_name}", field=header_name)


# -- the table: each scheme a sender uses, checked and signed the same way -----------------
#
# A source's `auth` is one of these, from the preset's code or from the mapping file. Each
# checks a delivery (`check`) and, for local mode, the demo and the tests, signs one as
# the sender would (`sign`): one description, so the signer cannot drift from the check.
# Secrets and signatures are compared with hmac.compare_digest and never logged nor quoted.

HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")]
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
SIGNED_PARTS = ("method", "uri", "body", "timestamp")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_DIGITS = re.compile(r"[0-9]{1,16}")
_HEX = re.compile(r"[0-9a-fA-F]{64}")
# The characters HubSpot's v3 scheme decodes in the request URI before signing it.
_URI_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


class HmacAuth(Config):
    """HMAC-SHA256 in a header, hex or base64 (after an optional prefix such as
    `sha256=`), over the body or over a canonical string: `signed` is a template of
    `{method}`, `{uri}` (the URL called), `{body}` (the raw bytes) and `{timestamp}` (the
    timestamp header's value). With `timestamp_header`, a delivery more than `window_s`
    seconds from its receipt is refused (a replay, or a clock far off)."""

    scheme: Literal["hmac-sha256"]
    header: HeaderName
    encoding: Literal["hex", "base64"] = "hex"
    prefix: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{0,20}$")] = ""
    signed: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "{body}"
    timestamp_header: HeaderName | None = None
    timestamp_unit: Literal["s", "ms"] = "s"
    window_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    decoded_uri: bool = False
    """Decode `%3A`, `%2F`, `%3F`... in `{uri}` before signing (HubSpot's v3 rule)."""

    @field_validator("signed")
    @classmethod
    def _known_parts(cls, signed: str) -> str:
        for name in _PLACEHOLDER.findall(signed):
            if name not in SIGNED_PARTS:
                known = ", ".join(f"{{{part}}}" for part in SIGNED_PARTS)
                raise ValueError(f"unknown placeholder `{{{name}}}` (known: {known})")
        return signed

    @model_validator(mode="after")
    def _timestamp_needs_its_header(self) -> HmacAuth:
        if "{timestamp}" in self.signed and self.timestamp_header is None:
            raise ValueError("`{timestamp}` is signed: name its `timestamp_header`")
        return self

    def check(self, request: WebhookRequest, secret: str, body: BodyReader) -> None:
        require_secret(secret)
        value = header(request.headers, self.header)
        stamp = self._timestamp(request) if self.timestamp_header else ""
        received = self._decode(value)
        expected = hmac.new(secret.encode("utf-8"), self.message(request, stamp), hashlib.sha256)
        if not hmac.compare_digest(received, expected.digest()):
            raise Unauthenticated(
                f"wrong signature in {self.header}: the delivery was not signed with this "
                "source's secret",
                field=self.header,
            )

    def _decode(self, value: str) -> bytes:
        expected = f"{self.prefix}<{self.encoding} HMAC-SHA256>"
        if not value.startswith(self.prefix):
            raise Unauthenticated(
                f"malformed header {self.header} (expected {expected})", field=self.header
            )
        text = value[len(self.prefix) :]
        if self.encoding == "base64":
            return decode_sha256_base64(text, self.header, expected)
        if not _HEX.fullmatch(text):
            raise Unauthenticated(
                f"malformed header {self.header} (expected {expected})", field=self.header
            )
        return bytes.fromhex(text)

    def _timestamp(self, request: WebhookRequest) -> str:
        name = self.timestamp_header or ""
        stamp = header(request.headers, name)
        if not _DIGITS.fullmatch(stamp):
            raise Unauthenticated(
                f"malformed header {name} (expected Unix {self._unit_name()})", field=name
            )
        seconds = int(stamp) / (1000 if self.timestamp_unit == "ms" else 1)
        received_at = request.received_at
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        if abs(received_at.timestamp() - seconds) > self.window_s:
            raise Unauthenticated(
                f"stale timestamp in {name}: more than {self.window_s} seconds from the time "
                "of receipt (a replay, or a clock far off)",
                field=name,
            )
        return stamp

    def _unit_name(self) -> str:
        return "milliseconds" if self.timestamp_unit == "ms" else "seconds"

    def message(self, request: WebhookRequest, stamp: str) -> bytes:
        """The bytes signed: the template with the request's parts, the body as received."""
        uri = request.uri
        if self.decoded_uri:
            for encoded, char in _URI_DECODED.items():
                uri = uri.replace(encoded, char).replace(encoded.lower(), char)
        parts = {"method": request.method.upper(), "uri": uri, "timestamp": stamp}
        pieces: list[bytes] = []
        position = 0
        for match in _PLACEHOLDER.finditer(self.signed):
            pieces.append(self.signed[position : match.start()].encode("utf-8"))
            name = match.group(1)
            pieces.append(request.body if name == "body" else parts[name].encode("utf-8"))
            position = match.end()
        pieces.append(self.signed[position:].encode("utf-8"))
        return b"".join(pieces)

    def sign(self, secret: str, request: WebhookRequest) -> WebhookRequest:
        stamp = ""
        headers = dict(request.headers)
        if self.timestamp_header:
            seconds = request.received_at.timestamp()
            stamp = str(int(seconds * 1000) if self.timestamp_unit == "ms" else int(seconds))
            headers[self.timestamp_header.lower()] = stamp
        digest = hmac.new(secret.encode("utf-8"), self.message(request, stamp), hashlib.sha256)
        encoded = (
            digest.hexdigest()
            if self.encoding == "hex"
            else base64.b64encode(digest.digest()).decode("ascii")
        )
        headers[self.header.lower()] = self.prefix + encoded
        return replace(request, headers=headers)


class TokenAuth(Config):
    """A shared token in a header: `Authorization: Bearer <token>` (bearer), `Authorization:
    Basic <base64 of user:password>` (basic: the secret is `user:password`), or the header's
    whole value (token)."""

    scheme: Literal["bearer", "basic", "token"]
    header: HeaderName = "Authorization"

    def check(self, request: WebhookRequest, secret: str, body: BodyReader) -> None:
        require_secret(secret)
        value = header(request.headers, self.header)
        if self.scheme == "token":
            check_token(value, secret, self.header)
            return
        word, _, token = value.partition(" ")
        token = token.strip()
        if word.lower() != self.scheme or not token or " " in token:
            raise Unauthenticated(
                f"malformed header {self.header} (expected `{self.scheme.title()} <token>`)",
                field=self.header,
            )
        if self.scheme == "basic":
            try:
                token = base64.b64decode(token, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise Unauthenticated(
                    f"malformed header {self.header} (expected `Basic <base64>`)",
                    field=self.header,
                ) from None
        check_token(token, secret, self.header)

    def sign(self, secret: str, request: WebhookRequest) -> WebhookRequest:
        if self.scheme == "token":
            value = secret
        elif self.scheme == "basic":
            value = "Basic " + base64.b64encode(secret.encode("utf-8")).decode("ascii")
        else:
            value = f"Bearer {secret}"
        return replace(request, headers={**request.headers, self.header.lower(): value})


class QueryAuth(Config):
    """A secret in the URL's query (`?secret=...`), for senders that sign nothing (Mailchimp,
    Action Network): anyone who has the URL can send. With `answers_get`, a GET with the
    right secret is answered 200, as the sender checks the URL when the webhook is saved."""

    scheme: Literal["query"]
    param: ParamName = "secret"
    answers_get: bool = False

    def check(self, request: WebhookRequest, secret: str, body: BodyReader) -> None:
        require_secret(secret)
        value = request.query.get(self.param)
        if not isinstance(value, str) or not value:
            raise Unauthenticated(f"missing query parameter {self.param}", field=self.param)
        check_token(value, secret, f"query parameter {self.param}")

    def sign(self, secret: str, request: WebhookRequest) -> WebhookRequest:
        return replace(request, query={**request.query, self.param: secret})


class BodyTokenAuth(Config):
    """A shared token inside the body, at `field` (a dotted path): NationBuilder's `token`."""

    scheme: Literal["body-token"]
    field: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")]

    def check(self, request: WebhookRequest, secret: str, body: BodyReader) -> None:
        require_secret(secret)
        try:
            value: Any = body()
        except WebhookError:
            raise Unauthenticated(
                f"the body cannot be read, so its `{self.field}` cannot be checked",
                field=self.field,
            ) from None
        for part in self.field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str) or not value:
            raise Unauthenticated(f"missing token `{self.field}` in the body", field=self.field)
        check_token(value, secret, f"`{self.field}`")

    def sign(self, secret: str, request: WebhookRequest) -> WebhookRequest:
        """The body's `field` set to the token (a JSON body: the only kind that has one)."""
        payload = json.loads(request.body)
        target = payload
        *parents, last = self.field.split(".")
        for part in parents:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return request  # no object to hold a token: sent as it is (and refused)
        target[last] = secret
        return replace(request, body=json.dumps(payload, ensure_ascii=False).encode("utf-8"))


Auth = Annotated[HmacAuth | TokenAuth | QueryAuth | BodyTokenAuth, Discriminator("scheme")]
"""How a source's deliveries are authenticated: one row of the table above."""
