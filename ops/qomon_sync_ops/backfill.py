"""`qomon-sync backfill FILE --source NAME`: queue a file of changes, resumably.

FILE is one of:
- a CSV with a header; each row is one change event. A column is mapped to what it
  feeds with `--column HEADER=TARGET` (repeatable), or is named after its target:
  `contact.id`, `contact.mail`, `set.<field>` (`set.mobile`, `set.address.city`),
  `field:<form label or id>` (an answer), `tags.add` / `tags.remove` (names separated
  by `;`), `note`, `event_id`, `occurred_at`, `if_missing`. An empty cell changes
  nothing (it never clears Qomon data);
- JSONL of change events v1 (one object, or a list, per line); `event_id` and
  `occurred_at` may be left out;
- JSONL of the source's own deliveries (a Typeform or Tally `form_response`, a Brevo
  event...), one per line, turned into change events by the source's mapping
  (`--config`, the deployment's `sources.yaml`) as the ingest function would.

Every event's `source` is NAME, and its event id is stable: the file's own (`event_id`,
a sender's delivery id) or one derived from the file's name, the row's number and its
content. A rerun, or the same file queued twice, applies nothing twice (the sync's
ledger knows `<source>:<event_id>`). Events are queued in the file's order, written,
checked and sent by the very queueing code the ingest function uses
(`adapters/changes_queue.py`: one contact's changes in one message group; a row holding
an event the queue would refuse is not queued, and its problem names the field).

Progress is kept beside FILE (`FILE.progress.json`) after every batch queued: after an
interruption (Ctrl-C, a lost connection, a killed terminal) the same command goes on from
where it stopped, and says where.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from tqdm import tqdm

from qomon_sync.adapters.changes_queue import (
    QueueRefused,
    QueueUnavailable,
    Unsendable,
    as_entries,
    send,
)
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync.domain.validation import error_paths
from qomon_sync.sources import registry as source_registry
from qomon_sync.sources.base import WebhookError, WebhookRequest
from qomon_sync_ops.cli import execute
from qomon_sync_ops.target import OpsError, Target
from qomon_sync_ops.target import add_arguments as add_target_arguments
from qomon_sync_ops.text import counted, duration

REFILL_TOKENS_PER_S = 10
"""Qomon's documented refill: the floor of the file's time, whatever the concurrency."""
GET_TOKENS, PATCH_TOKENS, SEARCH_TOKENS, FORMS_TOKENS = 1, 5, 1, 6
SEND_EVERY = 10
"""Entries queued per batch, after which the progress file is written."""
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")
TARGETS = (
    "contact.id, contact.mail, set.<field>, field:<label>, tags.add, tags.remove, note, "
    "event_id, occurred_at, if_missing"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="a .csv, or .jsonl")
    parser.add_argument(
        "--source", required=True, help="the source the changes come from (each event's source)"
    )
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="HEADER=TARGET",
        help=f"what a CSV column feeds: {TARGETS}",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="the mapping file, for a JSONL of the source's deliveries (default: "
        "functions/sources.yaml of this checkout)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="read and check the file, estimate; queue nothing"
    )
    parser.add_argument(
        "--restart", action="store_true", help="ignore the progress file: from the first row"
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="the progress bar and time estimate (auto: on a terminal only)",
    )
    add_target_arguments(parser)


def run_from_args(args: argparse.Namespace) -> int:
    if args.dry_run and not (args.stack or args.local or args.endpoints_file):
        return dry_run(args, sys.stdout)
    return execute(args, run)


# -- reading the file ----------------------------------------------------------------------


@dataclass
class Row:
    number: int
    """1-based: the data row of a CSV (the header is not counted), the line of a JSONL."""
    events: list[ChangeEvent] = field(default_factory=list)
    problem: str | None = None


def read_rows(path: Path, source: str, columns: dict[str, str], config: Path | None) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise OpsError(f"there is no file {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise OpsError(f"{path} cannot be read as UTF-8 text ({error})") from None
    now = datetime.now(UTC)
    if path.suffix.lower() == ".csv":
        return list(_csv_rows(text, path, source, columns, now))
    if path.suffix.lower() not in {".jsonl", ".ndjson", ".json"}:
        raise OpsError(f"{path}: give a .csv or a .jsonl file")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if _is_change_event_line(first):
        return list(_event_rows(lines, path, source, now))
    return list(_delivery_rows(lines, source, config, now))


def row_id(path: Path, number: int, content: str) -> str:
    """A stable event id for a row that has none: the file's name, the row, its content."""
    digest = hashlib.sha256(f"{path.name}\n{number}\n{content}".encode()).hexdigest()[:16]
    stem = _SAFE_ID.sub("-", path.stem).strip("-")[:60] or "backfill"
    return f"{stem}-{number}-{digest}"


def _validated(data: dict[str, Any], source: str) -> ChangeEvent:
    return ChangeEvent.model_validate({**data, "source": source})


def _problem(error: ValidationError) -> str:
    return "; ".join(f"{path}: {why}" for path, why in error_paths(error))


def _is_change_event_line(line: str) -> bool:
    try:
        data = json.loads(line)
    except ValueError:
        return False
    items = data if isinstance(data, list) else [data]
    return bool(items) and all(isinstance(i, dict) and "contact" in i for i in items)


def _event_rows(lines: Sequence[str], path: Path, source: str, now: datetime) -> Iterator[Row]:
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        row = Row(number)
        try:
            data = json.loads(line)
            items = data if isinstance(data, list) else [data]
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ValueError("not a JSON object")
                item.setdefault("event_id", row_id(path, number, f"{index}\n{line}"))
                item.setdefault("occurred_at", now.isoformat())
                row.events.append(_validated(item, source))
        except ValidationError as error:
            row.events, row.problem = [], _problem(error)
        except ValueError as error:
            row.events, row.problem = [], f"not a change event ({error})"
        yield row


def _delivery_rows(
    lines: Sequence[str], source_name: str, config: Path | None, now: datetime
) -> Iterator[Row]:
    mapping = config or Path(__file__).resolve().parents[2] / "functions" / "sources.yaml"
    if not mapping.is_file():
        raise OpsError("give the deployment's mapping file with --config (sources.yaml)")
    try:
        source = source_registry.build_sources(_load_mapping(mapping)).get(source_name)
    except Exception as error:  # MappingConfigError lists the problems
        raise OpsError(f"the mapping file {mapping} is not valid: {error}") from None
    if source is None:
        raise OpsError(f"{mapping} has no source {source_name!r}")
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        request = WebhookRequest(
            source=source_name,
            body=line.encode("utf-8"),
            headers={"content-type": "application/json"},
            received_at=now,
        )
        try:
            events = source.change_events(request)
        except WebhookError as error:
            yield Row(number, problem=f"{error.field or 'body'}: {error.detail}")
            continue
        yield Row(number, [e.model_copy(update={"source": source_name}) for e in events])


def _load_mapping(path: Path) -> Any:
    """The mapping file, through the registry (which knows every preset)."""
    return source_registry.load_mapping(path)


def _csv_rows(
    text: str, path: Path, source: str, columns: dict[str, str], now: datetime
) -> Iterator[Row]:
    reader = csv.DictReader(text.splitlines(), strict=True)
    headers = reader.fieldnames or []
    if not headers:
        raise OpsError(f"{path} has no header row")
    targets = {h: columns.get(h, h) for h in headers}
    unknown = [f"{h!r} ({t})" for h, t in targets.items() if not _known_target(t)]
    if unknown:
        raise OpsError(
            f"{path}: the columns {', '.join(unknown)} feed nothing known; name each with "
            f"--column HEADER=TARGET, a target being one of: {TARGETS}"
        )
    try:
        for number, record in enumerate(reader, start=1):
            content = json.dumps(record, sort_keys=True, ensure_ascii=False)
            row = Row(number)
            try:
                data = _csv_event(record, targets)
                data.setdefault("event_id", row_id(path, number, content))
                data.setdefault("occurred_at", now.isoformat())
                row.events.append(_validated(data, source))
            except ValidationError as error:
                row.problem = _problem(error)
            yield row
    except csv.Error as error:
        raise OpsError(f"{path} is not a readable CSV: {error}") from None


def _known_target(target: str) -> bool:
    return (
        target in {"contact.id", "contact.mail", "tags.add", "tags.remove", "note"}
        or target in {"event_id", "occurred_at", "if_missing"}
        or (target.startswith("set.") and len(target) > 4)
        or (target.startswith("field:") and len(target) > 6)
    )


def _csv_event(record: dict[str, str | None], targets: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for header, target in targets.items():
        value = (record.get(header) or "").strip()
        if not value:
            continue  # an empty cell changes nothing
        _put(event, target, value)
    return event


def _put(event: dict[str, Any], target: str, value: str) -> None:
    if target in {"event_id", "occurred_at", "if_missing"}:
        event[target] = value
    elif target.startswith("contact."):
        event.setdefault("contact", {})[target.removeprefix("contact.")] = value
    elif target.startswith("set."):
        where = event.setdefault("set", {})
        *parents, leaf = target.removeprefix("set.").split(".")
        for parent in parents:
            where = where.setdefault(parent, {})
        where[leaf] = value
    elif target.startswith("field:"):
        event.setdefault("fields", []).append(
            {"field": target.removeprefix("field:"), "value": value}
        )
    elif target.startswith("tags."):
        names = [name.strip() for name in value.split(";") if name.strip()]
        event.setdefault("tags", {}).setdefault(target.removeprefix("tags."), []).extend(names)
    else:  # note
        event.setdefault("notes", []).append({"data": value})


# -- what the file costs -------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    events: int
    contacts: int
    tokens: int

    @property
    def seconds(self) -> float:
        return self.tokens / REFILL_TOKENS_PER_S

    def sentence(self) -> str:
        return (
            f"Qomon's token budget needs at least {duration(self.seconds)} for this file: "
            f"{counted(self.events, 'event')} for {counted(self.contacts, 'contact')}, about "
            f"{self.tokens:,} tokens at {REFILL_TOKENS_PER_S} tokens/s (one GET per contact, "
            f"a search per contact named by e-mail, one PATCH of {PATCH_TOKENS} tokens per "
            "contact with changes; other integrations of the space share that budget)."
        )


def estimate(rows: Sequence[Row]) -> Estimate:
    """The floor of the file's work: each contact's events folded into one read and one
    write, as when they arrive together."""
    by_contact: dict[tuple[int | None, str | None], bool] = {}
    by_mail: set[tuple[int | None, str | None]] = set()
    events = 0
    for row in rows:
        for event in row.events:
            events += 1
            key = event.contact.person
            changes = bool(event.set_fields() or event.tags or event.fields or event.notes)
            by_contact[key] = by_contact.get(key, False) or changes
            if event.contact.id is None:
                by_mail.add(key)
    tokens = (
        (FORMS_TOKENS if by_contact else 0)
        + GET_TOKENS * len(by_contact)
        + SEARCH_TOKENS * len(by_mail)
        + PATCH_TOKENS * sum(by_contact.values())
    )
    return Estimate(events, len(by_contact), tokens)


def too_old(rows: Sequence[Row], days: int | None, now: datetime) -> int:
    if days is None:
        return 0
    return sum(
        1
        for row in rows
        for event in row.events
        if (now - event.occurred_at).total_seconds() >= days * 86_400
    )


# -- progress ------------------------------------------------------------------------------


@dataclass
class Progress:
    path: Path
    fingerprint: str
    next_row: int = 1
    queued: int = 0
    done: bool = False

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> tuple[Progress, str | None]:
        """The progress of this very file for this target, and a sentence if it resumes."""
        fresh = cls(path, fingerprint)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return fresh, None
        if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
            return fresh, (
                f"{path.name} was for another version of the file, source or target: "
                "starting from the first row (rows queued before are not applied twice)"
            )
        kept = cls(
            path,
            fingerprint,
            next_row=int(data.get("next_row", 1)),
            queued=int(data.get("queued", 0)),
            done=bool(data.get("done")),
        )
        return kept, None

    def save(self) -> None:
        data = {
            "fingerprint": self.fingerprint,
            "next_row": self.next_row,
            "queued": self.queued,
            "done": self.done,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


def fingerprint(path: Path, source: str, target: Target) -> str:
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"\n{source}\n{target.changes_queue_url}".encode())
    return digest.hexdigest()


def progress_path(path: Path) -> Path:
    return path.with_name(path.name + ".progress.json")


# -- the command ---------------------------------------------------------------------------


def _columns(args: argparse.Namespace) -> dict[str, str]:
    columns = {}
    for given in args.column:
        header, sep, target = given.partition("=")
        if not sep or not header.strip() or not target.strip():
            raise OpsError(f"--column {given!r}: write it HEADER=TARGET (e.g. Email=contact.mail)")
        columns[header.strip()] = target.strip()
    return columns


def _show(args: argparse.Namespace) -> bool:
    return args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())


def _say_problems(rows: Sequence[Row], out: TextIO, limit: int = 10) -> None:
    bad = [row for row in rows if row.problem]
    if not bad:
        return
    print(
        f"{counted(len(bad), 'row')} could not be read and will not be queued "
        "(values are never shown):",
        file=out,
    )
    for row in bad[:limit]:
        print(f"  row {row.number}: {row.problem}", file=out)
    if len(bad) > limit:
        print(f"  ... and {len(bad) - limit} more", file=out)


def dry_run(args: argparse.Namespace, out: TextIO, target: Target | None = None) -> int:
    rows = read_rows(args.file, args.source, _columns(args), args.config)
    work = estimate(rows)
    print(
        f"Dry run: {args.file} holds {counted(len(rows), 'row')}, "
        f"{counted(work.events, 'change event')} for {counted(work.contacts, 'contact')}. "
        "Nothing was queued.",
        file=out,
    )
    print(work.sentence(), file=out)
    _say_problems(rows, out)
    old = too_old(rows, target.ledger_retention_days if target else None, datetime.now(UTC))
    if old:
        print(_too_old_sentence(old, target), file=out)
    print(f"Next: the same command without --dry-run queues them ({TARGETS_HINT}).", file=out)
    return 0


TARGETS_HINT = "with --stack NAME or --local"


def _too_old_sentence(old: int, target: Target | None) -> str:
    days = target.ledger_retention_days if target else None
    return (
        f"Warning: {counted(old, 'event')} occurred more than {days} days ago, longer than "
        "the ledger remembers: the sync will refuse them (outside_replay_window). Leave "
        "`occurred_at` out to date them now."
    )


def run(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    if args.dry_run:
        return dry_run(args, out, target)
    rows = read_rows(args.file, args.source, _columns(args), args.config)
    progress, note = Progress.load(
        progress_path(args.file), fingerprint(args.file, args.source, target)
    )
    if args.restart:
        progress = Progress(progress.path, progress.fingerprint)
    show = _show(args)
    if note:
        print(note, file=out)
    if progress.done:
        print(
            f"{args.file} was already queued completely ({counted(progress.queued, 'event')}). "
            "Nothing to do; --restart queues it again (nothing is applied twice).",
            file=out,
        )
        return 0
    if progress.next_row > 1:
        print(
            f"Resuming {args.file} at row {progress.next_row} of {len(rows)} "
            f"({counted(progress.queued, 'event')} queued before).",
            file=out,
        )
    if show:
        print(
            estimate([r for r in rows if r.number >= progress.next_row]).sentence(), file=sys.stderr
        )
    return _queue(args=args, target=target, rows=rows, progress=progress, out=out, show=show)


def _queue(
    *,
    args: argparse.Namespace,
    target: Target,
    rows: Sequence[Row],
    progress: Progress,
    out: TextIO,
    show: bool,
) -> int:
    sqs = target.client("sqs")
    todo = [row for row in rows if row.number >= progress.next_row]
    size = shutil.get_terminal_size()
    bar = tqdm(
        total=len(rows),
        initial=len(rows) - len(todo),
        unit="row",
        file=sys.stderr,
        disable=not show,
        # A terminal that reports no size (a pty, some consoles) still gets a bar: tqdm
        # hides it when it finds no line to draw it on.
        ncols=min(size.columns, 100),
        nrows=max(size.lines, 2),
    )
    restore = _stop_on_sigterm()
    try:
        refused = _send_all(sqs, target, todo, progress, bar)
    except KeyboardInterrupt:
        bar.close()
        print(
            f"Stopped at row {progress.next_row} of {len(rows)} "
            f"({counted(progress.queued, 'event')} queued so far). Run the same command "
            "again to go on from there; nothing will be queued or applied twice.",
            file=out,
        )
        return 130
    except QueueUnavailable as error:
        bar.close()
        print(
            f"The changes queue did not take row {progress.next_row} ({error}). Stopped "
            f"there ({counted(progress.queued, 'event')} queued so far); run the same command "
            "again later to go on.",
            file=out,
        )
        return 1
    finally:
        restore()
    bar.close()
    progress.done = True
    progress.save()
    _say_done(args=args, target=target, rows=rows, progress=progress, refused=refused, out=out)
    return 1 if refused or any(r.problem for r in rows) else 0


def _stop_on_sigterm() -> Any:
    """SIGTERM (a closed terminal, `kill`) stops like Ctrl-C: after the batch in hand."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def _entries(row: Row, source: str, pseudonyms: Pseudonyms) -> list[dict[str, Any]]:
    """The row's queue messages, checked as the ingest checks its own; none, and the row's
    problem said, if the queue would refuse one of them."""
    ids = [
        hashlib.sha256(f"backfill\n{source}\n{event.event_id}".encode()).hexdigest()
        for event in row.events
    ]
    try:
        return as_entries(row.events, ids, pseudonyms=pseudonyms)
    except Unsendable as error:
        row.problem = error.detail
        return []


def _send_all(
    sqs: Any, target: Target, todo: Sequence[Row], progress: Progress, bar: Any
) -> list[Row]:
    """Queue the rows in order; the progress file follows every batch. Returns the rows
    SQS refused for good."""
    refused: list[Row] = []
    pending: list[tuple[Row, list[dict[str, Any]]]] = []
    pseudonyms = target.pseudonyms()
    if any(event.contact.id is None for row in todo for event in row.events):
        pseudonyms.check()  # an unreadable key is said before anything is queued
    for row in todo:
        entries = _entries(row, row.events[0].source, pseudonyms) if row.events else []
        if entries:
            pending.append((row, entries))
        if sum(len(e) for _, e in pending) >= SEND_EVERY or row is todo[-1]:
            failed = {id(r) for r in _send(sqs, target, pending)}
            refused += [r for r, _ in pending if id(r) in failed]
            progress.queued += sum(len(e) for r, e in pending if id(r) not in failed)
            progress.next_row = row.number + 1
            progress.save()
            bar.update(row.number - bar.n)
            pending = []
    return refused


def _send(
    sqs: Any, target: Target, pending: Sequence[tuple[Row, list[dict[str, Any]]]]
) -> list[Row]:
    if not pending:
        return []
    entries = [dict(e, Id=str(i)) for i, e in enumerate(e for _, es in pending for e in es)]
    try:
        send(sqs, target.changes_queue_url, entries)
        return []
    except QueueRefused:
        pass
    # One of them is refused for good: find which, row by row (the others go through).
    refused = []
    for row, row_entries in pending:
        try:
            send(sqs, target.changes_queue_url, row_entries)
        except QueueRefused as error:
            row.problem = f"refused by the queue ({error.code})"
            refused.append(row)
    return refused


def _say_done(
    *,
    args: argparse.Namespace,
    target: Target,
    rows: Sequence[Row],
    progress: Progress,
    refused: Sequence[Row],
    out: TextIO,
) -> None:
    print(
        f"Queued {args.file}: {counted(progress.queued, 'change event')} from "
        f"{counted(len(rows), 'row')} into {target.description}'s changes queue, in order.",
        file=out,
    )
    _say_problems(rows, out)
    old = too_old(rows, target.ledger_retention_days, datetime.now(UTC))
    if old:
        print(_too_old_sentence(old, target), file=out)
    print(
        "Next: they are applied at the pace of the space's Qomon tokens; `qomon-sync status` "
        "shows the queue going down, `qomon-sync dlq list` any event that could not be "
        "applied. Running this again applies nothing twice.",
        file=out,
    )
