"""Local mode's two functions share one process: each thread keeps its own Logger keys and
metric set, and stdout/stderr write whole lines only (qomon_sync_dev.local_logs)."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from qomon_sync.handlers.observability import logger, metrics
from qomon_sync_dev import local_logs
from qomon_sync_dev.local_lambda import INGEST_FUNCTION, SYNC_FUNCTION, LocalContext


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]


def test_two_functions_at_once_log_with_their_own_context_and_emit_their_own_metrics(
    log_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    both_started = threading.Barrier(2, timeout=10)

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add_metric(name=event["metric"], unit=MetricUnit.Count, value=1)
        both_started.wait()  # each function's context is set, neither has logged
        logger.info("working", extra={"who": event["who"]})
        both_started.wait()

    local_logs.isolate_functions()
    try:
        threads = [
            threading.Thread(
                target=handler,
                args=({"who": who, "metric": metric}, LocalContext(10, name)),
            )
            for who, metric, name in (
                ("ingest", "Webhooks202", INGEST_FUNCTION),
                ("sync", "EventsReceived", SYNC_FUNCTION),
            )
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        local_logs.share_functions()

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    named = {line["who"]: line["function_name"] for line in lines}
    assert named == {"ingest": INGEST_FUNCTION, "sync": SYNC_FUNCTION}
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    emitted = sorted(
        sorted(m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"])
        for blob in blobs
    )
    assert emitted == [["EventsReceived"], ["Webhooks202"]]  # one blob each, not one for both


def test_isolation_undone_keeps_the_calling_threads_keys() -> None:
    local_logs.isolate_functions()
    try:
        logger.append_keys(probe="kept")
        seen: list[Any] = []
        thread = threading.Thread(target=lambda: seen.append(logger.get_current_keys()))
        thread.start()
        thread.join()
        assert "probe" not in seen[0]  # another thread's keys are its own
    finally:
        local_logs.share_functions()
    assert logger.get_current_keys()["probe"] == "kept"
    logger.remove_keys(["probe"])


def test_prints_and_log_lines_from_many_threads_stay_whole_lines(
    log_stream: io.StringIO, tmp_path: Path
) -> None:
    # A real file: writing to it releases the GIL, which is where other threads cut in.
    path = tmp_path / "local.log"
    target = path.open("w", encoding="utf-8")
    saved = sys.stdout, sys.stderr
    # As in `qomon-sync local > file 2>&1`: stdout, stderr and the Logger, all to one file.
    sys.stdout = sys.stderr = target
    logger.registered_handler.setStream(target)  # type: ignore[attr-defined]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: provoke interleaving
    undo = local_logs.whole_lines()
    blob = json.dumps({"_aws": {"metrics": list(range(40))}})
    try:

        def emf() -> None:
            for _ in range(3000):
                print(blob)  # writes the text, then the newline: two writes

        def log() -> None:
            for n in range(3000):
                logger.info("event processed", extra={"n": n})

        def warn() -> None:
            for n in range(500):
                print(json.dumps({"warning": n}), file=sys.stderr)

        threads = [threading.Thread(target=f) for f in (emf, log, emf, log, emf, log, warn)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        undo()
        sys.setswitchinterval(interval)
        sys.stdout, sys.stderr = saved
        logger.registered_handler.setStream(log_stream)  # type: ignore[attr-defined]
        target.close()
    # Unguarded, threads writing to one file even break UTF-8 sequences: read what is there.
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    broken = [line for line in lines if not _is_json(line)]
    assert not broken, f"{len(broken)} lines run into each other, e.g. {broken[0][:200]}"
    assert len(lines) == 3000 * 6 + 500


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
