"""Keeps personal data out of anything that leaves the process (logs, metrics, errors).

Qomon's problem bodies may quote the value at fault (an e-mail, a phone number) in
`detail` or `errors[].value`; we never forward those values, and mask what looks like
contact data in free text before it is logged or attached to a dead letter.
"""

from __future__ import annotations

import hashlib
import re

_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+\.[^\s@'\"<>(),;:]+")
# Seven or more digits, possibly split by spaces, dots, dashes or parentheses, optionally
# after a '+': covers national and E.164 phone numbers without eating ids or years.
_PHONE = re.compile(r"\+?\d(?:[\s.\-()]*\d){6,}")


def redact_text(text: str) -> str:
    """Mask e-mail addresses and phone numbers in free text."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


def pseudonym(value: str) -> str:
    """A stable, non-reversible short token for a personal value (for correlating logs).

    Case and surrounding blanks are ignored so that the same e-mail always maps to the same
    token.
    """
    digest = hashlib.sha256(value.strip().casefold().encode("utf-8")).hexdigest()
    return f"h:{digest[:16]}"
