"""The operators' dead-letter commands against local mode, run in-process on 127.0.0.1:
poison events are dead-lettered with several codes, `dlq list` shows them by code, the
cause of one code is fixed and `dlq redrive --code` applies exactly those letters; the
others stay, nothing is lost and nothing is applied twice."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from qomon_sync.adapters.dead_letters import DeadLetter, DeadLetterQueue
from qomon_sync.adapters.flush_markers import KIND_ATTRIBUTE, MARKER_KIND
from qomon_sync.adapters.staging import Staged, StagingTable
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_ops.cli import main

pytestmark = pytest.mark.integration

SECRET_NAME = "Philomène-Secrète"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalMode]:
    with LocalMode(LocalOptions(visibility_timeout_s=2)) as running:
        yield running


@pytest.fixture
def endpoints_file(local: LocalMode, tmp_path: Path) -> Path:
    assert local.endpoints is not None
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(asdict(local.endpoints)), encoding="utf-8")
    return path


def aws(local: LocalMode, service: str) -> Any:
    assert local.endpoints is not None
    return boto3.client(
        service, endpoint_url=local.endpoints.aws_endpoint_url, region_name=local.endpoints.region
    )


def queue(local: LocalMode, event: dict[str, Any] | str, group: str = "bad") -> None:
    assert local.endpoints is not None
    body = event if isinstance(event, str) else json.dumps(event)
    if not isinstance(event, str):
        group = f"id:{event['contact']['id']}"
    aws(local, "sqs").send_message(
        QueueUrl=local.endpoints.changes_queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=uuid.uuid4().hex,
    )


def event(contact_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"ops-{uuid.uuid4().hex[:10]}",
        "source": "ops-test",
        "occurred_at": "2026-11-24T10:00:00Z",
        "contact": {"id": contact_id},
        **changes,
    }


def wait_for(check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def counts(local: LocalMode) -> tuple[int, int]:
    """Messages (visible or in flight) on the changes queue and the dead-letter queue."""
    assert local.endpoints is not None
    sqs = aws(local, "sqs")
    found = []
    for url in (local.endpoints.changes_queue_url, local.endpoints.dead_letter_queue_url):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        found.append(sum(int(v) for v in attributes.values()))
    return found[0], found[1]


def ops(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def contact(local: LocalMode, contact_id: int) -> dict[str, Any]:
    assert local.endpoints is not None
    answer = httpx.get(f"{local.endpoints.qomon_url}/_standin/contacts/{contact_id}")
    answer.raise_for_status()
    stored: dict[str, Any] = answer.json()["contact"]
    return stored


def patches(local: LocalMode) -> int:
    assert local.endpoints is not None
    stats = httpx.get(f"{local.endpoints.qomon_url}/_standin/stats").json()
    return int(stats["calls"].get("PATCH /contacts/{id}", 0))


def test_dead_letters_by_code_redrive_applies_exactly_the_fixed_ones(
    local: LocalMode, endpoints_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.endpoints is not None
    ep = ("--endpoints-file", endpoints_file)
    unknown_a = event(990001, tags={"add": ["revenu"]})
    unknown_b = event(990002, notes=[{"data": "Bienvenue !"}])
    bad_field = event(
        700103, set={"firstname": SECRET_NAME}, fields=[{"field": "Pas un champ", "value": "x"}]
    )
    bad_value = event(700106, fields=[{"field": "Niveau de soutien", "value": "Pas une valeur"}])
    for poison in (unknown_a, unknown_b, bad_field, bad_value):
        queue(local, poison)
    queue(local, "{not a change event")
    wait_for(lambda: counts(local) == (0, 5))

    code, out = ops(capsys, "dlq", "list", *ep)
    assert code == 0
    assert "holds 5 letters" in out
    assert "contact_not_found 2" in out
    for expected in ("unknown_field 1", "unknown_value 1", "invalid_event 1"):
        assert expected in out
    for poison in (unknown_a, unknown_b, bad_field, bad_value):
        assert poison["event_id"] in out
    assert SECRET_NAME not in out
    assert counts(local) == (0, 5)  # reading consumed nothing

    code, out = ops(capsys, "dlq", "list", *ep, "--code", "contact_not_found", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert sorted(m["event_id"] for m in listed) == sorted(
        [unknown_a["event_id"], unknown_b["event_id"]]
    )
    assert {m["contact"] for m in listed} == {"id:990001", "id:990002"}

    code, out = ops(capsys, "dlq", "show", bad_field["event_id"], *ep)
    assert code == 0
    assert "Why: unknown_field" in out
    assert "What to do: fix the label in the mapping" in out
    assert SECRET_NAME not in out
    assert "<masked>" in out
    assert "Pas un champ" in out
    code, out = ops(capsys, "dlq", "show", bad_field["event_id"], *ep, "--show-personal-data")
    assert SECRET_NAME in out

    # The cause: these two people were not in Qomon yet. Someone creates them.
    for contact_id in (990001, 990002):
        httpx.put(
            f"{local.endpoints.qomon_url}/_standin/contacts/{contact_id}",
            json={"firstname": "Nouvelle", "mail": f"p{contact_id}@example.org"},
        ).raise_for_status()
    code, out = ops(capsys, "dlq", "show", unknown_a["event_id"], *ep, "--preview")
    assert "Preview: it would be written now" in out
    assert "tags[revenu]" in out
    assert "nothing was sent" in out
    writes_before = patches(local)
    assert counts(local) == (0, 5)

    code, out = ops(capsys, "dlq", "redrive", *ep, "--code", "contact_not_found", "--dry-run")
    assert code == 0
    assert "would move 2 letters" in out
    assert counts(local) == (0, 5)

    code, out = ops(capsys, "dlq", "redrive", *ep, "--code", "contact_not_found")
    assert code == 0, out
    assert "Moved 2 letters back" in out
    assert "3 letters stay" in out
    wait_for(lambda: counts(local) == (0, 3))
    wait_for(lambda: patches(local) == writes_before + 2)
    assert [t["name"] for t in contact(local, 990001)["tags"]] == ["revenu"]
    assert [n["data"] for n in contact(local, 990002)["notes"]] == ["Bienvenue !"]

    code, out = ops(capsys, "dlq", "list", *ep, "--json")
    left = {m["code"] for m in map(json.loads, out.splitlines())}
    assert left == {"unknown_field", "unknown_value", "invalid_event"}

    # Nothing is applied twice: a second redrive finds nothing, and a copy of an applied
    # event put back in the queue by hand is recognised by the ledger.
    code, out = ops(capsys, "dlq", "redrive", *ep, "--code", "contact_not_found")
    assert code == 0
    assert "No dead letter matches" in out
    DeadLetterQueue(aws(local, "sqs"), local.endpoints.dead_letter_queue_url).send(
        DeadLetter(
            body=json.dumps(unknown_a),
            group_id="id:990001",
            deduplication_id=uuid.uuid4().hex,
            code="contact_not_found",
            detail="a copy",
            event_id=unknown_a["event_id"],
        )
    )
    code, out = ops(capsys, "dlq", "redrive", *ep, "--event-id", unknown_a["event_id"])
    assert "Moved 1 letter back" in out
    wait_for(lambda: counts(local) == (0, 3))
    time.sleep(0.5)
    assert patches(local) == writes_before + 2
    assert [t["name"] for t in contact(local, 990001)["tags"]] == ["revenu"]

    # Drop: refused without --yes, done with it; the others stay.
    code, out = ops(capsys, "dlq", "list", *ep, "--code", "invalid_event", "--json")
    [invalid] = [json.loads(line) for line in out.splitlines()]
    code, out = ops(capsys, "dlq", "drop", *ep, "--event-id", invalid["event_id"])
    assert code == 1
    assert "Run the same command with --yes" in out
    assert counts(local) == (0, 3)
    record = endpoints_file.parent / "dropped.jsonl"
    code, out = ops(
        capsys, "dlq", "drop", *ep, "--event-id", invalid["event_id"], "--yes", "--record", record
    )
    assert code == 0
    assert "Dropped 1 letter for good" in out
    assert invalid["event_id"] in out
    assert json.loads(record.read_text())["code"] == "invalid_event"
    assert counts(local) == (0, 2)


def test_redrive_all_moves_every_letter_without_the_move_task(
    local: LocalMode, endpoints_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = ("--endpoints-file", endpoints_file)
    code, out = ops(capsys, "dlq", "drop", *ep, "--yes", "--event-id", *_ids(capsys, ep))
    wait_for(lambda: counts(local) == (0, 0))
    poisons = [event(990100 + i, tags={"add": ["x"]}) for i in range(3)]
    for poison in poisons:
        queue(local, poison)
    wait_for(lambda: counts(local) == (0, 3))
    code, out = ops(capsys, "dlq", "redrive", *ep, "--all")
    assert code == 0, out
    assert "move task is not available here" in out
    assert "Moved 3 letters back" in out
    # Still unknown people: they come back, each once, with their reason.
    wait_for(lambda: counts(local) == (0, 3))
    code, out = ops(capsys, "dlq", "list", *ep, "--json")
    assert sorted(m["event_id"] for m in map(json.loads, out.splitlines())) == sorted(
        p["event_id"] for p in poisons
    )


def test_a_dead_lettered_flush_marker_is_named_and_redriven_as_a_marker(
    local: LocalMode, endpoints_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A contact's staged events wait for its flush marker: a marker the redrive policy
    moved must be shown as one and come back as one, or the events never apply."""
    assert local.endpoints is not None
    ep = ("--endpoints-file", endpoints_file)
    _, _ = ops(capsys, "dlq", "drop", *ep, "--yes", "--event-id", *_ids(capsys, ep))
    wait_for(lambda: counts(local) == (0, 0))
    group = "id:700103"
    staged = event(700103, tags={"add": ["marker-redriven"]})
    staging = StagingTable(aws(local, "dynamodb"), local.endpoints.staging_table, retention_s=3600)
    staging.stage(group, [Staged("1".rjust(40, "0"), json.dumps(staged), "m-staged")])
    marker = uuid.uuid4().hex
    aws(local, "sqs").send_message(
        QueueUrl=local.endpoints.dead_letter_queue_url,
        MessageBody=json.dumps({"flush": group, "marker": marker}),
        MessageGroupId=group,
        MessageDeduplicationId=f"flush-{marker}",
        MessageAttributes={KIND_ATTRIBUTE: {"DataType": "String", "StringValue": MARKER_KIND}},
    )
    code, out = ops(capsys, "status", *ep)
    assert "Staging table: 1 event of 1 contact taken off the queue" in out
    code, out = ops(capsys, "dlq", "list", *ep)
    assert code == 0, out
    assert "flush_marker" in out
    assert "retries_exhausted" not in out
    code, out = ops(capsys, "dlq", "show", *ep, marker_id(local, capsys, ep))
    assert "flush marker" in out
    assert "staging table" in out
    code, out = ops(capsys, "dlq", "redrive", *ep, "--code", "flush_marker")
    assert code == 0, out
    wait_for(lambda: "marker-redriven" in json.dumps(contact(local, 700103).get("tags")))
    wait_for(lambda: counts(local) == (0, 0))
    assert staging.load(group)[1] == []
    code, out = ops(capsys, "status", *ep)
    assert "Staging table: no event waits" in out


def marker_id(local: LocalMode, capsys: pytest.CaptureFixture[str], ep: tuple[str, Path]) -> str:
    _, out = ops(capsys, "dlq", "list", *ep, "--json")
    (line,) = out.splitlines()
    return str(json.loads(line)["event_id"])


def _ids(capsys: pytest.CaptureFixture[str], ep: tuple[str, Path]) -> list[str]:
    _, out = ops(capsys, "dlq", "list", *ep, "--json")
    return [json.loads(line)["event_id"] for line in out.splitlines()] or ["none"]


def test_a_stopped_local_mode_is_said_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "endpoints.json"
    code, out = ops(capsys, "dlq", "list", "--endpoints-file", path)
    assert code == 2
    assert "start `qomon-sync local` first" in out


def test_status_in_local_mode_counts_what_local_mode_did(
    local: LocalMode, endpoints_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local.metrics is not None
    queue(local, event(700109, tags={"add": [f"status-{uuid.uuid4().hex[:6]}"]}))
    queue(local, event(990200, tags={"add": ["x"]}))
    wait_for(lambda: counts(local)[0] == 0)
    local.metrics.flush()
    code, out = ops(capsys, "status", "--endpoints-file", endpoints_file)
    assert code == 0, out
    assert "Changes queue: 0 events waiting, 0 being applied (local mode does not measure" in out
    assert "contact_not_found" in out
    assert "events dead-lettered " in out
    assert "events dead-lettered 0" not in out
    replaced = int(out.split("contacts replaced ")[1].split(";")[0].replace(",", ""))
    assert replaced >= 1
    assert "Qomon tokens spent 0;" not in out
    assert "none in alarm (local mode sets up no alarms)" in out
    assert "Next: `qomon-sync dlq list`" in out
