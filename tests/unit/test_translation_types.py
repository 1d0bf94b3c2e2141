"""Whatever a documented key holds as read, the translation either refuses it, naming the
key, or writes a value the typed write model accepts: a value it lets through must never
fail later as `invalid_replacement` (which says "our bug") or reach Qomon mistyped."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qomon_sync.domain.contact_fields import CONTACT, NOTE, NOTE_AUTHOR, Leaf
from qomon_sync.domain.contact_shape import ShapeError, to_write_shape
from qomon_sync.domain.forms import FormCatalog
from qomon_sync.domain.replacement_body import body_problems

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", " ", "M", "F", "O", "X", "12", "-3", "1.5", "2024-02-30", "0001-01-01"])
    | st.text(max_size=8)
    | st.datetimes().map(lambda d: d.isoformat() + "Z")
)
JSON_VALUES = JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3) | st.just({"a": 1})

TOP_LEAVES = sorted(key for key, node in CONTACT.written.items() if isinstance(node, Leaf))
NOTE_LEAVES = sorted(key for key, node in NOTE.written.items() if isinstance(node, Leaf))
AUTHOR_LEAVES = sorted(k for k, node in NOTE_AUTHOR.written.items() if isinstance(node, Leaf))


def translated_or_refused(contact: dict[str, Any], path: str) -> None:
    refusal = None
    try:
        body = to_write_shape(contact, FormCatalog([]))
    except ShapeError as exc:
        refusal = exc.refusal
    if refusal is not None:
        assert refusal.code == "invalid_contact", refusal
        assert any(field.startswith(path) for field in refusal.fields), (refusal.fields, path)
    else:
        assert body_problems(body) == [], body


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TOP_LEAVES), JSON_VALUES)
def test_a_basic_field_is_written_typed_or_refused_by_name(key: str, value: Any) -> None:
    translated_or_refused({key: value}, key)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NOTE_LEAVES), JSON_VALUES)
def test_a_note_key_is_written_typed_or_refused_by_name(key: str, value: Any) -> None:
    note = {"data": "Met at the market", key: value}
    translated_or_refused({"notes": [note]}, "notes[0]")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(AUTHOR_LEAVES), JSON_VALUES)
def test_a_note_author_key_is_written_typed_or_refused_by_name(key: str, value: Any) -> None:
    note = {"data": "Met at the market", "user": {key: value}}
    translated_or_refused({"notes": [note]}, "notes[0]")
