"""Local mode's output: one line per record, each with its own function's name, and its
metrics in the local CloudWatch.

In AWS the ingest and the sync functions are two processes, each with its own Powertools
Logger and its own log stream. Local mode runs both handlers as threads of one process,
where `handlers/observability.py`'s module-level Logger is shared (its Metrics keeps one
metric set per thread, so each function's EMF blob carries its own metrics):

- the Logger's keys (the Lambda context `inject_lambda_context` sets: function name,
  request id, cold start; the correlation id) live in its formatter, so the last handler
  invoked named every line of both threads. `isolate_functions()` hands the Logger's
  handler a formatter of ours (`logging.Handler.setFormatter`, as Powertools' own
  "bring your own formatter" does) that keeps one Powertools formatter per thread;
- an EMF blob is `print`ed, which writes the text and the newline apart, and stdout and
  stderr buffer separately: lines of two threads (or of stdout and stderr sent to one
  file) ran into each other. `whole_lines()` makes them write whole lines only.

`LocalCloudWatch` plays CloudWatch's part: it reads the EMF lines the functions print on
stdout and puts them, from a background thread, into the local AWS, so `qomon-sync status
--local` reads the last hour with the same GetMetricData queries as against a stack.
Nothing is kept across a restart.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import queue
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3

# qomon_sync.handlers.observability is imported where it is used, not here: its Logger
# reads POWERTOOLS_LOG_LEVEL when it is created, which callers (the soak) set first.


class PerThreadFormatter(logging.Formatter):
    """Powertools' formatter, one copy per thread: each thread's keys are its own. A
    thread's copy starts from the keys the formatter held when it was made per-thread;
    what the Logger asks of its formatter (append_keys, remove_keys, clear_state, ...) is
    asked of the calling thread's copy."""

    def __init__(self, shared: logging.Formatter) -> None:
        super().__init__()
        self.shared = shared
        self._local = threading.local()

    def mine(self) -> Any:
        formatter = getattr(self._local, "formatter", None)
        if formatter is None:
            formatter = self._local.formatter = copy.deepcopy(self.shared)
        return formatter

    def format(self, record: logging.LogRecord) -> str:
        return str(self.mine().format(record))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.mine(), name)


def isolate_functions() -> None:
    """Per-thread Logger keys for the shared Powertools Logger."""
    from qomon_sync.handlers.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler.formatter, PerThreadFormatter):
        assert handler.formatter is not None
        handler.setFormatter(PerThreadFormatter(handler.formatter))


def share_functions() -> None:
    """Undo `isolate_functions` (the calling thread's keys are kept)."""
    from qomon_sync.handlers.observability import logger

    handler = logger.registered_handler
    if isinstance(handler.formatter, PerThreadFormatter):
        handler.setFormatter(handler.formatter.mine())


class WholeLines(io.TextIOBase):
    """A text stream that writes only whole lines to its target, each under a lock
    shared with the other streams made from it, and flushed at once: a line is never
    cut by another thread's, nor by the other stream's when both go to one file. Each
    line is also handed to `on_line` (local mode's CloudWatch reads its EMF there)."""

    def __init__(
        self,
        target: TextIO,
        lock: threading.Lock,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.on_line = on_line
        self._lock = lock
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        cut = buffered.rfind("\n") + 1
        if cut:
            with self._lock:
                self.target.write(buffered[:cut])
                self.target.flush()
            if self.on_line is not None:
                for line in buffered[:cut].splitlines():
                    self.on_line(line)
        self._pending.text = buffered[cut:]
        return len(text)

    def flush(self) -> None:
        rest, self._pending.text = getattr(self._pending, "text", ""), ""
        with self._lock:
            if rest:
                self.target.write(rest)
            self.target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.target.encoding

    @property
    def buffer(self) -> Any:
        return self.target.buffer


def whole_lines() -> Callable[[], None]:
    """stdout, stderr and the Powertools Logger's stream write whole lines only (the
    process is local mode's: `qomon-sync local`). Returns what undoes it."""
    from qomon_sync.handlers.observability import logger

    lock = threading.Lock()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = WholeLines(stdout, lock)
    sys.stderr = WholeLines(stderr, lock)
    handler = logger.registered_handler
    previous = handler.setStream(sys.stdout) if hasattr(handler, "setStream") else None

    def undo() -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if previous is not None and hasattr(handler, "setStream"):
            handler.setStream(previous)
        sys.stdout, sys.stderr = stdout, stderr

    return undo


# -- the local CloudWatch --------------------------------------------------------------------


def metric_data(blob: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """An EMF blob as PutMetricData calls: (namespace, metric data) pairs."""
    aws = blob.get("_aws") or {}
    stamp = datetime.fromtimestamp(int(aws.get("Timestamp", 0)) / 1000, UTC)
    calls = []
    for directive in aws.get("CloudWatchMetrics") or []:
        names = (directive.get("Dimensions") or [[]])[0]
        dimensions = [{"Name": n, "Value": str(blob[n])} for n in names if n in blob]
        data = []
        for metric in directive.get("Metrics") or []:
            values = blob.get(metric["Name"])
            values = values if isinstance(values, list) else [values]
            data.append(
                {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Value": float(sum(v for v in values if isinstance(v, int | float))),
                    "Unit": metric.get("Unit", "None"),
                    "Timestamp": stamp,
                }
            )
        calls.append((str(directive.get("Namespace")), data))
    return calls


class LocalCloudWatch:
    """Reads the EMF lines the functions print on stdout and puts them into the local
    AWS's CloudWatch. Local mode calls `watch()` as each invocation starts: whoever holds
    sys.stdout (a test runner's capture, a test's own) may have replaced it since."""

    def __init__(self, aws_url: str, region: str) -> None:
        self._client = boto3.client(
            "cloudwatch",
            endpoint_url=aws_url,
            region_name=region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - local mode takes any key
        )
        self._blobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._publish, name="local-cloudwatch", daemon=True)
        self._lock = threading.Lock()
        self._watching = False

    def start(self) -> LocalCloudWatch:
        self._watching = True
        self._thread.start()
        self.watch()
        return self

    def watch(self) -> None:
        """Make sys.stdout go through a reader of ours, unless it already does."""
        with self._lock:
            if self._watching and getattr(sys.stdout, "on_line", None) != self.take:
                sys.stdout = WholeLines(sys.stdout, threading.Lock(), on_line=self.take)

    def take(self, line: str) -> None:
        if self._watching and line.startswith('{"_aws"'):
            with contextlib.suppress(ValueError):
                self._blobs.put(json.loads(line))

    def stop(self) -> None:
        with self._lock:
            self._watching = False
            if isinstance(sys.stdout, WholeLines) and sys.stdout.on_line == self.take:
                sys.stdout.flush()
                sys.stdout = sys.stdout.target
        self._blobs.put(None)
        self._thread.join(timeout=10)

    def flush(self, timeout_s: float = 10) -> None:
        """Wait until what was emitted so far is in the local CloudWatch (tests)."""
        done = threading.Event()
        self._blobs.put({"_flush": done})
        done.wait(timeout_s)

    def _publish(self) -> None:
        while (blob := self._blobs.get()) is not None:
            if "_flush" in blob:
                blob["_flush"].set()
                continue
            for namespace, data in metric_data(blob):
                # Metrics are for watching: a failure here never touches the pipeline.
                with contextlib.suppress(Exception):
                    self._client.put_metric_data(Namespace=namespace, MetricData=data)
