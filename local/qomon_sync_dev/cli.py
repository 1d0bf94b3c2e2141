"""`qomon-sync`: the developer command line (stand-in, demo, preview, checks).

Dev-only: it lives outside the Lambda bundle. Each subcommand's module provides
`add_arguments(parser)` and `run_from_args(args) -> int`; this file is the table of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from qomon_sync_ops.cli import command_parser

Runner = Callable[[argparse.Namespace], int]

COMMANDS = (
    # The operators' commands (qomon_sync_ops, which needs no developer tool).
    ("status", "qomon_sync_ops.status", "queues, dead letters, the last hour and alarms"),
    ("dlq", "qomon_sync_ops.dlq", "the dead-letter queue: list, show, redrive, drop"),
    ("backfill", "qomon_sync_ops.backfill", "queue a file of changes (CSV or JSONL), resumably"),
    # Developer tools.
    ("bench", "qomon_sync_dev.bench.run", "tokens, throughput and overhead figures, from a run"),
    (
        "soak",
        "qomon_sync_dev.bench.soak",
        "the workload under injected faults; checks nothing is lost",
    ),
    (
        "probe",
        "qomon_sync_dev.bench.probe",
        "signed webhooks under load, a Qomon outage and hostile requests; loss and log leaks",
    ),
    ("demo", "qomon_sync_dev.demo", "run the sample change events against a local Qomon stand-in"),
    ("local", "qomon_sync_dev.local_mode", "run the whole pipeline on this machine (local AWS)"),
    ("standin", "qomon_sync_dev.standin.server", "serve a Qomon stand-in on 127.0.0.1"),
    (
        "preview",
        "qomon_sync_dev.preview",
        "print the body some change events would produce (no I/O)",
    ),
    (
        "preview-webhook",
        "qomon_sync_dev.preview_webhook",
        "print the change events a webhook delivery would produce (nothing sent)",
    ),
    ("schema", "qomon_sync_dev.schema", "print the change event's JSON Schema"),
    ("check-config", "qomon_sync_dev.check_config", "validate the webhook mapping file"),
    (
        "pacing-check",
        "qomon_sync_dev.pacing_check",
        "mixed GET/PATCH against a tight bucket; counts 429s",
    ),
)


def _build_parser() -> argparse.ArgumentParser:
    return command_parser(
        "qomon-sync: operator commands (status, dlq, backfill; --stack or --local) "
        "and developer commands (local, no AWS needed)",
        COMMANDS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    run: Runner = args.run
    try:
        return run(args)
    except BrokenPipeError:  # `qomon-sync preview ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
