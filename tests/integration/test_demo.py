"""`make demo`'s command, end to end: local mode as a subprocess, stopped by SIGTERM."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_the_demo_accounts_for_every_event_and_stops_local_mode_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qomon_sync_dev.cli", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
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
    assert "ana.martin" not in out  # no personal data in the summary
