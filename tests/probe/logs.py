"""The probe's log side: capture every line the pipeline writes, then search it for the
personal values and secrets the probe knows went through the pipeline.

Capture works at both levels a line can leave by: file descriptors 1 and 2 are pointed
at the capture file (anything written below Python: moto's server, a C library, a
`print` to `sys.__stdout__`), and so are `sys.stdout`, `sys.stderr` and every logging
handler that held a console stream (the Powertools Logger keeps the stream it was
created with, which under pytest is pytest's own). A marker sent by each of those paths
at the start proves the capture took them all.

The search reports kinds and line numbers, never the values it found.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from qomon_sync_dev.local_logs import WholeLines

CAPTURE_PATHS = (
    "print to sys.stdout",
    "print to sys.stderr",
    "write to file descriptor 1",
    "write to file descriptor 2",
    "the Powertools Logger",
    "a logging.Logger without handlers",
)


class Capture:
    """Every line written to stdout or stderr, by any means, goes to `path` until `stop`.

    `console` writes to what stdout was before (the probe's own progress lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marker = f"probe-capture-check-{uuid.uuid4().hex}"
        self.console: TextIO = sys.stdout
        self._saved_fds: list[int] = []
        self._saved_streams: tuple[TextIO, TextIO] | None = None
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._root_handler: logging.Handler | None = None
        self._file: IO[str] | None = None
        self._fd = -1

    def start(self) -> Capture:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._file = self.path.open("a", encoding="utf-8")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._saved_fds = [os.dup(1), os.dup(2)]
        self.console = os.fdopen(os.dup(self._saved_fds[0]), "w", encoding="utf-8")
        os.dup2(self._fd, 1)
        os.dup2(self._fd, 2)
        lock = threading.Lock()
        previous = (sys.stdout, sys.stderr)
        self._saved_streams = previous
        sys.stdout = WholeLines(self._file, lock)
        sys.stderr = WholeLines(self._file, lock)
        self._redirect_handlers({id(s) for s in (*previous, sys.__stdout__, sys.__stderr__)})
        return self

    def _redirect_handlers(self, console_ids: set[int]) -> None:
        from qomon_sync.handlers.observability import logger

        named = [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)]
        handlers = {h for lg in [logging.getLogger(), *named] for h in lg.handlers}
        handlers.add(logger.registered_handler)
        for handler in handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                stream = getattr(handler, "stream", None)
                if id(stream) in console_ids or handler is logger.registered_handler:
                    self._handlers.append((handler, handler.setStream(sys.stdout)))
        root = logging.getLogger()
        if not any(h in root.handlers for h, _ in self._handlers):
            # Records that reach the root would go to `logging.lastResort` (stderr), or to a
            # test runner's own handlers, which keep them out of any file: one more handler
            # writes them here as lastResort would.
            self._root_handler = _LastResort(sys.stderr)
            root.addHandler(self._root_handler)

    def check(self) -> None:
        """Send the marker by each path the pipeline's lines may take."""
        from qomon_sync.handlers.observability import logger

        tag = self.marker
        print(f"{tag} {CAPTURE_PATHS[0]}", flush=True)
        print(f"{tag} {CAPTURE_PATHS[1]}", file=sys.stderr, flush=True)
        os.write(1, f"{tag} {CAPTURE_PATHS[2]}\n".encode())
        os.write(2, f"{tag} {CAPTURE_PATHS[3]}\n".encode())
        logger.info(f"{tag} {CAPTURE_PATHS[4]}")
        logging.getLogger("qomon_sync_probe.capture_check").warning(f"{tag} {CAPTURE_PATHS[5]}")

    def stop(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for handler, stream in reversed(self._handlers):
            handler.setStream(stream)
        self._handlers.clear()
        if self._root_handler is not None:
            logging.getLogger().removeHandler(self._root_handler)
            self._root_handler = None
        if self._saved_streams is not None:
            sys.stdout, sys.stderr = self._saved_streams
            self._saved_streams = None
        if self._saved_fds:
            os.dup2(self._saved_fds[0], 1)
            os.dup2(self._saved_fds[1], 2)
            for fd in self._saved_fds:
                os.close(fd)
            self._saved_fds = []
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._file is not None:
            self._file.close()
            self._file = None

    def say(self, text: str) -> None:
        """A progress line of the probe's own, outside the capture."""
        print(text, file=self.console, flush=True)

    def close_console(self) -> None:
        if self.console is not sys.stdout and not self.console.closed:
            self.console.close()
        self.console = sys.stdout


class _LastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """What `logging.lastResort` writes when the root has no handler: a record that no
    logger below the root handled, at WARNING or above."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setLevel(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        node: logging.Logger | None = logging.getLogger(record.name)
        root = logging.getLogger()
        while node is not None and node is not root:
            if node.handlers:
                return  # written by that logger's own handler (redirected if a console one)
            node = node.parent
        super().emit(record)


# -- reading the captured lines -----------------------------------------------------------


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    record: dict[str, Any] | None
    """The JSON object of the line, when it is one (a log record or an EMF blob)."""


def read_lines(path: Path) -> Iterator[Line]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, raw in enumerate(lines, start=1):
            text = raw.rstrip("\n")
            record = None
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except ValueError:
                    value = None
                record = value if isinstance(value, dict) else None
            yield Line(number, text, record)


def markers_found(path: Path, marker: str) -> list[str]:
    """Which of the capture paths' markers reached the file."""
    found = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for what in CAPTURE_PATHS:
        if f"{marker} {what}" in text:
            found.append(what)
    return found


# -- the search ---------------------------------------------------------------------------

KINDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "address",
    "answer_text",
    "tag",
    "note",
    "secret",
)
_WORD = re.compile(r"\w+")
_FLOAT = re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])")
_BETWEEN_DIGITS = re.compile(r"(?<=\d)[\s.\-()/]+(?=\d)")
_DIGIT_RUN = re.compile(r"\d+")
PHONE_CORE = 9
"""A phone number is searched by its last nine digits, the subscriber part, at the end of
a run of 9 to 15 digits once separators between digits are dropped: E.164 (`+33...`,
`0033...`), national with a leading 0, spaced, dashed or dotted. Decimal numbers (the
metrics' latencies) are left out first: their digits are no phone's."""


@dataclass
class Personal:
    """The personal values and secrets the probe knows passed through the pipeline."""

    values: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})

    def add(self, kind: str, *values: str | None) -> None:
        for value in values:
            if value and value.strip():
                self.values[kind].add(value.strip())

    def count(self) -> dict[str, int]:
        return {kind: len(values) for kind, values in self.values.items()}


@dataclass(frozen=True)
class Hit:
    kind: str
    line: int
    where: str
    """The JSON key path of the value in the line's record, or "text"."""
    message: str
    """The record's `message` and function, when the value is not in them."""


@dataclass
class ScanResult:
    lines: int = 0
    records: int = 0
    metric_blobs: int = 0
    other_lines: int = 0
    hits_by_kind: Counter[str] = field(default_factory=Counter)
    lines_with_hits: int = 0
    first_hits: list[Hit] = field(default_factory=list)


def _variants(value: str) -> set[str]:
    """The forms a value may take in a line: as is, JSON-escaped, URL-encoded."""
    folded = value.casefold()
    forms = {folded, json.dumps(folded)[1:-1], urllib.parse.quote(folded, safe="")}
    forms.add(urllib.parse.quote_plus(folded))
    return {f.casefold() for f in forms if f}


class Scanner:
    """Finds the known values in lines: each form of each value is indexed by its rarest
    word, so that a line is compared only with the values that share one of its words
    (and a one-word value matches whole words only)."""

    def __init__(self, personal: Personal, *, keep_first: int = 5) -> None:
        self.keep_first = keep_first
        entries: list[tuple[str, str, list[str]]] = []
        self.phone_cores: dict[str, str] = {}
        for kind, values in personal.values.items():
            for value in values:
                if kind == "phone":
                    digits = re.sub(r"\D", "", value)
                    if len(digits) >= PHONE_CORE:
                        self.phone_cores[digits[-PHONE_CORE:]] = kind
                    continue
                for form in _variants(value):
                    words = _WORD.findall(form)
                    if words:
                        entries.append((kind, form, words))
        frequency = Counter(w for _, _, words in entries for w in set(words))
        self.index: dict[str, list[tuple[str, str]]] = {}
        for kind, form, words in entries:
            anchor = min(words, key=lambda w: (frequency[w], -len(w)))
            self.index.setdefault(anchor, []).append((kind, form))

    def scan(self, lines: Iterable[Line]) -> ScanResult:
        result = ScanResult()
        for line in lines:
            result.lines += 1
            if line.record is None:
                result.other_lines += 1
            elif "_aws" in line.record:
                result.metric_blobs += 1
            else:
                result.records += 1
            kinds = self.kinds_in(line)
            if kinds:
                result.lines_with_hits += 1
                result.hits_by_kind.update(kinds)
                for kind in sorted(kinds):
                    if len(result.first_hits) < self.keep_first:
                        result.first_hits.append(self._hit(kind, line))
        return result

    def _texts(self, line: Line) -> list[str]:
        texts = [line.text.casefold()]
        if line.record is not None:
            texts.append("\n".join(s.casefold() for _, s in _leaves(line.record)))
        return texts

    def kinds_in(self, line: Line) -> set[str]:
        found: set[str] = set()
        for text in self._texts(line):
            found |= self._matches(text)
        return found

    def _matches(self, text: str) -> set[str]:
        found = set()
        for word in set(_WORD.findall(text)):
            for kind, form in self.index.get(word, ()):
                if kind not in found and form in text:
                    found.add(kind)
        if self.phone_cores:
            joined = _BETWEEN_DIGITS.sub("", _FLOAT.sub(" ", text))
            for run in _DIGIT_RUN.findall(joined):
                phone = self.phone_cores.get(run[-PHONE_CORE:]) if 9 <= len(run) <= 15 else None
                if phone is not None:
                    found.add(phone)
        return found

    def _hit(self, kind: str, line: Line) -> Hit:
        if line.record is None:
            return Hit(kind, line.number, "text", "")
        where = "text"
        for path, leaf in _leaves(line.record):
            if kind in self._matches(leaf.casefold()):
                where = path
                break
        message = " / ".join(
            str(line.record.get(key))
            for key in ("function_name", "message")
            if isinstance(line.record.get(key), str)
        )
        if kind in self._matches(message.casefold()):
            message = "(its message holds the value)"
        return Hit(kind, line.number, where, message)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a decoded JSON value (keys too), with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield f"{child} (key)", str(key)
            yield from _leaves(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path or "(root)", value
    elif value is not None:
        yield path or "(root)", str(value)
