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
import re
from collections.abc import Mapping

from qomon_sync.sources.base import Unauthenticated

SHA256_BYTES = 32
MAX_HEADER_CHARS = 4096
"""Far above any signature, token or id a sender writes (API Gateway takes 10 KB in all)."""
_HEADER_TEXT = re.compile(r"[\t\x20-\x7e]*")


def hmac_sha256(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()


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


def check_hmac(received: bytes, secret: str, body: bytes, header_name: str) -> None:
    if not hmac.compare_digest(received, hmac_sha256(secret, body)):
        raise Unauthenticated(
            f"wrong signature in {header_name}: the body was not signed with this source's secret",
            field=header_name,
        )


def check_token(received: str, secret: str, header_name: str) -> None:
    if not hmac.compare_digest(received.encode("utf-8"), secret.encode("utf-8")):
        raise Unauthenticated(f"wrong token in {header_name}", field=header_name)
