from __future__ import annotations

import json

import pytest

from qomon_sync.domain.assembly import Rejected
from qomon_sync.domain.privacy import (
    PseudonymKeyMissing,
    Pseudonyms,
    redact_path,
    redact_paths,
    redact_refusal,
    redact_text,
)
from qomon_sync.domain.refusal import Code
from tests.conftest import PSEUDONYMS


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
    pseudonym = PSEUDONYMS
    token = pseudonym(" Ana.Martin@Example.org ")
    assert token == pseudonym("ana.martin@example.org")
    assert "ana" not in token
    assert token != pseudonym("ana.martin@example.com")


def test_the_pseudonym_is_keyed_so_a_dictionary_cannot_find_the_address() -> None:
    """Issue 11: the unsalted SHA-256 prefix re-identified 3 of 3 addresses from a small
    list of candidates; keyed, a candidate's hash says nothing without the key."""
    import hashlib

    candidates = ["ana.martin@example.org", "leo.petit@example.org", "nour@example.net"]
    tokens = {PSEUDONYMS(mail) for mail in candidates}
    guesses = {f"h:{hashlib.sha256(m.encode()).hexdigest()[:16]}" for m in candidates}
    assert not tokens & guesses
    another = Pseudonyms(lambda: "another deployment's key, at least sixteen long")
    assert not tokens & {another(mail) for mail in candidates}


def test_no_key_no_pseudonym() -> None:
    short = Pseudonyms(lambda: "short")
    with pytest.raises(PseudonymKeyMissing):
        short("ana.martin@example.org")
    with pytest.raises(PseudonymKeyMissing):
        short.check()


def test_two_deployments_keys_live_side_by_side_in_one_process() -> None:
    """Issue 18, point 9: no key is process-global, so one process (an operator's shell
    looking at two stacks, a test) keys each deployment's pseudonyms with its own key."""
    first = Pseudonyms("the first deployment's key, long enough")
    second = Pseudonyms("the second deployment's key, long enough")
    assert first("ana.martin@example.org") != second("ana.martin@example.org")
    assert first("ana.martin@example.org") == first("ANA.martin@example.org ")
    assert "key" not in repr(first).replace("<key hidden>", "")


def test_the_key_is_read_when_first_needed_and_on_each_use() -> None:
    """A Lambda that never meets an e-mail never reads the secret; a rotated key (the
    reader's cache refreshed) is used from then on."""
    keys = ["the key before its rotation", "the key after its rotation"]
    reads: list[str] = []

    def read() -> str:
        reads.append(keys[0])
        return keys[0]

    pseudonyms = Pseudonyms(read)
    assert reads == []
    before = pseudonyms("ana.martin@example.org")
    keys.pop(0)
    assert pseudonyms("ana.martin@example.org") != before
    assert len(reads) == 2


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
