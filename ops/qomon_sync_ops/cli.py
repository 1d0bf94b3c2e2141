"""`qomon-sync`: the one command, for operators and developers alike.

The operators' commands (`status`, `dlq`, `backfill`) are this package's and need
nothing but the runtime package, boto3 and tqdm. Every other command (`local`, `demo`,
`standin`, `bench`...) is a developer tool from `qomon_sync_dev`, reached through here
when the development install (`make install`) put it and its dependencies (moto, the
stand-in's aiohttp) on this machine; an operator's `pip install 'qomon-sync[ops]'`
never needs them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from qomon_sync import __version__
from qomon_sync_ops.target import OpsError, Target, resolve, unreachable

COMMANDS = (
    ("status", "qomon_sync_ops.status", "queues, dead letters, the last hour and alarms"),
    ("dlq", "qomon_sync_ops.dlq", "the dead-letter queue: list, show, redrive, drop"),
    ("backfill", "qomon_sync_ops.backfill", "queue a file of changes (CSV or JSONL), resumably"),
)
"""The operators' commands (also in the developer CLI's table)."""
OPERATOR_COMMANDS = frozenset(name for name, _, _ in COMMANDS)

Action = Callable[[argparse.Namespace, Target, TextIO], int]


def build_parser() -> argparse.ArgumentParser:
    return command_parser(
        "qomon-sync operator commands: against a deployed stack (--stack NAME) "
        "or local mode (--local)",
        COMMANDS,
    )


def command_parser(
    description: str, table: Sequence[tuple[str, str, str]]
) -> argparse.ArgumentParser:
    """`qomon-sync` with one subcommand per (name, module, summary) of `table`: each
    module gives its `add_arguments` and `run_from_args`, and its docstring as help."""
    parser = argparse.ArgumentParser(prog="qomon-sync", description=description)
    parser.add_argument("--version", action="version", version=f"qomon-sync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name, summary in table:
        module = importlib.import_module(module_name)
        command = commands.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(run=module.run_from_args)
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


def developer_tools_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("qomon_sync_dev", "moto", "aiohttp"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    if first not in OPERATOR_COMMANDS:
        if developer_tools_installed():
            # Only where the development install put it: operators never need it.
            from qomon_sync_dev.cli import main as developer_main  # noqa: PLC0415

            return developer_main(argv)
        if first is not None:
            print(
                f"qomon-sync: `{first}` is not an operator command (status, dlq, backfill). "
                "The developer commands need the development install: `make install` in a "
                "clone of the repository.",
                file=sys.stderr,
            )
            return 2
    args = build_parser().parse_args(argv)
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
