"""`qomon-sync check-config` against the seeded stand-in: the deployment's mapping file fits
the space, and a wrong label or value is named by its path in the file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from qomon_sync_dev import check_config
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer
from tests.unit.webhooks import SOURCES_YAML

pytestmark = pytest.mark.integration


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    check_config.add_arguments(parser)
    return check_config.run_from_args(parser.parse_args(list(argv)))


@pytest.fixture(scope="module")
def standin_url() -> object:
    with StandinServer(StandinConfig(token="t")) as server:
        yield server.url


def test_the_deployment_file_fits_the_seeded_space(
    standin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run("--config", str(SOURCES_YAML), "--qomon-url", standin_url, "--qomon-token", "t")
    assert (code, capsys.readouterr().out) == (
        0,
        f"{SOURCES_YAML}: valid (sources: generic, typeform (typeform), tally (tally), "
        "brevo (brevo), helloasso (helloasso), mailchimp (mailchimp), hubspot (hubspot), "
        "actionnetwork (actionnetwork), nationbuilder (nationbuilder)); every Qomon field "
        "and mapped value exists\n",
    )


def test_a_wrong_label_and_a_wrong_value_are_each_named_by_their_path(
    standin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(SOURCES_YAML.read_text(encoding="utf-8"))
    fields = config["sources"]["typeform"]["fields"]
    fields[1]["values"]["Je ne sais pas"] = "indecis"  # the seed's value is `undecided`
    fields[3]["field"] = "Combien de personnes dans le foyer ?"  # not the seed's label
    config["sources"]["brevo"]["events"]["unsubscribed"]["fields"][0]["op"] = "add"
    config["sources"]["brevo"]["events"]["unsubscribed"]["fields"][0]["field"] = "Niveau de soutien"
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")

    code = run("--config", str(path), "--qomon-url", standin_url, "--qomon-token", "t")

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == [
        f"{path} does not fit the space's forms (4 problems):",
        '  - sources.typeform.fields[1].values["Je ne sais pas"]: `indecis` is not one of the '
        "form's values (very_favorable, favorable, undecided, unfavorable, very_unfavorable) "
        "of `Niveau de soutien` (radio, id 3102)",
        "  - sources.typeform.fields[3].field: `Combien de personnes dans le foyer ?`: "
        "no form has this label",
        "  - sources.brevo.events.unsubscribed.fields[0].field: `Niveau de soutien` (radio, id "
        "3102) holds one value: use op `set`, not `add`",
        "  - sources.brevo.events.unsubscribed.fields[0].value: `consent_email` is not one of "
        "the form's values (very_favorable, favorable, undecided, unfavorable, "
        "very_unfavorable) of `Niveau de soutien` (radio, id 3102)",
    ]


def test_an_invalid_file_lists_each_problem_without_calling_qomon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  typeform:\n    contact: {mail: email}\n"
        "    fields:\n      - {answer: a, field: F, op: toggle}\n    colour: blue\n",
        encoding="utf-8",
    )
    assert run("--config", str(path)) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"the mapping file {path} has 2 problems:",
        "  - sources.typeform.fields[0].op: Input should be 'set', 'add' or 'remove'",
        "  - sources.typeform.colour: unknown key",
    ]


def test_a_selector_that_does_not_compile_is_named_by_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  mailchimp:\n    events:\n      subscribe:\n"
        "        set: {firstname: 'data.merges[FNAME'}\n",
        encoding="utf-8",
    )
    assert run("--config", str(path)) == 1
    [_, problem] = capsys.readouterr().out.splitlines()
    assert problem.startswith(
        "  - sources.mailchimp.events.subscribe.set.firstname.answer: `data.merges[FNAME` "
        "is not a JMESPath expression"
    )


def test_without_a_space_only_the_file_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--config", str(SOURCES_YAML)) == 0
    assert "Qomon labels and values not checked" in capsys.readouterr().out


def test_a_space_that_refuses_the_key_cannot_be_checked(
    standin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run("--config", str(SOURCES_YAML), "--qomon-url", standin_url, "--qomon-token", "x")
    assert code == 2
    assert "cannot read the space's forms" in capsys.readouterr().err


def test_a_url_without_a_token_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--qomon-url", "http://127.0.0.1:9") == 2
    assert "go together" in capsys.readouterr().err
