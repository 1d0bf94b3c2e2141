"""`qomon-sync preview-webhook`: a delivery's change events, printed, nothing sent."""

from __future__ import annotations

import json

import pytest

from qomon_sync_dev.cli import main
from tests.unit.webhooks import WEBHOOKS


def test_a_documented_delivery_prints_its_change_events(capsys: pytest.CaptureFixture[str]) -> None:
    body = WEBHOOKS / "mailchimp" / "3-upemail.form"
    assert main(["preview-webhook", "--source", "mailchimp", "--body", str(body)]) == 0
    [event] = json.loads(capsys.readouterr().out)
    assert event["contact"] == {"mail": "lea.brunet@example.org"}
    assert event["set"] == {"mail": "lea.brunet@example.com"}


def test_a_refused_delivery_prints_the_problem_without_its_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = WEBHOOKS / "helloasso" / "order-donation.json"
    argv = ["preview-webhook", "--source", "helloasso", "--body", str(body), "--secret", "k"]
    assert main(argv) == 1
    problem = json.loads(capsys.readouterr().out)
    assert (problem["status"], problem["field"]) == (401, "x-ha-signature")
    assert "hugo" not in json.dumps(problem)


def test_an_unknown_source_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    body = WEBHOOKS / "acme" / "signup.json"
    assert main(["preview-webhook", "--source", "acme", "--body", str(body)]) == 2
    assert "no source `acme`" in capsys.readouterr().err
