"""Local mode keeps what it accepted: a clean stop says what is waiting and a restart
applies it; a SIGKILL mid-drain loses nothing that was answered 202 and applies nothing
twice (its queues, dead letters, ledger and stand-in live in the state folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.local_process import (
    Delivery,
    LocalProcess,
    free_port,
    note_event,
    poison_event,
)

pytestmark = pytest.mark.integration

NOTE_CONTACTS = [700103, 700106, 700109, 700112, 700115, 700121, 700133, 700136, 700139, 700142]
POISON_CONTACTS = [700190, 700193, 700196]


def fixed_ports() -> list[str]:
    return [
        *("--webhook-port", str(free_port())),
        *("--aws-port", str(free_port())),
        *("--qomon-port", str(free_port())),
    ]


def note_count(contact: dict[str, Any], text: str) -> int:
    return sum(1 for note in contact.get("notes", []) if note["data"] == text)


def send_all(local: LocalProcess, deliveries: list[Delivery], tries: int = 20) -> None:
    """A sender retrying every delivery not answered 202 (same webhook-id each time)."""
    with httpx.Client(timeout=15) as http:
        for delivery in deliveries:
            for _ in range(tries):
                if delivery.status == 202 or delivery.send(http, local.endpoints) == 202:
                    break
                time.sleep(0.2)
            assert delivery.status == 202, f"{delivery.event_id} never accepted"


def test_a_clean_stop_says_how_many_events_wait_and_a_restart_applies_them(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    deliveries = [
        Delivery(note_event(cid, f"kept across a stop {n}"))
        for n, cid in enumerate(NOTE_CONTACTS[:6] * 2)
    ]
    first = LocalProcess(state, "first", *fixed_ports(), "--paused").start()
    try:
        send_all(first, deliveries)
        assert first.terminate() == 0
    finally:
        first.ensure_gone()
    assert (
        f"qomon-sync local mode: stopped; 12 events still waiting; they are kept in "
        f"{state}{os.sep} and will be applied when you start `qomon-sync local` again"
    ) in first.output()

    second = LocalProcess(state, "second", *fixed_ports()).start()
    try:
        second.wait_until_drained(timeout=40)
        contacts = {c: second.standin(f"contacts/{c}")["contact"] for c in NOTE_CONTACTS[:6]}
        assert second.terminate() == 0
    finally:
        second.ensure_gone()
    assert f"kept in {state}{os.sep} from the last run: 12 events waiting" in second.output()
    for delivery in deliveries:
        contact = contacts[delivery.event["contact"]["id"]]
        assert note_count(contact, delivery.event["notes"][0]["data"]) == 1
    assert "stopped; no event is waiting" in second.output()


def account(
    notes: list[Delivery],
    poisons: list[Delivery],
    contacts: dict[int, dict[str, Any]],
    logged: dict[str, Counter[str]],
    lettered: Counter[str | None],
) -> tuple[Counter[str], list[str]]:
    """What became of each delivery: applied, unchanged, dead-lettered, lost or doubled."""
    figures: Counter[str] = Counter()
    problems = []
    for delivery in notes:
        text = delivery.event["notes"][0]["data"]
        times = note_count(contacts[delivery.event["contact"]["id"]], text)
        actions = logged.get(delivery.event_id, Counter())
        if times == 0:
            figures["lost"] += 1
            problems.append(f"{delivery.event_id}: accepted, never applied")
        elif times > 1 or actions["replaced"] > 1 or lettered[delivery.event_id]:
            figures["duplicates"] += 1
            problems.append(f"{delivery.event_id}: applied {times} times, logged {actions}")
        elif actions["replaced"]:
            figures["applied"] += 1
        elif actions["unchanged"]:
            figures["unchanged (its PATCH landed before the kill)"] += 1
        else:
            figures["applied, ledger done before the kill (redelivery: duplicate)"] += 1
        if not actions:
            problems.append(f"{delivery.event_id}: no outcome logged")
    for delivery in poisons:
        if lettered[delivery.event_id] == 1:
            figures["dead-lettered"] += 1
        else:
            figures["lost" if not lettered[delivery.event_id] else "duplicates"] += 1
            problems.append(f"{delivery.event_id}: dead-lettered {lettered[delivery.event_id]}x")
    return figures, problems


@pytest.mark.timeout(120)
def test_a_kill_mid_drain_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    started = time.monotonic()
    state = tmp_path / "state"
    ports = fixed_ports()  # the same at both starts: senders keep their URL
    notes = [
        Delivery(note_event(cid, f"durable note {n} for {cid}"))
        for n in range(8)
        for cid in NOTE_CONTACTS
    ]
    poisons = [Delivery(poison_event(cid)) for cid in POISON_CONTACTS]
    deliveries = poisons[:2] + notes[:30] + poisons[2:] + notes[30:]

    first = LocalProcess(state, "first", *ports).start()
    stop_sending = threading.Event()

    def sender() -> None:
        with httpx.Client(timeout=5) as http:
            for delivery in deliveries:
                if stop_sending.is_set():
                    return
                delivery.send(http, first.endpoints)
                time.sleep(0.03)

    try:
        # A slow Qomon, so the kill lands with a backlog, mid-drain and mid-ingest.
        first.standin("config", {"refill": 3.0, "burst": 12})
        sending = threading.Thread(target=sender, daemon=True)
        sending.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if first.standin("stats")["calls"].get("PATCH /contacts/{id}", 0) >= 3:
                break
            time.sleep(0.05)
        first.kill()
        killed_at = time.monotonic() - started
        stop_sending.set()
        sending.join(timeout=10)
    finally:
        first.ensure_gone()
    accepted_before_kill = sum(d.status == 202 for d in deliveries)
    applied_before_kill = Counter(o["action"] for o in first.outcomes())

    second = LocalProcess(state, "second", *ports).start()
    try:
        assert second.endpoints == first.endpoints  # same ports, queue URLs, secrets
        kept = next(line for line in second.lines() if "from the last run" in line)
        send_all(second, deliveries)  # the sender retries what was never answered 202
        second.wait_until_drained(timeout=40)
        contacts = {c: second.standin(f"contacts/{c}")["contact"] for c in NOTE_CONTACTS}
        letters = second.take_dead_letters()
        assert second.terminate() == 0
    finally:
        second.ensure_gone()

    logged: dict[str, Counter[str]] = {}
    for outcome in first.outcomes() + second.outcomes():
        logged.setdefault(outcome["event_id"], Counter())[outcome["action"]] += 1
    lettered = Counter(letter.get("event_id") for letter in letters)
    figures, problems = account(notes, poisons, contacts, logged, lettered)
    report = (
        f"{len(deliveries)} events sent; killed at {killed_at:.1f}s with "
        f"{accepted_before_kill} accepted and {dict(applied_before_kill)} logged; restart: "
        f"{kept.split(': ', 1)[1]}; after restart: {dict(figures)}; "
        f"took {time.monotonic() - started:.1f}s"
    )
    print(report)
    assert not problems, f"{problems}\n{report}"
    waiting = re.search(r"\b(\d+) events waiting", kept)
    assert waiting is not None, f"the restart did not say what it kept: {report}"
    assert int(waiting[1]) > 0, f"the kill did not land mid-drain: {report}"
    assert figures["dead-lettered"] == len(poisons)
    assert not figures["lost"]
    assert not figures["duplicates"]


def test_local_mode_refuses_a_function_timeout_longer_than_the_visibility_timeout(
    tmp_path: Path,
) -> None:
    """A killed invocation's claims and contact lease last until it would have ended: with a
    longer function timeout, its messages come back to find them held (the restart above
    then waited a minute for its own dead lease). As on AWS, local mode refuses that."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "qomon_sync_dev.cli", "local"),
            *("--state-dir", str(tmp_path / "state")),
            *("--visibility-timeout", "10", "--function-timeout", "60"),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "the function timeout (60 s) is longer than the visibility timeout (10 s)" in done.stderr
    assert "give --function-timeout at most the --visibility-timeout" in done.stderr
    assert not (tmp_path / "state").exists()  # nothing was started
