"""`qomon-sync preview-webhook --source NAME --body FILE`: the change events a delivery
would produce under the mapping file, printed as JSON exactly as the ingest would queue
them (the ingest's own code path, `application.ingest.accept`: the source's name is the
URL's, an explicit `null` is kept); nothing is sent, nothing queued.

The signature is not checked unless `--secret` is given (then it is, as the ingest does).
Headers with `--header 'Name: value'`, the query string with `--query 'a=1&b=2'`. Exit 0
with the events, 1 with the problem the ingest would answer (status, field, detail), 2
when the file or the source cannot be used.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from qomon_sync.application.ingest import accept
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync.settings import Settings
from qomon_sync.sources.base import WebhookError, WebhookRequest
from qomon_sync.sources.config import MappingConfigError
from qomon_sync.sources.registry import build_sources, load_mapping

EXIT_OK, EXIT_REFUSED, EXIT_CANNOT = 0, 1, 2
DEFAULT_CONFIG = Path("functions") / "sources.yaml"
MAX_MESSAGE_BYTES = Settings.model_fields["max_message_bytes"].default
"""The queue's message size the ingest checks against (the setting's default)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="the source's name in the file")
    parser.add_argument("--body", type=Path, required=True, help="the delivery's body")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the mapping file")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--query", default="", help="the query string, `a=1&b=2`")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--secret", help="check the signature with this secret too")


def run_from_args(args: argparse.Namespace) -> int:
    try:
        sources = build_sources(load_mapping(args.config))
        body = args.body.read_bytes()
    except MappingConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CANNOT
    except OSError as exc:
        print(f"qomon-sync preview-webhook: cannot read {args.body}: {exc}", file=sys.stderr)
        return EXIT_CANNOT
    source = sources.get(args.source)
    if source is None:
        known = ", ".join(sorted(sources))
        print(f"qomon-sync preview-webhook: no source `{args.source}` (known: {known})",
              file=sys.stderr)  # fmt: skip
        return EXIT_CANNOT
    headers = {}
    for line in args.header:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    request = WebhookRequest(
        source=args.source,
        body=body,
        headers=headers,
        received_at=datetime.now(UTC),
        query=dict(urllib.parse.parse_qsl(args.query)),
        method=args.method.upper(),
        uri=f"https://{headers.get('host', 'localhost')}/webhooks/{args.source}"
        + (f"?{args.query}" if args.query else ""),
    )
    try:
        accepted = accept(
            source,
            request,
            args.secret,
            # Message groups are not printed: a key of this run's own keeps them unshown.
            pseudonyms=Pseudonyms(secrets.token_hex(32)),
            max_bytes=MAX_MESSAGE_BYTES,
            authenticate=args.secret is not None,
        )
    except WebhookError as exc:
        refused = {"status": exc.status, "title": exc.title, "detail": exc.detail}
        print(json.dumps({**refused, "field": exc.field}, ensure_ascii=False, indent=2))
        return EXIT_REFUSED
    print(json.dumps(accepted.bodies(), ensure_ascii=False, indent=2))
    return EXIT_OK
