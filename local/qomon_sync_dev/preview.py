"""`qomon-sync preview`: show exactly what qomon-sync would send Qomon for some changes.

Reads a contact as Qomon's GET returns it (envelope or bare), the space's forms, and one
or more change events, and prints one JSON object: the replacement body and the changed
paths, "unchanged", or the rejection and its reason. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qomon_sync.domain.assembly import AssemblyPolicy, Rejected, assemble_contact, outcome_as_json
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_shape import ShapePolicy
from qomon_sync.domain.forms import Form, FormCatalog

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2


class InputFileError(Exception):
    """An input file that cannot be read or is not what it should be."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--contact", type=Path, required=True, help="the contact as GET /contacts/{id} returns it"
    )
    parser.add_argument(
        "--change",
        type=Path,
        action="append",
        required=True,
        help="a change event (v1) file; repeat for several events, applied in order",
    )
    parser.add_argument(
        "--forms", type=Path, help="the space's forms: a forms answer, a list, or a seed file"
    )
    parser.add_argument(
        "--passthrough",
        action="append",
        default=[],
        metavar="PATH",
        help="an unknown field to send back unchanged (e.g. external_id); repeatable",
    )
    parser.add_argument(
        "--droppable",
        action="append",
        default=[],
        metavar="PATH",
        help="an unknown field that may be left out knowingly; repeatable",
    )
    parser.add_argument(
        "--allow-unblacklist", action="store_true", help="let a change turn black_list off"
    )
    parser.add_argument(
        "--allow-refusal-withdrawal",
        action="store_true",
        help="let a change remove a consent refusal",
    )


def run_from_args(args: argparse.Namespace) -> int:
    try:
        contact = _read_contact(args.contact)
        forms = _read_forms(args.forms) if args.forms else FormCatalog([])
        events = [event for path in args.change for event in _read_events(path)]
    except InputFileError as exc:
        print(f"qomon-sync preview: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    policy = AssemblyPolicy(
        shape=ShapePolicy(
            passthrough=ShapePolicy().passthrough | frozenset(args.passthrough),
            droppable=frozenset(args.droppable),
        ),
        allow_unblacklist=args.allow_unblacklist,
        allow_refusal_withdrawal=args.allow_refusal_withdrawal,
    )
    outcome = assemble_contact(contact, forms, events, policy)
    json.dump(outcome_as_json(outcome), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_REJECTED if isinstance(outcome, Rejected) else EXIT_OK


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputFileError(path, "is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            path, f"is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def _read_contact(path: Path) -> dict[str, Any]:
    body = _load_json(path)
    if isinstance(body, dict) and isinstance(body.get("data"), dict) and "contact" in body["data"]:
        body = body["data"]["contact"]  # a whole GET answer: {"status", "data": {"contact"}}
    if not isinstance(body, dict):
        raise InputFileError(path, "holds no contact object (expected a GET answer or a contact)")
    return body


def _read_forms(path: Path) -> FormCatalog:
    body = _load_json(path)
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]  # a forms answer: {"status", "data": {"forms"}}
    if isinstance(body, dict):
        body = body.get("forms")
    if not isinstance(body, list):
        raise InputFileError(path, "holds no list of forms (expected data.forms, forms, or a list)")
    try:
        return FormCatalog(Form.model_validate(item) for item in body)
    except ValidationError as exc:
        raise InputFileError(path, f"a form is not valid: {_describe(exc)}") from None


def _read_events(path: Path) -> list[ChangeEvent]:
    body = _load_json(path)
    items = body if isinstance(body, list) else [body]
    events = []
    for index, item in enumerate(items):
        try:
            events.append(ChangeEvent.model_validate(item))
        except ValidationError as exc:
            where = f"event {index}: " if isinstance(body, list) else ""
            raise InputFileError(
                path, f"{where}not a valid change event: {_describe(exc)}"
            ) from None
    return events


def _describe(exc: ValidationError) -> str:
    """Each problem as `field.path: reason`, never echoing the input value."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )
