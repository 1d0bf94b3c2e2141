"""Local mode's output: one line per record, each with its own function's name.

In AWS the ingest and the sync functions are two processes, each with its own Powertools
Logger and Metrics and its own log stream. Local mode runs both handlers as threads of one
process, where `handlers/observability.py`'s module-level Logger and Metrics are shared:

- the Logger's keys (the Lambda context `inject_lambda_context` sets: function name,
  request id, cold start; the correlation id) live in its formatter, so the last handler
  invoked named every line of both threads;
- the Metrics' metric set is one dict, so one function's EMF blob carried the other's
  metrics;
- an EMF blob is `print`ed, which writes the text and the newline apart, and stdout and
  stderr buffer separately: lines of two threads (or of stdout and stderr sent to one
  file) ran into each other.

`isolate_functions()` gives each thread its own formatter keys and metric set, as each
function has in AWS, without touching the Lambda code; `whole_lines()` makes stdout and
stderr write whole lines only, one at a time.
"""

from __future__ import annotations

import copy
import io
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

# qomon_sync.handlers.observability is imported where it is used, not here: its Logger
# reads POWERTOOLS_LOG_LEVEL when it is created, which callers (the soak) set first.

_THREADS = "_qomon_sync_threads"
_FIRST = "_qomon_sync_first"


class _PerThread:
    """An attribute with one value per thread. A thread's first read starts from a copy of
    what the attribute held when it was made per-thread (or from `initial`)."""

    def __init__(self, initial: Callable[[Any], Any] | None = None) -> None:
        self._initial = initial
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        values = instance.__dict__[_THREADS]
        try:
            return getattr(values, self._name)
        except AttributeError:
            first = (
                self._initial(instance)
                if self._initial is not None
                else copy.deepcopy(instance.__dict__[_FIRST][self._name])
            )
            setattr(values, self._name, first)
            return first

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(instance.__dict__[_THREADS], self._name, value)


class _PerThreadFormatter(LambdaPowertoolsFormatter):
    log_format = _PerThread()


def _default_dimensions(provider: Any) -> dict[str, str]:
    return {k: v if isinstance(v, str) else str(v) for k, v in provider.default_dimensions.items()}


class _PerThreadMetrics(AmazonCloudWatchEMFProvider):
    metric_set = _PerThread(lambda provider: {})
    dimension_set = _PerThread(_default_dimensions)
    metadata_set = _PerThread(lambda provider: {})
    dimension_sets = _PerThread(lambda provider: [])
    timestamp = _PerThread(lambda provider: None)


_PER_THREAD: dict[type, type] = {
    LambdaPowertoolsFormatter: _PerThreadFormatter,
    AmazonCloudWatchEMFProvider: _PerThreadMetrics,
}


def _make_per_thread(instance: Any) -> bool:
    cls = type(instance)
    per_thread = _PER_THREAD.get(cls)
    if per_thread is None:
        return cls in _PER_THREAD.values()  # already done, or not Powertools' own class
    names = [n for n, v in vars(per_thread).items() if isinstance(v, _PerThread)]
    instance.__dict__[_FIRST] = {n: instance.__dict__.pop(n) for n in names}
    instance.__dict__[_THREADS] = threading.local()
    instance.__class__ = per_thread
    return True


def _make_shared(instance: Any) -> None:
    per_thread = type(instance)
    original = next((k for k, v in _PER_THREAD.items() if v is per_thread), None)
    if original is None:
        return
    names = [n for n, v in vars(per_thread).items() if isinstance(v, _PerThread)]
    current = {n: getattr(instance, n) for n in names}  # the calling thread's values
    instance.__class__ = original
    del instance.__dict__[_THREADS], instance.__dict__[_FIRST]
    instance.__dict__.update(current)


def isolate_functions() -> None:
    """Per-thread Logger keys and metric sets for the shared Powertools objects."""
    from qomon_sync.handlers.observability import logger, metrics

    _make_per_thread(logger.registered_formatter)
    _make_per_thread(metrics.provider)


def share_functions() -> None:
    """Undo `isolate_functions` (the calling thread's keys and metrics are kept)."""
    from qomon_sync.handlers.observability import logger, metrics

    _make_shared(logger.registered_formatter)
    _make_shared(metrics.provider)


class WholeLines(io.TextIOBase):
    """A text stream that writes only whole lines to its target, each under a lock
    shared with the other streams made from it, and flushed at once: a line is never
    cut by another thread's, nor by the other stream's when both go to one file."""

    def __init__(self, target: TextIO, lock: threading.Lock) -> None:
        super().__init__()
        self.target = target
        self._lock = lock
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buffered = getattr(self._pending, "text", "") + text
        cut = buffered.rfind("\n") + 1
        if cut:
            with self._lock:
                self.target.write(buffered[:cut])
                self.target.flush()
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
