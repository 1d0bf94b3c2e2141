"""`qomon-sync check-config`: is the mapping file usable, and does it fit a Qomon space?

Without a space it validates the file (every problem listed with its path in the file).
With `--qomon-url` and `--qomon-token` it also reads the space's forms (6 calls) and checks
every Qomon field the file names (label or id) and every value the file itself decides
(value maps, fixed values, defaults) against them, as the sync would. Exit 0 when clean,
1 listing each problem, 2 when the check itself could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qomon_sync.adapters.qomon import Deadline, QomonClient, QomonError
from qomon_sync.adapters.qomon.port import fetch_forms
from qomon_sync.domain.assembly import (
    DATE_TYPES,
    MULTI_CHOICE,
    NUMBER_TYPES,
    SINGLE_CHOICE,
    TEXT_TYPES,
)
from qomon_sync.domain.dates import NotADate, parse_instant
from qomon_sync.domain.forms import Form, FormCatalog, FormLookupError
from qomon_sync.sources.config import MappingConfig, MappingConfigError, QomonReference
from qomon_sync.sources.registry import load_mapping

EXIT_OK, EXIT_PROBLEMS, EXIT_CANNOT_CHECK = 0, 1, 2
DEFAULT_CONFIG = Path("functions") / "sources.yaml"
FORMS_DEADLINE_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="the mapping file (YAML or JSON)"
    )
    parser.add_argument("--qomon-url", help="a Qomon space (or stand-in) to check against")
    parser.add_argument("--qomon-token", help="the space's API key (with --qomon-url)")


def run_from_args(args: argparse.Namespace) -> int:
    if bool(args.qomon_url) != bool(args.qomon_token):
        print("qomon-sync check-config: --qomon-url and --qomon-token go together", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    try:
        config = load_mapping(args.config)
    except MappingConfigError as exc:
        print(exc)
        return EXIT_PROBLEMS
    if not args.qomon_url:
        print(f"{args.config}: valid ({_summary(config)}); Qomon labels and values not checked")
        return EXIT_OK
    try:
        with QomonClient(args.qomon_url, args.qomon_token) as client:
            forms = fetch_forms(client, Deadline.after(FORMS_DEADLINE_S))
    except QomonError as exc:
        print(f"qomon-sync check-config: cannot read the space's forms: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    problems = check_against_forms(config, forms)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        print(f"{args.config} does not fit the space's forms ({count}):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_PROBLEMS
    print(f"{args.config}: valid ({_summary(config)}); every Qomon field and mapped value exists")
    return EXIT_OK


def _summary(config: MappingConfig) -> str:
    names = ", ".join(f"{name} ({source.preset})" for name, source in config.sources.items())
    return f"sources: generic, {names}" if names else "sources: generic"


def check_against_forms(config: MappingConfig, forms: FormCatalog) -> list[str]:
    """Each mismatch as `<path in the file>: <problem>`."""
    problems: list[str] = []
    for reference in config.qomon_references():
        try:
            form = forms.find(reference.field)
        except FormLookupError as exc:
            problems.append(f"{reference.path}: `{reference.field}`: {exc.detail}")
            continue
        problems.extend(_check_reference(reference, form, forms))
    return problems


def _check_reference(reference: QomonReference, form: Form, forms: FormCatalog) -> list[str]:
    kind = form.type.lower()
    label = f"`{form.label}` ({kind}, id {form.id})"
    problems = []
    if form.activate is False:
        problems.append(f"{reference.path}: {label} is deactivated in Qomon")
    if kind not in MULTI_CHOICE | SINGLE_CHOICE | NUMBER_TYPES | TEXT_TYPES | DATE_TYPES:
        return [*problems, f"{reference.path}: {label} is a form qomon-sync cannot answer"]
    if reference.op == "add" and kind not in MULTI_CHOICE:
        problems.append(f"{reference.path}: {label} holds one value: use op `set`, not `add`")
    for path, value in reference.values:
        problem = _check_value(form, kind, value, forms)
        if problem:
            problems.append(f"{path}: `{value}` {problem} {label}")
    return problems


def _check_value(form: Form, kind: str, value: str | int | float, forms: FormCatalog) -> str | None:
    if kind in MULTI_CHOICE | SINGLE_CHOICE:
        try:
            forms.choice(form, value)
        except FormLookupError as exc:
            known = ", ".join(r.value or r.label or str(r.id) for r in form.refvalues)
            return f"{exc.detail} ({known}) of"
        return None
    if kind in NUMBER_TYPES and not _is_number(value):
        return "is not a number, as needed by"
    if kind in DATE_TYPES:
        try:
            parse_instant(value)
        except NotADate:
            return "is not an ISO 8601 date, as needed by"
    return None


def _is_number(value: str | int | float) -> bool:
    if isinstance(value, int | float):
        return True
    try:
        float(value.strip().replace(",", "."))
    except ValueError:
        return False
    return True
