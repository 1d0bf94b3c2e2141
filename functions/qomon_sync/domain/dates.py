"""Qomon date text: read in any precision, always written `YYYY-MM-DDTHH:mm:ss.SSSZ`.

Qomon answers `CreatedAt`/`UpdatedAt` with 6 fractional digits, `lastchange` and entry
dates with 3, birthdates sometimes with none, but documents writes with exactly 3. A
microsecond timestamp must never be echoed back as is, so every date we write goes
through `to_qomon_date`, and dates are compared as instants, never as strings.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

QOMON_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class NotADate(ValueError):
    pass


def parse_instant(value: object) -> datetime:
    """An aware UTC datetime from ISO 8601 text (any precision, `Z` or offset, or a bare
    date); naive text is taken as UTC, as Qomon stores date answers at UTC midnight."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise NotADate(f"not an ISO 8601 date: {value[:40]!r}") from None
    else:
        raise NotADate("not a date")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def to_qomon_date(value: object) -> str:
    """The millisecond form Qomon documents for writes. Truncates (never rounds) below the
    millisecond, so an instant never moves into the next second, or the next day."""
    instant = parse_instant(value)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
