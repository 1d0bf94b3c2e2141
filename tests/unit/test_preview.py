"""`qomon-sync preview` on the seed's data: replace, unchanged, reject, bad input files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qomon_sync_dev.cli import main
from tests.conftest import EVENTS

CONTACT = EVENTS / "preview" / "contact-700103.json"
FORMS = EVENTS / "preview" / "forms.json"
CHANGES = EVENTS / "changes"


def preview(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    code = main(["preview", *map(str, args)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_replace_prints_the_body_and_changed_paths(capsys: pytest.CaptureFixture[str]) -> None:
    change = CHANGES / "01-tally-consent-and-support.json"
    code, result, _ = preview(
        capsys,
        "--contact",
        CONTACT,
        "--forms",
        FORMS,
        "--change",
        change,
        "--passthrough",
        "external_id",
    )
    assert code == 0
    assert result["action"] == "replace"
    contact = result["body"]["data"]["contact"]
    assert contact["mobile"] == "+33600000101"
    assert (
        contact["external_id"] == json.loads(CONTACT.read_text())["data"]["contact"]["external_id"]
    )
    assert {"name": "bénévole"} in contact["tags"]
    assert "id" not in contact
    assert "UpdatedAt" not in contact
    assert result["changed"] == [
        "address.floor",
        "formdatas[form_id=3101]",
        "formdatas[form_id=3102]",
        "mobile",
        "tags[bénévole]",
    ]


def test_several_changes_fold_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = (
        CHANGES / "01-tally-consent-and-support.json",
        CHANGES / "02-same-contact-survey-and-note.json",
    )
    code, result, _ = preview(
        capsys,
        "--contact",
        CONTACT,
        "--forms",
        FORMS,
        "--change",
        first,
        "--change",
        second,
        "--passthrough",
        "external_id",
    )
    assert code == 0
    assert "formdatas[form_id=3202]" in result["changed"]
    assert "mobile" in result["changed"]
    assert any(
        n["data"].startswith("Souhaite tenir un stand")
        for n in result["body"]["data"]["contact"]["notes"]
    )


def test_an_unknown_field_on_the_contact_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = preview(
        capsys,
        "--contact",
        CONTACT,
        "--forms",
        FORMS,
        "--change",
        CHANGES / "01-tally-consent-and-support.json",
    )
    assert code == 1
    assert result["action"] == "reject"
    assert result["error"]["code"] == "unknown_field"
    assert result["error"]["fields"] == ["external_id"]


def test_an_unknown_question_rejects_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, result, _ = preview(
        capsys,
        "--contact",
        CONTACT,
        "--forms",
        FORMS,
        "--change",
        CHANGES / "04-poison-unknown-field.json",
        "--droppable",
        "external_id",
    )
    assert code == 1
    assert result["error"] == {
        "code": "unknown_field",
        "detail": "fields[0].field: no form has this label",
        "fields": ["Couleur préférée"],
        "event_id": "typeform-tok-poison-1",
    }


def test_a_bare_contact_and_a_no_op_change_is_unchanged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bare = json.loads(CONTACT.read_text())["data"]["contact"]
    contact = write(tmp_path, "bare.json", json.dumps(bare))
    change = write(
        tmp_path,
        "noop.json",
        json.dumps(
            {
                "event_id": "n1",
                "source": "t",
                "occurred_at": "2026-11-24T00:00:00Z",
                "contact": {"id": 700103},
                "set": {"firstname": "Ana"},
            }
        ),
    )
    code, result, _ = preview(
        capsys, "--contact", contact, "--change", change, "--passthrough", "external_id"
    )
    assert (code, result) == (0, {"action": "unchanged"})


@pytest.mark.parametrize(
    ("which", "content", "message"),
    [
        ("contact", None, "cannot be read"),
        ("contact", "{not json", "is not JSON (line 1, column 2"),
        ("contact", "[1, 2]", "holds no contact object"),
        ("forms", '{"forms": [{"id": "x"}]}', "a form is not valid: id:"),
        ("forms", '{"data": {}}', "holds no list of forms"),
        (
            "change",
            '{"event_id": "e", "source": "t", "occurred_at": "2026-01-01T00:00:00Z", '
            '"contact": {"mail": "nope"}}',
            "not a valid change event: contact.mail: Value error, is not an e-mail address",
        ),
        (
            "change",
            '[{"event_id": "e"}]',
            "event 0: not a valid change event: source: Field required",
        ),
    ],
)
def test_bad_input_files_exit_2_naming_file_and_problem(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    which: str,
    content: str | None,
    message: str,
) -> None:
    files: dict[str, Path] = {
        "contact": CONTACT,
        "forms": FORMS,
        "change": CHANGES / "03-no-op-already-known.json",
    }
    files[which] = (
        tmp_path / f"{which}.json" if content is None else write(tmp_path, f"{which}.json", content)
    )
    code, result, err = preview(
        capsys,
        "--contact",
        files["contact"],
        "--forms",
        files["forms"],
        "--change",
        files["change"],
    )
    assert code == 2
    assert result is None
    assert str(files[which]) in err
    assert message in err


def test_bad_input_errors_never_echo_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    change = write(
        tmp_path,
        "c.json",
        json.dumps(
            {
                "event_id": "e",
                "source": "t",
                "occurred_at": "2026-01-01T00:00:00Z",
                "contact": {"mail": "Jane Doe +33612345678"},
            }
        ),
    )
    code, _, err = preview(capsys, "--contact", CONTACT, "--change", change)
    assert code == 2
    assert "Jane" not in err
    assert "3361" not in err
