"""`qomon-sync preview-webhook`: a delivery's change events, printed, nothing sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qomon_sync.handlers.ingest import handle
from qomon_sync_dev.cli import main
from tests.conftest import ROOT
from tests.unit.ingest_harness import SECRETS, SOURCES, local_ingest, queued, signed_event
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


# -- issue 18, point 4: the preview prints what the ingest would queue --------------------


def test_a_generic_body_naming_another_source_previews_as_the_ingest_queues_it(
    tmp_path: Path,
) -> None:
    """The ingest queues a generic delivery as `generic` whatever its body says (a body
    must not speak for another sender); so does the preview, run as a developer runs it."""
    body = tmp_path / "claims-tally.json"
    body.write_text(
        json.dumps(
            {
                "event_id": "tally-a4cb511e",
                "source": "tally",
                "occurred_at": "2026-11-24T10:00:00Z",
                "contact": {"mail": "hugo.lefort@example.org"},
                "set": {"phone": None},
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "qomon_sync_dev.cli", "preview-webhook", "--source", "generic",
         "--body", str(body)],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [event] = json.loads(done.stdout)
    assert event["source"] == "generic"
    assert event["set"] == {"phone": None}  # a clear stays a clear


def test_every_documented_delivery_previews_exactly_as_the_ingest_queues_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same signed request, to the ingest and to the preview (signature checked)."""
    checked = 0
    with local_ingest() as ingest:
        for folder in sorted(WEBHOOKS.iterdir()):
            if not folder.is_dir() or folder.name not in SOURCES:
                continue
            for path in sorted(folder.iterdir()):
                request = signed_event(folder.name, path.read_bytes())
                answer = handle(request, ingest)
                if answer["statusCode"] != 202:
                    continue  # a delivery the ingest refuses is another test's
                queued_bodies = [message["body"] for message in queued(ingest)]
                body = tmp_path / path.name
                body.write_text(request["body"], encoding="utf-8")
                headers = [f"--header={k}: {v}" for k, v in request["headers"].items()]
                argv = ["preview-webhook", "--source", folder.name, "--body", str(body)]
                argv += [*headers, "--query", request["rawQueryString"]]
                argv += ["--secret", SECRETS[folder.name]]
                assert main(argv) == 0, path
                previewed = json.loads(capsys.readouterr().out)
                assert _timeless(previewed) == _timeless(queued_bodies), path
                checked += 1
    assert checked >= 10


def _timeless(bodies: Any) -> Any:
    """A delivery without a date of its own is dated when received: that alone differs."""
    return [{k: v for k, v in body.items() if k != "occurred_at"} for body in bodies]
