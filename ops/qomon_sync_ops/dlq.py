"""`qomon-sync dlq list | show | redrive | drop`: the dead-letter queue, in words.

Every event qomon-sync could not apply is a letter there, with its reason (`error_code`,
the runbook's codes). `list` shows them, `show` explains one and what to do, `redrive`
moves letters back once their cause is fixed, `drop` removes letters deliberately
abandoned. Reading never consumes a letter; moving sends it, then deletes it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync_ops import letters as dl
from qomon_sync_ops.cli import execute
from qomon_sync_ops.masking import masked_body
from qomon_sync_ops.preview import preview
from qomon_sync_ops.target import OpsError, Target
from qomon_sync_ops.target import add_arguments as add_target_arguments
from qomon_sync_ops.text import age, counted, table

NOT_REDRIVABLE = frozenset({"data_loss_guard", "invalid_replacement"})
"""Codes the runbook says not to redrive until qomon-sync itself is fixed."""
_SINCE = re.compile(r"^(\d+)\s*(s|m|min|h|d)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the dead letters, by code (nothing consumed)")
    add_target_arguments(listing)
    listing.add_argument("--code", action="append", help="only this code (repeatable)")
    listing.add_argument("--source", action="append", help="only this source (repeatable)")
    listing.add_argument("--since", help="only letters newer than this: 2h, 30m, 3d, or a date")
    listing.add_argument("--json", action="store_true", help="JSON lines, for scripts")
    listing.set_defaults(dlq_run=run_list)

    show = actions.add_parser("show", help="why one event failed, and what to do")
    add_target_arguments(show)
    show.add_argument("event_id", metavar="EVENT_ID", help="the event id (or message id)")
    show.add_argument(
        "--preview",
        action="store_true",
        help="read the contact from Qomon and say what would be written now (nothing sent)",
    )
    show.add_argument(
        "--show-personal-data",
        action="store_true",
        help="print the event (and a preview's body) as they are, personal data included",
    )
    show.set_defaults(dlq_run=run_show)

    redrive = actions.add_parser("redrive", help="move letters back to the changes queue")
    add_target_arguments(redrive)
    redrive.add_argument("--code", action="append", help="the letters with this code")
    redrive.add_argument(
        "--event-id", action="extend", nargs="+", default=None, help="these events"
    )
    redrive.add_argument("--all", action="store_true", help="every letter")
    redrive.add_argument("--dry-run", action="store_true", help="say what would move; move none")
    redrive.set_defaults(dlq_run=run_redrive)

    drop = actions.add_parser("drop", help="remove letters deliberately abandoned")
    add_target_arguments(drop)
    drop.add_argument("--event-id", action="extend", nargs="+", required=True, help="these")
    drop.add_argument("--yes", action="store_true", help="really drop them (they are gone)")
    drop.add_argument(
        "--record", type=Path, help="also append what was dropped (no personal data) to F"
    )
    drop.set_defaults(dlq_run=run_drop)


# -- list ----------------------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    found = _SINCE.match(text.strip().lower())
    if found:
        return now - timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise OpsError(f"--since {text!r}: give a duration (2h, 30m, 3d) or a date") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def selected(
    args: argparse.Namespace, letters: Sequence[dl.Letter], now: datetime
) -> list[dl.Letter]:
    since = parse_since(args.since, now) if args.since else None
    chosen = [
        letter
        for letter in letters
        if (not args.code or letter.code_label in args.code)
        and (not args.source or letter.source in args.source)
        and (since is None or (letter.when is not None and letter.when >= since))
    ]
    return sorted(chosen, key=lambda m: m.when or now)


def by_code(letters: Sequence[dl.Letter]) -> str:
    counts = Counter(letter.code_label for letter in letters)
    return ", ".join(f"{code} {n}" for code, n in counts.most_common())


def run_list(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    now = datetime.now(UTC)
    sqs = target.client("sqs")
    with dl.held(sqs, target.dead_letter_queue_url) as seen:
        chosen = selected(args, seen.letters, now)
    if args.json:
        for letter in chosen:
            print(json.dumps(letter.as_json(now), ensure_ascii=False), file=out)
        return 0
    where = f"The dead-letter queue of {target.description}"
    if not seen.letters:
        print(
            f"{where} is empty: every event was applied or is still on its way. Nothing to do.",
            file=out,
        )
        return 0
    head = f"{where} holds {counted(len(seen.letters), 'letter')} ({by_code(seen.letters)})"
    if len(chosen) != len(seen.letters):
        head += f"; {len(chosen)} match"
    print(head + ".", file=out)
    if chosen:
        rows = [
            [
                letter.event_id,
                letter.source,
                letter.code_label,
                ", ".join(letter.fields) or "-",
                age(letter.age_s(now)),
                str(letter.attempts or "?"),
                letter.group_id or "?",
            ]
            for letter in chosen
        ]
        print(
            table(["event id", "source", "code", "fields", "age", "attempts", "contact"], rows),
            file=out,
        )
    _say_unseen(seen, out)
    print(
        "Next: `qomon-sync dlq show EVENT_ID` says why one failed and what to do; once the "
        "cause is fixed, `qomon-sync dlq redrive --code CODE` applies them.",
        file=out,
    )
    return 0


def _say_unseen(seen: dl.Read, out: TextIO) -> None:
    if seen.unseen:
        print(
            f"({counted(seen.unseen, 'more letter')} could not be read now: SQS holds back a "
            "contact's later letters while its first ten are read, and shows them once those "
            "are redriven or dropped.)",
            file=out,
        )


# -- show ----------------------------------------------------------------------------------


def run_show(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    now = datetime.now(UTC)
    sqs = target.client("sqs")
    with dl.held(sqs, target.dead_letter_queue_url) as seen:
        found = [letter for letter in seen.letters if letter.matches(args.event_id)]
    if not found:
        print(
            f"No dead letter has the event id {args.event_id!r} in {target.description} "
            f"(it holds {counted(len(seen.letters), 'letter')}). It may have been redriven "
            "or dropped already; `qomon-sync dlq list` shows those there are.",
            file=out,
        )
        return 1
    for letter in found:
        _show_one(letter, now, out, target, personal=args.show_personal_data)
        if args.preview:
            result = preview(target, letter.body)
            for line in result.lines:
                print(line, file=out)
            if result.body is not None and args.show_personal_data:
                print(json.dumps(result.body, ensure_ascii=False, indent=2), file=out)
    return 0


def _show_one(
    letter: dl.Letter, now: datetime, out: TextIO, target: Target, *, personal: bool
) -> None:
    meaning, advice = letter.explained()
    attempts = f" after {counted(letter.attempts, 'attempt')}" if letter.attempts else ""
    print(
        f"Event {letter.event_id} (source {letter.source}, contact {letter.group_id or '?'}) "
        f"was dead-lettered {age(letter.age_s(now))} ago{attempts}.",
        file=out,
    )
    print(f"Why: {letter.code_label}: {meaning}.", file=out)
    if letter.detail and letter.detail != "-":
        print(f"Detail: {letter.detail}", file=out)
    if letter.fields:
        print(f"Fields: {', '.join(letter.fields)}", file=out)
    if letter.http_status is not None:
        print(f"Qomon answered HTTP {letter.http_status}.", file=out)
    print(f"What to do: {advice}.", file=out)
    if "redrive" in advice and letter.code_label not in NOT_REDRIVABLE:
        print(f"  Redrive it with: qomon-sync dlq redrive --event-id {letter.event_id}", file=out)
    if "drop" in advice:
        print(f"  Drop it with: qomon-sync dlq drop --event-id {letter.event_id} --yes", file=out)
    if personal:
        print("The event, as it was sent (personal data shown):", file=out)
        print(_pretty(letter.body), file=out)
    else:
        print("The event (personal data masked; --show-personal-data shows it):", file=out)
        masked = masked_body(letter.body, target.pseudonyms())
        print(json.dumps(masked, ensure_ascii=False, indent=2), file=out)


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, indent=2)
    except ValueError:
        return body


# -- redrive -------------------------------------------------------------------------------


def run_redrive(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    if not (args.code or args.event_id or args.all):
        raise OpsError(
            "say which letters to redrive: --code CODE, --event-id ID ..., or --all "
            "(`qomon-sync dlq list` shows them)"
        )
    if args.all and (args.code or args.event_id):
        raise OpsError("--all moves every letter: give it alone, or use --code / --event-id")
    sqs = target.client("sqs")
    if args.all and not args.dry_run:
        return _redrive_all(sqs, target, out)
    with dl.held(sqs, target.dead_letter_queue_url) as seen:
        chosen = [letter for letter in seen.letters if _wanted(args, letter)]
        _say_missing(args.event_id or [], chosen, out)
        if not chosen:
            print(
                f"No dead letter matches ({by_code(seen.letters) or 'the queue is empty'}). "
                "Nothing was moved.",
                file=out,
            )
            return 0 if not args.event_id else 1
        if args.dry_run:
            print(
                f"Dry run: would move {counted(len(chosen), 'letter')} back to the changes "
                f"queue ({by_code(chosen)}): {_ids(chosen)}. Nothing was moved.",
                file=out,
            )
            return 0
        moved = dl.move_back(
            sqs, seen, target.dead_letter_queue_url, target.changes_queue_url, chosen
        )
        remaining = len(seen.letters) - len(seen.removed)
    return _say_moved(moved, remaining, out)


def _wanted(args: argparse.Namespace, letter: dl.Letter) -> bool:
    if args.all:
        return True
    return bool(
        (args.code and letter.code_label in args.code)
        or (args.event_id and any(letter.matches(e) for e in args.event_id))
    )


def _say_missing(wanted: Sequence[str], chosen: Sequence[dl.Letter], out: TextIO) -> None:
    missing = [e for e in wanted if not any(letter.matches(e) for letter in chosen)]
    if missing:
        print(
            f"Not in the dead-letter queue: {', '.join(missing)} (redriven or dropped already?).",
            file=out,
        )


def _ids(letters: Sequence[dl.Letter], limit: int = 20) -> str:
    ids = [letter.event_id for letter in letters]
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def _say_moved(moved: dl.Moved, remaining: int, out: TextIO) -> int:
    if moved.moved:
        print(
            f"Moved {counted(len(moved.moved), 'letter')} back to the changes queue "
            f"({by_code(moved.moved)}): {_ids(moved.moved)}.",
            file=out,
        )
        risky = [m for m in moved.moved if m.code_label in NOT_REDRIVABLE]
        if risky:
            print(
                f"Note: {counted(len(risky), 'of them is', 'of them are')} "
                f"{by_code(risky)}: the runbook says not to redrive those until qomon-sync is "
                "fixed; they will come back here.",
                file=out,
            )
    if moved.not_removed:
        print(
            f"{counted(len(moved.not_removed), 'letter')} went back but could not be removed "
            f"from the dead-letter queue: {_ids(moved.not_removed)}. They will not be applied "
            "twice; drop them with `qomon-sync dlq drop --event-id ... --yes`.",
            file=out,
        )
    if moved.error:
        print(
            f"Stopped: {moved.error}. {counted(len(moved.not_sent), 'letter')} stay in the "
            "dead-letter queue, none lost; run the same command again later.",
            file=out,
        )
    print(
        f"{_stay(remaining)} in the dead-letter queue. The moved events "
        "are applied within a minute or so; any that fail again come back here with their "
        "reason: check with `qomon-sync dlq list` and `qomon-sync status`.",
        file=out,
    )
    return 1 if moved.error else 0


def _stay(n: int) -> str:
    return f"{counted(n, 'letter')} {'stays' if n == 1 else 'stay'}"


def _redrive_all(sqs: Any, target: Target, out: TextIO) -> int:
    waiting = dl.count(sqs, target.dead_letter_queue_url)
    if not waiting:
        print("The dead-letter queue is empty. Nothing was moved.", file=out)
        return 0
    try:
        if target.local:
            raise NotImplementedError("local mode's SQS has none")
        task = sqs.start_message_move_task(
            SourceArn=target.dead_letter_queue_arn, DestinationArn=target.changes_queue_arn
        )
    except (ClientError, NotImplementedError, BotoCoreError) as error:
        reason = _move_task_refusal(error)
        print(
            f"SQS's own move task is not available here ({reason}): moving the "
            f"{counted(waiting, 'letter')} one by one instead (send, then delete).",
            file=out,
        )
        return _move_all_one_by_one(sqs, target, out)
    print(
        f"SQS is moving the dead-letter queue's {counted(waiting, 'letter')} back to the "
        f"changes queue (move task {str(task.get('TaskHandle', ''))[:12]}...). It takes a "
        "minute or so; follow it with `qomon-sync status`. Events that fail again come back "
        "here with their reason.",
        file=out,
    )
    return 0


def _move_task_refusal(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "refused")
    return str(error) if isinstance(error, NotImplementedError) else type(error).__name__


def _move_all_one_by_one(sqs: Any, target: Target, out: TextIO) -> int:
    total = dl.Moved([], [], [])
    # A moved event that fails again comes back while this runs: each is moved once.
    moving: set[tuple[str, str]] = set()
    while True:
        with dl.held(sqs, target.dead_letter_queue_url) as seen:
            fresh = [m for m in seen.letters if (m.source, m.event_id) not in moving]
            if not fresh:
                break
            moving.update((m.source, m.event_id) for m in fresh)
            moved = dl.move_back(
                sqs, seen, target.dead_letter_queue_url, target.changes_queue_url, fresh
            )
        total.moved.extend(moved.moved)
        total.not_removed.extend(moved.not_removed)
        if moved.error or not seen.removed:
            total.not_sent, total.error = moved.not_sent, moved.error or "nothing could be removed"
            break
    return _say_moved(total, dl.count(sqs, target.dead_letter_queue_url), out)


# -- drop ----------------------------------------------------------------------------------


def run_drop(args: argparse.Namespace, target: Target, out: TextIO) -> int:
    sqs = target.client("sqs")
    now = datetime.now(UTC)
    with dl.held(sqs, target.dead_letter_queue_url) as seen:
        chosen = [m for m in seen.letters if any(m.matches(e) for e in args.event_id)]
        _say_missing(args.event_id, chosen, out)
        if not chosen:
            print("Nothing was dropped.", file=out)
            return 1
        if not args.yes:
            print(
                f"Would drop {counted(len(chosen), 'letter')} ({by_code(chosen)}): "
                f"{_ids(chosen)}. Those events would never be applied. Run the same command "
                "with --yes to drop them.",
                file=out,
            )
            return 1
        gone = dl.delete(sqs, seen, target.dead_letter_queue_url, chosen)
    dropped = [m for m in chosen if m.message_id in gone]
    for letter in dropped:
        print(
            f"dropped {letter.event_id} (source {letter.source}, {letter.code_label}, "
            f"contact {letter.group_id or '?'})",
            file=out,
        )
    if args.record is not None:
        with args.record.open("a", encoding="utf-8") as record:
            for letter in dropped:
                entry = {**letter.as_json(now), "dropped_at": now.isoformat(), "by": "dlq drop"}
                record.write(json.dumps(entry, ensure_ascii=False) + "\n")
    failed = len(chosen) - len(dropped)
    print(
        f"Dropped {counted(len(dropped), 'letter')} for good; those events will not be "
        "applied." + (f" {failed} could not be dropped: run the command again." if failed else ""),
        file=out,
    )
    return 1 if failed else 0


def run_from_args(args: argparse.Namespace) -> int:
    return execute(args, args.dlq_run)
