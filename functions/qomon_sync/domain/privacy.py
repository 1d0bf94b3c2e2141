"""Keeps personal data out of anything that leaves the process (logs, metrics, errors).

Qomon's problem bodies may quote the value at fault (an e-mail, a phone number) in
`detail` or `errors[].value`; we never forward those values, and mask what looks like
contact data in free text before it is logged or attached to a dead letter. A refusal
leaves the process only through `redact_refusal`: its detail and its fields masked, tag
paths (which name a tag, and a tag says what a person is) reduced to a digest.

Pseudonyms (the e-mail's message group, log correlation) are keyed: an HMAC-SHA256 with
a per-deployment secret, so that nobody can re-identify an address by hashing a list of
candidates. Whoever starts a process builds its `Pseudonyms` from that key and passes it
on: the stack's generated secret in AWS, a key of its own in local mode.
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
    """No usable key: a pseudonym made without one could be reversed by guessing."""


MIN_KEY_LENGTH = 16


class Pseudonyms:
    """Keyed pseudonyms of one deployment: built where a process starts (a Lambda's cold
    start from the stack's secret, local mode from its state folder, an operators'
    command from the stack it looks at) and passed to what needs one. Nothing here is
    process-global: two deployments' keys can live side by side in one process.

    `key` is the key itself, or what reads it when a pseudonym is first needed (so a
    process that never meets an e-mail never reads the secret); it is read on each use,
    and the reader caches (a rotated key is picked up as the reader refreshes).
    """

    def __init__(self, key: str | Callable[[], str]) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonyms(<key hidden>)"

    def check(self) -> None:
        """Read the key now: raise what a first pseudonym would, before any work starts."""
        self._read_key()

    def _read_key(self) -> bytes:
        key = (self._key if isinstance(self._key, str) else self._key()).encode("utf-8")
        if len(key) < MIN_KEY_LENGTH:
            raise PseudonymKeyMissing(
                f"the pseudonym key is shorter than {MIN_KEY_LENGTH} characters"
            )
        return key

    def __call__(self, value: str) -> str:
        """A stable, non-reversible short token for a personal value (for correlating logs).

        Case and surrounding blanks are ignored so that the same e-mail always maps to the
        same token; the token is keyed, so it cannot be found again from a guessed address.
        """
        key = self._read_key()
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
