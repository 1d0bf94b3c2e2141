"""Issue 20, point 3: `qomon-sync status` shows the pause and `qomon-sync resume` probes
now, as an operator runs them: fresh processes against `qomon-sync local` running as a
subprocess, in words, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.local_process import Delivery, LocalProcess, note_event
from tests.integration.test_boundaries_as_run import operator, said

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProcess]:
    state = tmp_path_factory.mktemp("pause") / "state"
    running = LocalProcess(state, "pause").start()
    try:
        yield running
    finally:
        running.ensure_gone()


def words(local: LocalProcess, *argv: str | Path) -> tuple[int, str]:
    result = operator(local, *argv)
    text = said(result)
    assert "Traceback" not in text, text
    return result.returncode, text


def test_status_shows_the_pause_and_resume_probes_now(local: LocalProcess) -> None:
    code, text = words(local, "resume")
    assert (code, text.strip()) == (0, "qomon-sync is not paused: nothing to resume.")
    assert "- Pause: not paused" in words(local, "status")[1]

    local.standin("config", {"outage": True})
    with httpx.Client(timeout=10) as http:
        for contact_id in (700103, 700106, 700109):
            assert Delivery(note_event(contact_id, "Rappel")).send(http, local.endpoints) == 202
    deadline = time.monotonic() + 40
    while "PAUSED since" not in (text := words(local, "status")[1]):
        assert time.monotonic() < deadline, text
        time.sleep(0.5)
    assert "Qomon answers 503" in text
    assert "next probe" in text or "a probe is due now" in text
    assert "nothing is lost" in text
    assert "the sync waits for Qomon and resumes by itself" in text

    code, text = words(local, "resume")
    assert code == 1, text
    assert "probing Qomon now" in text
    assert "Still paused: Qomon answers 503" in text

    local.standin("config", {"outage": False})
    code, text = words(local, "resume")
    assert code == 0, text
    # The scheduled probe may have come first (every 2 s in local mode).
    assert "Resumed: Qomon answers" in text or "not paused" in text, text
    local.wait_until_drained(timeout=60)
    assert local.take_dead_letters() == []
    for contact_id in (700103, 700106, 700109):
        notes = local.standin(f"contacts/{contact_id}")["contact"].get("notes") or []
        assert [note["data"] for note in notes].count("Rappel") == 1
    assert "- Pause: not paused" in words(local, "status")[1]
