from __future__ import annotations

import pytest

from qomon_sync.domain.privacy import pseudonym, redact_text


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
