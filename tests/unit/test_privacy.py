from __future__ import annotations

import json

import pytest

from qomon_sync.domain.assembly import Rejected
from qomon_sync.domain.privacy import (
    PseudonymKeyMissing,
    pseudonym,
    redact_path,
    redact_paths,
    redact_refusal,
    redact_text,
    use_pseudonym_key,
)
from qomon_sync.domain.refusal import Code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail 'ana.martin@example.org' is taken", "mail '<email>' is taken"),
        ("call +33 6 12 34 56 78 now", "call <phone> now"),
        ("phone 06.12.34.56.78", "phone <phone>"),
        ("contact 12345 not found", "contact 12345 not found"),
        ("formdatas[2].form_ref_id 1003 unknown", "formdatas[2].form_ref_id 1003 unknown"),
    ],
)
def test_redacts_emails_and_phones_but_keeps_ids(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_pseudonym_is_stable_across_case_and_blanks_and_hides_the_value() -> None:
    token = pseudonym(" Ana.Martin@Example.org ")
    assert token == pseudonym("ana.martin@example.org")
    assert "ana" not in token
    assert token != pseudonym("ana.martin@example.com")


def test_the_pseudonym_is_keyed_so_a_dictionary_cannot_find_the_address() -> None:
    """Issue 11: the unsalted SHA-256 prefix re-identified 3 of 3 addresses from a small
    list of candidates; keyed, a candidate's hash says nothing without the key."""
    import hashlib

    candidates = ["ana.martin@example.org", "leo.petit@example.org", "nour@example.net"]
    tokens = {pseudonym(mail) for mail in candidates}
    guesses = {f"h:{hashlib.sha256(m.encode()).hexdigest()[:16]}" for m in candidates}
    assert not tokens & guesses
    use_pseudonym_key(lambda: "another deployment's key, at least sixteen long")
    assert not tokens & {pseudonym(mail) for mail in candidates}


def test_no_key_no_pseudonym() -> None:
    use_pseudonym_key(lambda: "short")
    with pytest.raises(PseudonymKeyMissing):
        pseudonym("ana.martin@example.org")


def test_a_refusal_leaves_with_its_detail_and_fields_masked() -> None:
    """Issue 11: the dead-letter log line printed an e-mail held in a field label."""
    refusal = Rejected(
        Code.UNKNOWN_FIELD,
        "fields[0].field: no form `Contact ana.martin@example.org` (+33 6 12 34 56 78)",
        ("Contact ana.martin@example.org", "tags[bénévole]", "formdatas[form_id=3]"),
        event_id="e-1",
    )
    shown = redact_refusal(refusal)
    text = json.dumps([shown.detail, *shown.fields], ensure_ascii=False)
    assert "ana.martin" not in text
    assert "+33" not in text
    assert "bénévole" not in text
    assert shown.fields[0] == "Contact <email>"
    assert shown.fields[1].startswith("tags[")
    assert shown.fields[2] == "formdatas[form_id=3]"
    assert (shown.code, shown.event_id) == (refusal.code, "e-1")


def test_tag_paths_are_digested_and_the_same_tag_gives_the_same_path() -> None:
    assert redact_paths(["tags[donateur]", "tags[donateur]", "mobile"]) == [
        redact_path("tags[donateur]"),
        redact_path("tags[donateur]"),
        "mobile",
    ]
    assert "donateur" not in redact_path("tags[donateur]")
