"""What every part of the stand-in shares: its errors and its value helpers (timestamps
in Qomon's precisions, JSON integers and numbers)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

JsonObject = dict[str, Any]
_MILLIS_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


# -- errors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One item of a problem answer's `errors[]`."""

    location: str
    message: str
    value: Any = None

    def as_json(self) -> JsonObject:
        return {"location": self.location, "message": self.message, "value": self.value}


class InvalidRequest(Exception):
    """The request is refused whole; nothing was changed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.location}: {p.message}" for p in self.problems))


class UnknownContact(LookupError):
    def __init__(self, contact_id: int) -> None:
        self.contact_id = contact_id
        super().__init__(f"no contact has id {contact_id}")


class SeedError(ValueError):
    """The seed (forms and contacts) cannot be loaded."""


# -- values -----------------------------------------------------------------------------


def format_micros(moment: datetime) -> str:
    """`CreatedAt` / `UpdatedAt`: 6 fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_millis(moment: datetime) -> str:
    """`lastchange` and entry dates: 3 fractional digits, the shape writes must use."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def is_millis_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _MILLIS_TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware instant (UTC when it names no offset), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return None
