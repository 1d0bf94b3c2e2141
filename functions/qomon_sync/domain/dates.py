"""Qomon date text: read in any precision, always written `YYYY-MM-DDTHH:mm:ss.SSSZ`.

Qomon answers `CreatedAt`/`UpdatedAt` with 6 fractional digits, `lastchange` and entry
dates with 3, birthdates sometimes with none, but documents writes with exactly 3 and a
four-digit year. A microsecond timestamp must never be echoed back as is, so every date
we write goes through `to_qomon_date`, and dates are compared as instants, never as
strings. Years before 1000 are real (Go's zero time `0001-01-01T00:00:00Z` is what an
unset date reads as; a typed-in `0969` birth year too) and keep their four digits.
Qomon quirks handled here: see docs/qomon-api.md#dates-and-timestamps.
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is in year 0 in UTC, which no date type can hold.
        raise NotADate("a date outside the years 1 to 9999 in UTC") from None


def to_qomon_date(value: object) -> str:
    """The millisecond form Qomon documents for writes. Truncates (never rounds) below the
    millisecond, so an instant never moves into the next second, or the next day."""
    at = parse_instant(value)
    # Not strftime: its %Y does not pad years before 1000 on every platform.
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T"
        f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}.{at.microsecond // 1000:03d}Z"
    )
