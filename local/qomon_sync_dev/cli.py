"""The developer commands of `qomon-sync` (stand-in, local mode, demo, preview, checks).

Dev-only: it lives outside the Lambda bundle. This file is their table, and nothing else
needs editing to add one: `qomon_sync_ops.cli` (the one `qomon-sync` entry point) finds it
through the `qomon_sync.commands` entry-point group declared in pyproject.toml, so the
operators' package never names this one. Each command's module provides
`add_arguments(parser)` and `run_from_args(args) -> int`. The operators' commands (status,
dlq, backfill) are in `qomon_sync_ops.cli.COMMANDS`, and only there.

`python -m qomon_sync_dev.cli ...` is `qomon-sync ...`.
"""

from __future__ import annotations

import sys

from qomon_sync_ops.cli import CommandTable, main

COMMANDS: CommandTable = (
    ("bench", "qomon_sync_dev.bench.run", "tokens, throughput and overhead figures, from a run"),
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

__all__ = ["COMMANDS", "main"]

if __name__ == "__main__":
    sys.exit(main())
