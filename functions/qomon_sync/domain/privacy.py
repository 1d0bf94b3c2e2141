"""Keeps personal data out of anything that leaves the process (logs, metrics, errors).

Qomon's problem bodies may quote the value at fault (an e-mail, a phone number) in
`detail` or `errors[].value`; we never forward those values, and mask what looks like
contact data in free text before it is logged or attached to a dead letter. A refusal
leaves the process only through `redact_refusal`: its detail and its fields masked, tag
paths (which name a tag, and a tag says what a person is) reduced to a digest.

Pseudonyms (the e-mail's message group, log correlation) are keyed: an HMAC-SHA256 with
a per-deployment secret, so that nobody can re-identify an address by hashing a list of
candidates. The handlers say where the key comes from (`use_pseudonym_key`): the stack's
generated secret in AWS, a key of its own in local mode.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from qomon_sync.domain.refusal import Refusal

_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+\.[^\s@'\"<>(),;:]+")
# Seven or more digits, possibly split by spaces, dots, dashes or parentheses, optionally
# after a '+': covers national and E.164 phone numbers without eating ids or years.
_PHONE = re.compile(r"\+?\d(?:[\s.\-()]*\d){6,}")


def redact_text(text: str) -> str:
    """Mask e-mail addresses and phone numbers in free text."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


class PseudonymKeyMissing(RuntimeError):
    """No key was given: a pseudonym made without one could be reversed by guessing."""


_key_source: Callable[[], str] | None = None


def use_pseudonym_key(source: Callable[[], str]) -> None:
    """Where pseudonyms take their key from (called on each use: the caller caches)."""
    global _key_source  # noqa: PLW0603 - one key per process, as one deployment has one
    _key_source = source


def pseudonym(value: str) -> str:
    """A stable, non-reversible short token for a personal value (for correlating logs).

    Case and surrounding blanks are ignored so that the same e-mail always maps to the same
    token; the token is keyed, so it cannot be found again from a guessed address.
    """
    if _key_source is None:
        raise PseudonymKeyMissing("no pseudonym key configured")
    key = _key_source().encode("utf-8")
    if len(key) < 16:
        raise PseudonymKeyMissing("the pseudonym key is shorter than 16 characters")
    message = value.strip().casefold().encode("utf-8")
    return f"h:{hmac.new(key, message, hashlib.sha256).hexdigest()[:16]}"


R = TypeVar("R", bound=Refusal)

_TAG_PATH = re.compile(r"^tags\[(.*)\]$")


def redact_path(path: str) -> str:
    """A field path fit for logs: a tag's name becomes a digest, like a note's text."""
    tag = _TAG_PATH.match(path)
    if tag is not None:
        digest = hashlib.sha256(tag.group(1).encode("utf-8")).hexdigest()[:12]
        return f"tags[{digest}]"
    return redact_text(path)


def redact_paths(paths: Iterable[str]) -> list[str]:
    return [redact_path(path) for path in paths]


def redact_refusal(refusal: R) -> R:
    """The one redaction of a refusal, applied wherever it leaves the process."""
    return replace(
        refusal, detail=redact_text(refusal.detail), fields=tuple(redact_paths(refusal.fields))
    )
