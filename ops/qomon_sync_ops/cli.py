"""`qomon-sync`: the one command, for operators and developers alike.

Each command is a module with `add_arguments(parser)` and `run_from_args(args) -> int`,
listed once, in the table of the package that holds it. The operators' commands
(`status`, `dlq`, `backfill`, `resume`) are this package's `COMMANDS` and need nothing but
the runtime package, boto3 and tqdm. Other packages add tables of their own through the
`qomon_sync.commands` entry-point group (pyproject.toml): the developer tools (`local`,
`demo`, `standin`, `bench`...) do, from the development install (`make install`), which
also puts their dependencies (moto, the stand-in's aiohttp) on the machine. This package
never names them: an operator's `pip install '.[ops]'` runs without them, and asking it
for one says what to install instead.

Only the module of the command asked for is imported (`qomon-sync status` loads no other
table and no developer tool); `qomon-sync --help` lists every command from the tables.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync import __version__
from qomon_sync_ops.target import OpsError, Target, resolve, unreachable

CommandTable = Sequence[tuple[str, str, str]]
"""(name, module, one-line summary) for each command of a package."""

COMMANDS: CommandTable = (
    ("status", "qomon_sync_ops.status", "queues, dead letters, the last hour and alarms"),
    ("dlq", "qomon_sync_ops.dlq", "the dead-letter queue: list, show, redrive, drop"),
    ("backfill", "qomon_sync_ops.backfill", "queue a file of changes (CSV or JSONL), resumably"),
    ("resume", "qomon_sync_ops.resume", "probe Qomon now when the sync is paused"),
)
"""The operators' commands."""
OPERATOR_COMMANDS = frozenset(name for name, _, _ in COMMANDS)

COMMAND_GROUP = "qomon_sync.commands"
"""The entry-point group through which other installed packages add their tables."""

DEVELOPER_INSTALL = (
    "The developer commands need the development install: `make install` in a clone of "
    "the repository. The operators' install (`pip install '.[ops]'`) has "
    "status, dlq, backfill and resume."
)

Action = Callable[[argparse.Namespace, Target, TextIO], int]


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    summary: str


class MissingTool(Exception):
    """A command whose module needs a package this install does not have."""

    def __init__(self, missing: str | None) -> None:
        needs = f"`{missing}`" if missing else "a package"
        super().__init__(f"this command needs {needs}, which is not installed here.")


def commands(*, others: bool = True) -> dict[str, Command]:
    """Every command, by name: the operators', then (with `others`) those of the tables
    found in the entry-point group. A table whose package is missing adds nothing."""
    table = {name: Command(name, module, summary) for name, module, summary in COMMANDS}
    if not others:
        return table
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            listed: CommandTable = entry.load()
        except ModuleNotFoundError:
            continue  # declared by this distribution, but its package is not installed
        for name, module, summary in listed:
            table.setdefault(name, Command(name, module, summary))
    return table


def build_parser(
    table: dict[str, Command] | None = None, load: Collection[str] | None = None
) -> argparse.ArgumentParser:
    """`qomon-sync` with one subcommand per command of `table` (all by default). The
    modules of the commands in `load` (all by default) are imported for their arguments
    and help; the others are listed by name and summary only. Raises MissingTool when a
    module to load needs a package that is not installed."""
    table = commands() if table is None else table
    parser = argparse.ArgumentParser(
        prog="qomon-sync",
        description="qomon-sync: the operators' commands (status, dlq, backfill, resume), "
        "against a deployed stack (--stack NAME) or local mode (--local)"
        + (
            ", and the developer commands (local, no AWS needed)."
            if set(table) - OPERATOR_COMMANDS
            else f". {DEVELOPER_INSTALL}"
        ),
    )
    parser.add_argument("--version", action="version", version=f"qomon-sync {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in table.values():
        if load is not None and command.name not in load:
            subparsers.add_parser(command.name, help=command.summary)
            continue
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as error:
            raise MissingTool(error.name) from error
        parser_of = subparsers.add_parser(
            command.name, help=command.summary, description=module.__doc__
        )
        module.add_arguments(parser_of)
        parser_of.set_defaults(run=module.run_from_args)
    return parser


def execute(args: argparse.Namespace, action: Action, out: TextIO | None = None) -> int:
    """Resolve the target, run the action; an OpsError is a sentence and exit 2."""
    out = out or sys.stdout
    name = " ".join(p for p in (args.command, getattr(args, "dlq_command", None)) if p)
    target: Target | None = None
    try:
        target = resolve(args)
        return action(args, target, out)
    except OpsError as error:
        print(f"qomon-sync {name}: {error}", file=sys.stderr, flush=True)
        return 2
    except (ClientError, BotoCoreError) as error:
        message = unreachable(target, error) if target else error
        print(f"qomon-sync {name}: {message}", file=sys.stderr, flush=True)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    asked = next((a for a in argv if not a.startswith("-")), None)
    # An operator's command needs no other table: nothing else is loaded for it.
    table = commands(others=asked not in OPERATOR_COMMANDS)
    if asked is not None and asked not in table:
        print(f"qomon-sync: `{asked}` is not a command here ({', '.join(table)}).", file=sys.stderr)
        if not set(table) - OPERATOR_COMMANDS:
            print(DEVELOPER_INSTALL, file=sys.stderr)
        return 2
    try:
        args = build_parser(table, load=[asked] if asked else []).parse_args(argv)
    except MissingTool as missing:
        print(f"qomon-sync {asked}: {missing} {DEVELOPER_INSTALL}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except BrokenPipeError:  # `qomon-sync dlq list | head`: the reader left, not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("qomon-sync: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
