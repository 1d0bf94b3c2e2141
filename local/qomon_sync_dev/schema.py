"""`qomon-sync schema`: the change event's JSON Schema, generated from the pydantic model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qomon_sync.domain.change_event import ChangeEvent

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "events" / "change-event.v1.schema.json"


def change_event_schema() -> dict[str, Any]:
    schema = ChangeEvent.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:qomon-sync:change-event:v1",
        **schema,
    }


def render() -> str:
    return json.dumps(change_event_schema(), indent=2, ensure_ascii=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_FILE.name}")


def run_from_args(args: argparse.Namespace) -> int:
    if args.write:
        SCHEMA_FILE.write_text(render(), encoding="utf-8")
        print(f"wrote {SCHEMA_FILE}")
    else:
        sys.stdout.write(render())
    return 0
