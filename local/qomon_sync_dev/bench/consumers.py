"""Several consumers of the changes queue, each its own process, as Lambda instances are.

`qomon-sync bench --consumers N` plays an event source mapping with MaximumConcurrency N:
N processes, each running the poller of local mode (local_lambda.EventSourcePoller) with the
very same handler, against the one local AWS and the one stand-in of the parent. Nothing
is shared between them but what AWS would share: the queue, the tables (the staging
table's token bucket, forms and e-mails included) and Qomon. Each process reports what
it did when it stops: invocations, messages it left on the queue, crashes, and the
handler's own counters (events staged, flushes deferred for want of time or tokens,
flush markers sent, events left for redelivery), read as CloudWatch reads them: from the
EMF lines the handler prints.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import os
import queue as queues
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from qomon_sync_dev.local_logs import WholeLines, metric_data
from qomon_sync_dev.local_mode import Endpoints

START_TIMEOUT_S = 120.0


@dataclass
class ConsumerReport:
    invocations: int = 0
    returned: int = 0
    crashes: int = 0
    counts: dict[str, float] = field(default_factory=dict)


def _consume(
    endpoints: dict[str, Any], function_timeout_s: float, signals: tuple[Any, Any, Any, Any]
) -> None:
    """One consumer process: say it is ready, wait for `go`, poll until `stop`, report."""
    ready, go, stop, reports = signals
    counts: Counter[str] = Counter()

    def tally(line: str) -> None:
        if line.startswith('{"_aws"'):
            for _, data in metric_data(json.loads(line)):
                counts.update({datum["MetricName"]: datum["Value"] for datum in data})

    with (
        open(os.devnull, "w", encoding="utf-8") as quiet,
        contextlib.redirect_stdout(WholeLines(quiet, threading.Lock(), on_line=tally)),
    ):
        from qomon_sync_dev.local_lambda import EventSourcePoller
        from qomon_sync_dev.local_mode import LocalOptions

        # Lambda's INIT phase: an instance loads the handler's module before it takes its
        # first batch, each on its own CPU. The poller would import it on its first poll,
        # after `go`: N processes importing at once on this machine's few CPUs would put
        # their start-up, not the pipeline, in the measured time.
        importlib.import_module("qomon_sync.handlers.sync")

        poller = EventSourcePoller(
            Endpoints(**endpoints),
            LocalOptions(function_timeout_s=function_timeout_s, paused=True),
        )
        poller.start()
        ready.release()
        go.wait()
        poller.resume()
        stop.wait()
        poller.stopping.set()
        poller.join(timeout=120)
        reports.put(
            asdict(
                ConsumerReport(
                    invocations=poller.invocations,
                    returned=poller.returned,
                    crashes=len(poller.errors),
                    counts=dict(counts),
                )
            )
        )


class Consumers:
    """N consumer processes; `start()` lets them poll, `stop()` ends them and reports."""

    def __init__(self, endpoints: Endpoints, count: int, *, function_timeout_s: float) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._ready = context.Semaphore(0)
        self._go = context.Event()
        self._stop = context.Event()
        self._reports: Any = context.Queue()
        self._processes = [
            context.Process(
                target=_consume,
                args=(
                    asdict(endpoints),
                    function_timeout_s,
                    (self._ready, self._go, self._stop, self._reports),
                ),
                name=f"consumer-{n}",
                daemon=True,
            )
            for n in range(count)
        ]

    def __enter__(self) -> Consumers:
        for process in self._processes:
            process.start()
        for _ in self._processes:  # imported, connected, polling paused
            if not self._ready.acquire(timeout=START_TIMEOUT_S):
                raise RuntimeError("a consumer process did not start")
        return self

    def start(self) -> None:
        self._go.set()

    def stop(self) -> ConsumerReport:
        self._go.set()
        self._stop.set()
        total = ConsumerReport()
        counts: Counter[str] = Counter()
        for _ in self._processes:
            try:
                report = self._reports.get(timeout=150)
            except queues.Empty:
                total.crashes += 1
                continue
            total.invocations += report["invocations"]
            total.returned += report["returned"]
            total.crashes += report["crashes"]
            counts.update(report["counts"])
        total.counts = dict(counts)
        return total

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._go.set()
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
