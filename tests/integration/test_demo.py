"""`make demo`'s command, end to end: local mode as a subprocess, stopped by SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_output() -> str:
    """`qomon-sync demo`'s output, run once for this module (it takes ~20 s)."""
    done = subprocess.run(
        [sys.executable, "-m", "qomon_sync_dev.cli", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_demo_accounts_for_every_event_and_stops_local_mode_cleanly(demo_output: str) -> None:
    out = demo_output
    assert "every event accounted for" in out
    assert "duplicates not applied again: 1" in out
    assert "unknown_field: 1" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert " 401 " in rows["bad"]  # the delivery with a bad signature
    assert " 400 " in rows["malformed"]
    assert " 202 " in rows["typeform:"]
    assert " 202 " in rows["tally:"]
    assert " 202 " in rows["brevo:"]
    for preset in ("helloasso:", "mailchimp:", "hubspot:", "actionnetwork:", "nationbuilder:"):
        assert " 202 " in rows[preset], preset
    assert " 401 " in rows["stranger"]  # a wrong URL secret at Mailchimp's
    assert " 200 " in rows["URL"]  # Mailchimp's check of its webhook's URL
    # No personal data: no e-mail, phone number or name, only ids and paths
    assert "ana.martin" not in out
    assert "@" not in out
    assert "+33" not in out


def test_the_demo_says_what_became_of_each_delivery_once(demo_output: str) -> None:
    out = demo_output
    deliveries = out.split("\n\n")[1].splitlines()[1:]
    by_label = {line[:42].strip(): line[49:] for line in deliveries}
    # One line per delivery: HubSpot's batch of three events is one line
    sent = int(out.split("webhooks sent: ", 1)[1].split()[0])
    assert len(deliveries) == len(by_label) == sent
    # Of its three events, only the creation changes Inès: Qomon holds her name and e-mail
    # already, and those two are told unchanged though the write carried them
    hubspot = by_label["hubspot: contact-events"]
    assert hubspot.startswith("applied in write "), hubspot
    assert hubspot.endswith("; 2 events unchanged (contact 700118): Qomon already holds it")
    # A redelivered event is applied for the first delivery; the copy is its duplicate
    first = "01-tally-consent-and-support"
    assert by_label[first].startswith("applied in write 1 (contact 700103, replaced)")
    assert by_label[f"{first} (sent again)"].startswith(f"duplicate of {first}, not applied")
    assert by_label["03-no-op-already-known"].startswith("unchanged (contact 700109)")
    assert by_label["08-shared-email-ambiguous"].startswith("dead-lettered: ambiguous_contact: ")
    # The paths a write changed are shown once, on its own line
    assert out.count("address.floor") == 1
    writes = [line for line in out.splitlines() if line.startswith("write ")]
    assert writes[0].startswith("write 1: contact 700103 replaced, 3 events from 3 deliveries: ")
    # And the demo's writes are the writes Qomon saw: one PATCH or creation each
    by_endpoint = json.loads(out.split("by endpoint: ", 1)[1].splitlines()[0])
    assert len(writes) == by_endpoint["PATCH /contacts/{id}"] + by_endpoint["POST /contacts"]
    assert f"in {len(writes)} writes to " in out
