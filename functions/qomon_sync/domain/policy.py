"""What a deployment decides about writing contacts: unknown fields and sticky opt-outs.

Kept apart from the assembly so that reading the settings (the ingest function does)
does not import the whole read-modify-write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_REFUSAL_PATTERN = r"^(refus|opt[_-]?out|unsubscrib|no[_-]?consent|do[_-]?not)"


@dataclass(frozen=True)
class ShapePolicy:
    """What to do with keys the inventory does not know (paths like `external_id`,
    `address.citycode`, `formdatas[].origin`, `notes[].user.team`, `tags[].slug`).

    By default an unknown key holding data stops the write; `passthrough` sends it back
    unchanged, `droppable` leaves it out knowingly. `citycode` belongs to older address
    schemas, so it is sent back as read unless configured otherwise.
    """

    passthrough: frozenset[str] = field(default_factory=lambda: frozenset({"address.citycode"}))
    droppable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AssemblyPolicy:
    shape: ShapePolicy = field(default_factory=ShapePolicy)
    allow_unblacklist: bool = False
    """Opt-outs are sticky: an automated change never turns `black_list` from true to false."""
    allow_refusal_withdrawal: bool = False
    """Nor does it remove a recorded consent refusal (a consent value matching the pattern)."""
    refusal_pattern: str = DEFAULT_REFUSAL_PATTERN
