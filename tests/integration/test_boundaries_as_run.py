"""Issue 18, points 1 and 9: what crosses a boundary keeps its meaning, tested as it runs.

`qomon-sync local` runs as a subprocess (its own process, its own key), and every
operators' command runs as an operator runs it: a fresh process, no fixture state, nothing
set beside the local mode's endpoints file. The people are named by e-mail, which is what
needs the deployment's pseudonym key; the changes clear fields with an explicit `null`,
which must reach Qomon through the ingest, a redrive and a backfill alike.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.local_process import Delivery, LocalProcess

pytestmark = pytest.mark.integration

CLEARED = 880001
"""Named by e-mail in a webhook that clears its phone and its address."""
FOUND_LATER = 880002
"""Unknown when its event first arrives (dead-lettered), put in Qomon, then redriven."""
BACKFILLED = 880003
"""Named by e-mail in a backfilled CSV."""
MAILS = {
    CLEARED: "boundary.cleared@example.org",
    FOUND_LATER: "boundary.found-later@example.org",
    BACKFILLED: "boundary.backfilled@example.org",
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProcess]:
    state = tmp_path_factory.mktemp("boundaries") / "state"
    running = LocalProcess(state, "boundaries").start()
    try:
        yield running
    finally:
        running.ensure_gone()


def put_person(local: LocalProcess, contact_id: int) -> None:
    record = {
        "firstname": "Camille",
        "surname": "Frontière",
        "mail": MAILS[contact_id],
        "phone": "+33 6 00 00 00 77",
        "address": {"street": "1 rue des Tests", "city": "Lyon", "postalcode": "69001"},
        "tags": [{"name": "déjà là"}],
    }
    url = f"{local.endpoints['qomon_url']}/_standin/contacts/{contact_id}"
    httpx.put(url, json=record, timeout=10).raise_for_status()


def stored(local: LocalProcess, contact_id: int) -> dict[str, Any]:
    contact: dict[str, Any] = local.standin(f"contacts/{contact_id}")["contact"]
    return contact


def clearing(contact_id: int) -> dict[str, Any]:
    """docs/change-event.md's own example of a clear: `null` for the phone and the whole address."""
    return {
        "event_id": f"clear-{uuid.uuid4().hex[:12]}",
        "source": "crm",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"mail": MAILS[contact_id]},
        "set": {"phone": None, "address": None},
    }


def operator(local: LocalProcess, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """`qomon-sync ...` in a fresh process: the operators' package and the runtime on the
    path, the endpoints file named, and nothing else of this test's."""
    paths = [str(ROOT / p) for p in ("functions", "ops")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QOMON_", "PSEUDONYM"))}
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "qomon_sync_ops.cli",
            *map(str, argv),
            "--endpoints-file",
            str(local.endpoints_file),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_a_generic_null_clears_the_phone_and_the_address_in_qomon(local: LocalProcess) -> None:
    put_person(local, CLEARED)
    delivery = Delivery(clearing(CLEARED))
    with httpx.Client(timeout=10) as http:
        assert delivery.send(http, local.endpoints) == 202
    local.wait_until_drained(timeout=60)
    contact = stored(local, CLEARED)
    assert not contact.get("phone")
    address = contact.get("address") or {}
    assert not any(address.get(part) for part in ("street", "city", "postalcode"))
    assert [tag["name"] for tag in contact["tags"]] == ["déjà là"]  # nothing else moved


def test_a_letter_naming_a_person_by_email_is_shown_and_redriven_by_fresh_processes(
    local: LocalProcess,
) -> None:
    delivery = Delivery(clearing(FOUND_LATER))
    with httpx.Client(timeout=10) as http:
        assert delivery.send(http, local.endpoints) == 202
    local.wait_until_drained(timeout=60)

    listed = operator(local, "dlq", "list")
    assert listed.returncode == 0, said(listed)
    assert delivery.event_id in listed.stdout

    shown = operator(local, "dlq", "show", delivery.event_id)
    assert shown.returncode == 0, said(shown)
    assert "Traceback" not in said(shown)
    assert MAILS[FOUND_LATER] not in said(shown)
    body = json.loads(shown.stdout[shown.stdout.index("{") :])
    assert body["contact"]["mail"].startswith("h:")  # its pseudonym, under local mode's key
    assert body["set"] == {"phone": None, "address": None}  # a clear is not personal

    put_person(local, FOUND_LATER)  # the operator adds the person in Qomon, then redrives
    redriven = operator(local, "dlq", "redrive", "--event-id", delivery.event_id)
    assert redriven.returncode == 0, said(redriven)
    local.wait_until_drained(timeout=60)
    contact = stored(local, FOUND_LATER)
    assert not contact.get("phone")  # the null crossed the dead-letter queue and back
    assert not (contact.get("address") or {}).get("city")

    status = operator(local, "status")
    assert status.returncode == 0, said(status)
    assert "Traceback" not in said(status)


def test_a_backfill_naming_people_by_email_runs_in_a_fresh_process(
    local: LocalProcess, tmp_path: Path
) -> None:
    put_person(local, BACKFILLED)
    path = tmp_path / "people.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["E-mail", "Étiquettes"])
        writer.writerow([MAILS[BACKFILLED], "rentrée 2026"])
    result = operator(
        local,
        "backfill",
        path,
        "--source",
        "backfill-test",
        "--column",
        "E-mail=contact.mail",
        "--column",
        "Étiquettes=tags.add",
    )
    assert result.returncode == 0, said(result)
    assert "Traceback" not in said(result)
    local.wait_until_drained(timeout=60)
    tags = [tag["name"] for tag in stored(local, BACKFILLED)["tags"]]
    assert sorted(tags) == ["déjà là", "rentrée 2026"]


def test_a_letter_naming_a_person_by_email_is_dropped_by_a_fresh_process(
    local: LocalProcess, tmp_path: Path
) -> None:
    event = clearing(CLEARED) | {"contact": {"mail": "nobody.here@example.org"}}
    delivery = Delivery(event)
    with httpx.Client(timeout=10) as http:
        assert delivery.send(http, local.endpoints) == 202
    local.wait_until_drained(timeout=60)
    record = tmp_path / "dropped.jsonl"
    dropped = operator(
        local, "dlq", "drop", "--event-id", delivery.event_id, "--yes", "--record", record
    )
    assert dropped.returncode == 0, said(dropped)
    assert "Traceback" not in said(dropped)
    assert "nobody.here" not in said(dropped) + record.read_text(encoding="utf-8")
    listed = operator(local, "dlq", "list", "--json")
    assert listed.returncode == 0, said(listed)
    assert delivery.event_id not in listed.stdout
