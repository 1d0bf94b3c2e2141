"""One list of refusal codes: each is used, each is in the runbook, nothing else is."""

from __future__ import annotations

import re

from qomon_sync.domain.refusal import EXPLAINED, Code
from tests.conftest import ROOT

FUNCTIONS = ROOT / "functions" / "qomon_sync"


def test_every_code_is_explained() -> None:
    assert set(EXPLAINED) == set(Code)


def test_the_runbook_lists_exactly_the_codes() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    table = runbook.split("<!-- dead-letter-codes -->")[1]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.+?) \|", table, flags=re.MULTILINE))
    assert set(rows) == {code.value for code in Code}
    assert all(rows[code.value] == EXPLAINED[code][0] for code in Code)


def test_every_code_is_used_somewhere() -> None:
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in FUNCTIONS.rglob("*.py")
        if path.name != "refusal.py"
    )
    unused = [code.name for code in Code if f"Code.{code.name}" not in source]
    assert unused == []


def test_no_code_is_spelled_as_a_bare_string() -> None:
    # A code must be a Code member, so that mypy and the tests above see every use.
    codes = "|".join(code.value for code in Code)
    pattern = re.compile(rf"""["']({codes})["']""")
    spelled = [
        f"{path.relative_to(ROOT)}: {match.group(1)}"
        for path in FUNCTIONS.rglob("*.py")
        if path.name != "refusal.py"
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert spelled == []
