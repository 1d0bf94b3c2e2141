"""`make bench`, the in-process part: assembly CPU, cold-start imports, bundle size.

Prints one JSON object. Every speed figure comes with a baseline measured in the same
run on the same machine, and the ratio between them: figures are compared run to run as
ratios, never asserted against a threshold.

- assembly: CPU (`process_time`) and wall (`perf_counter`) microseconds per event of
  `assemble_contact` on the stand-in seed's contacts, rendered as Qomon's GET answers,
  with a mix of realistic change events; the baseline is a JSON round trip
  (`json.loads(json.dumps(contact))`) of the same contacts. Also one contact's 10 events
  folded into one call versus one call per event. Median of `repeats` rounds, garbage
  collection off inside a round, events validated once outside the timed loop.
- imports: milliseconds to import each Lambda handler module in a fresh interpreter,
  versus importing only the third-party libraries it uses (median of `import_runs`
  interpreters each, taken in turn), with `PYTHONPATH=functions` and
  `POWERTOOLS_TRACE_DISABLED=true`; "own" is the difference. The libraries include the
  X-Ray SDK, which Powertools' `Tracer()` loads even with tracing disabled.
- bundle: bytes on disk and zipped (deflate, in memory) of `.aws-sam/build/<Function>`
  and its 10 largest top-level entries, when `make sam-build` has made it.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import qomon_sync
from qomon_sync.domain.assembly import (
    AssemblyPolicy,
    Outcome,
    Rejected,
    Replace,
    assemble_contact,
)
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_shape import ShapePolicy
from qomon_sync.domain.forms import Form, FormCatalog
from qomon_sync_dev.standin.seed import HAND_SHAPED, build_seed
from qomon_sync_dev.standin.store import ContactStore

JsonObject = dict[str, Any]

FUNCTIONS_DIR = Path(qomon_sync.__file__).resolve().parent.parent
REPO_ROOT = FUNCTIONS_DIR.parent
DEFAULT_BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
BUNDLED_FUNCTIONS = ("SyncFunction", "IngestFunction")

DEFAULT_REPEATS = 5
DEFAULT_CALLS = 1600
DEFAULT_IMPORT_RUNS = 5
FOLD_SIZE = 10
"""Events per contact in the fold figure: one SQS batch's worth."""

POLICY = AssemblyPolicy(
    shape=ShapePolicy(
        passthrough=frozenset({"external_id", "membership_number", "address.citycode"})
    )
)
OCCURRED_AT = "2026-11-20T18:02:11.482Z"
SURVEY_ID = 501

LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
"""Lambda's documented quota for a function and its layers, unzipped: 250 MB (262,144,000)."""
LAMBDA_ZIPPED_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
"""Lambda's documented quota for a zip uploaded directly: 50 MB."""

POWERTOOLS = (
    "aws_lambda_powertools",  # Logger, Metrics, Tracer
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.typing",
    # What `Tracer()` loads even with tracing disabled: the X-Ray SDK is Tracer's library.
    "aws_xray_sdk.core",
)
HANDLER_LIBRARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sync": (
        "qomon_sync.handlers.sync",
        (
            *POWERTOOLS,
            "aws_lambda_powertools.utilities.batch",
            "aws_lambda_powertools.utilities.batch.types",
            "aws_lambda_powertools.utilities.data_classes.sqs_event",
            "aws_lambda_powertools.utilities.idempotency",
            "aws_lambda_powertools.utilities.idempotency.exceptions",
            "aws_lambda_powertools.utilities.data_masking",
            "httpx",
            "pydantic",
            "pydantic_settings",
            "boto3",
        ),
    ),
    "ingest": (
        "qomon_sync.handlers.ingest",
        (
            *POWERTOOLS,
            "pydantic",
            "pydantic_settings",
            "boto3",
            "standardwebhooks.webhooks",
            "yaml",
        ),
    ),
}
"""Handler -> (its module, the third-party modules it and its imports use)."""

# Runs in a fresh interpreter: imports the modules named in argv, prints the wall time and
# the top-level non-stdlib packages the imports loaded.
_IMPORT_CHILD = """\
import importlib, sys, time
before = set(sys.modules)
start, cpu_start = time.perf_counter(), time.process_time()
for name in sys.argv[1:]:
    importlib.import_module(name)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
import json
tops = {m.partition(".")[0] for m in set(sys.modules) - before}
loaded = sorted(t for t in tops if t not in sys.stdlib_module_names and not t.startswith("_"))
print(json.dumps({"ms": elapsed * 1000.0, "cpu_ms": cpu * 1000.0, "loaded": loaded}))
"""


# -- the machine ------------------------------------------------------------------------


def machine() -> JsonObject:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "processor": _processor_name(),
    }


def _processor_name() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or None
    for key in ("model name", "Hardware", "Processor", "cpu model", "cpu"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or None


# -- timing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Median CPU and wall time of one unit of work, over the rounds measured."""

    cpu_s: float
    wall_s: float

    def per(self, units: int, scale: float) -> JsonObject:
        return {
            "cpu": _round(self.cpu_s / units * scale),
            "wall": _round(self.wall_s / units * scale),
        }

    def ratio_to(self, baseline: Timing) -> JsonObject:
        return {
            "cpu": _round(self.cpu_s / baseline.cpu_s, 3),
            "wall": _round(self.wall_s / baseline.wall_s, 3),
        }


def _round(value: float, digits: int = 2) -> float:
    return round(value, digits)


def _one_round(batch: Callable[[], object]) -> tuple[float, float]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        batch()
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        if was_enabled:
            gc.enable()


def time_interleaved(batches: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    """Median time of each batch over `repeats` rounds, taken in turn so drift hits all."""
    for batch in batches.values():
        batch()  # warm-up: caches, compiled patterns, lazily built lookups
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in batches}
    for _ in range(repeats):
        for name, batch in batches.items():
            rounds[name].append(_one_round(batch))
    return {
        name: Timing(
            cpu_s=statistics.median(cpu for cpu, _ in taken),
            wall_s=statistics.median(wall for _, wall in taken),
        )
        for name, taken in rounds.items()
    }


# -- assembly ---------------------------------------------------------------------------


def seed_space() -> tuple[list[JsonObject], FormCatalog]:
    """The stand-in seed's contacts as `GET /contacts/{id}` answers them, and its forms."""
    seed = build_seed()
    store = ContactStore.from_seed(seed)
    # The hand-shaped contacts (every form type, history, traps), not the plain ones after.
    shaped = store.contacts()[:HAND_SHAPED]
    contacts = [store.render(stored, naming="current") for stored in shaped]
    forms = FormCatalog(Form.model_validate(form) for form in seed["forms"])
    return contacts, forms


EVENT_KINDS = ("basic_fields", "tags", "choices", "survey", "custom_fields", "mixed")


def event_body(kind: str, contact: JsonObject, serial: int) -> JsonObject:
    """One change event for `contact`, as a source would send it (fields named by label)."""
    body: JsonObject = {
        "event_id": f"bench-{contact['id']}-{serial}",
        "source": "bench",
        "occurred_at": OCCURRED_AT,
        "contact": {"id": contact["id"]},
    }
    if kind == "basic_fields":
        body["set"] = {
            "mobile": f"+3360000{serial % 10_000:04d}",
            "phone": None,
            "address": {"floor": str(serial % 9 + 1), "door": "B"},
        }
    elif kind == "tags":
        body["tags"] = {"add": ["bénévole", "porte-à-porte"], "remove": ["prospect", "newsletter"]}
    elif kind == "choices":
        body["fields"] = [
            {"field": "Niveau de soutien", "value": ("Très favorable", "Favorable")[serial % 2]},
            {"field": "Consentements", "op": "add", "value": "consent_email"},
            {"field": "Statut de présence", "value": "present"},
        ]
    elif kind == "survey":
        body["fields"] = [
            {"field": "Quelle est votre principale préoccupation ?", "value": "Le bus 12"},
            {
                "field": "Combien de personnes vivent dans votre foyer ?",
                "value": serial % 6 + 1,
                "survey_id": SURVEY_ID,
            },
            {"field": "Date de votre dernier vote", "value": "2024-06-09"},
            {"field": "Souhaitez-vous être recontacté·e ?", "value": "Oui"},
            {"field": "Quels sujets vous intéressent ?", "value": ["Logement", "transport"]},
            {"field": "De 0 à 10, votre intérêt pour la campagne", "value": "7"},
        ]
    elif kind == "custom_fields":
        body["fields"] = [
            {"field": "Profession", "value": "Infirmier"},
            {"field": "Niveau d'adhésion", "value": "Adhérent actif"},
            {"field": "Montant total des dons (€)", "value": "120,50"},
            {"field": "Date d'adhésion", "value": "2026-11-22"},
        ]
    elif kind == "mixed":
        body["set"] = {"mobile": "+33600000101", "address": {"floor": "3"}}
        body["tags"] = {"add": ["bénévole"]}
        body["fields"] = [
            {"field": "Consentements", "op": "add", "value": "consent_email"},
            {"field": "Tâches", "op": "add", "value": "invite_to_event"},
        ]
        body["notes"] = [
            {"data": f"Souhaite tenir un stand au marché ({serial}).", "pinned": False}
        ]
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    return body


def _outcome_kind(outcome: Outcome) -> str:
    if isinstance(outcome, Replace):
        return "replace"
    if isinstance(outcome, Rejected):
        return f"rejected:{outcome.code}"
    return "unchanged"


def bench_assembly(*, repeats: int, calls: int) -> JsonObject:
    contacts, forms = seed_space()
    pairs = [
        (contact, ChangeEvent.model_validate(event_body(kind, contact, serial)))
        for serial, (contact, kind) in enumerate(
            (contact, kind) for contact in contacts for kind in EVENT_KINDS
        )
    ]
    work = [pairs[i % len(pairs)] for i in range(calls)]
    groups = max(1, calls // FOLD_SIZE)
    folds = [
        (
            contacts[g % len(contacts)],
            [
                ChangeEvent.model_validate(
                    event_body(EVENT_KINDS[n % len(EVENT_KINDS)], contacts[g % len(contacts)], n)
                )
                for n in range(FOLD_SIZE)
            ],
        )
        for g in range(groups)
    ]

    def assembly() -> None:
        for contact, event in work:
            assemble_contact(contact, forms, [event], POLICY)

    def json_round_trip() -> None:
        for contact, _ in work:
            json.loads(json.dumps(contact))

    def folded() -> None:
        for contact, events in folds:
            assemble_contact(contact, forms, events, POLICY)

    def one_call_per_event() -> None:
        for contact, events in folds:
            for event in events:
                assemble_contact(contact, forms, [event], POLICY)

    timings = time_interleaved(
        {
            "assembly": assembly,
            "json_round_trip": json_round_trip,
            "folded": folded,
            "one_call_per_event": one_call_per_event,
        },
        repeats,
    )
    outcomes = Counter(_outcome_kind(assemble_contact(c, forms, [e], POLICY)) for c, e in pairs)
    fold_outcomes = Counter(_outcome_kind(assemble_contact(c, forms, e, POLICY)) for c, e in folds)
    folded_events = groups * FOLD_SIZE
    return {
        "contacts": len(contacts),
        "event_kinds": list(EVENT_KINDS),
        "distinct_events": len(pairs),
        "outcomes": dict(sorted(outcomes.items())),
        "contact_json_bytes_median": int(
            statistics.median(len(json.dumps(contact).encode()) for contact in contacts)
        ),
        "calls_per_round": calls,
        "us_per_event": {
            "assembly": timings["assembly"].per(calls, 1e6),
            "json_round_trip": timings["json_round_trip"].per(calls, 1e6),
        },
        "ratio_assembly_to_json_round_trip": timings["assembly"].ratio_to(
            timings["json_round_trip"]
        ),
        "fold": {
            "events_per_contact": FOLD_SIZE,
            "contacts_per_round": groups,
            "outcomes": dict(sorted(fold_outcomes.items())),
            "us_per_event": {
                "folded": timings["folded"].per(folded_events, 1e6),
                "one_call_per_event": timings["one_call_per_event"].per(folded_events, 1e6),
            },
            "ratio_folded_to_one_call_per_event": timings["folded"].ratio_to(
                timings["one_call_per_event"]
            ),
        },
    }


# -- imports ----------------------------------------------------------------------------


def _import_once(modules: Sequence[str]) -> tuple[float, list[str], float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(FUNCTIONS_DIR)
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module names
        [sys.executable, "-c", _IMPORT_CHILD, *modules],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"importing {' '.join(modules)} failed in a fresh interpreter:\n{completed.stderr}"
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(result["ms"]), list(result["loaded"]), float(result["cpu_ms"])


def bench_imports(*, runs: int) -> JsonObject:
    figures: JsonObject = {}
    for name, (module, libraries) in HANDLER_LIBRARIES.items():
        targets = {"handler": (module,), "libraries": libraries}
        loaded: dict[str, set[str]] = {target: set() for target in targets}
        taken: dict[str, list[float]] = {target: [] for target in targets}
        cpu: dict[str, list[float]] = {target: [] for target in targets}
        for _ in range(runs):
            for target, modules in targets.items():  # in turn, so drift hits both
                ms, packages, cpu_ms = _import_once(modules)
                taken[target].append(ms)
                cpu[target].append(cpu_ms)
                loaded[target].update(packages)
        handler_ms = statistics.median(taken["handler"])
        libraries_ms = statistics.median(taken["libraries"])
        # CPU time, fastest run of each: the least disturbed by other work on the machine.
        fastest = min(cpu["handler"]) / min(cpu["libraries"])
        figures[name] = {
            "module": module,
            "libraries": list(libraries),
            "handler_ms": _round(handler_ms),
            "libraries_ms": _round(libraries_ms),
            "own_ms": _round(handler_ms - libraries_ms),
            "ratio_handler_to_libraries": _round(handler_ms / libraries_ms, 3),
            "ratio_cpu_handler_to_libraries": _round(fastest, 3),
            "runs_ms": {target: [_round(ms) for ms in values] for target, values in taken.items()},
            "packages_loaded_by_handler_only": sorted(
                loaded["handler"] - loaded["libraries"] - {"qomon_sync"}
            ),
        }
    return {
        "runs": runs,
        "environment": {"PYTHONPATH": "functions", "POWERTOOLS_TRACE_DISABLED": "true"},
        **figures,
    }


# -- the bundle -------------------------------------------------------------------------


def _files(root: Path) -> Iterable[Path]:
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def bundle_figures(function_dir: Path, *, top: int = 10) -> JsonObject:
    """On-disk and zipped size of one built function, and its largest top-level entries."""
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    total = files = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _files(function_dir):
            relative = path.relative_to(function_dir)
            size = path.stat().st_size
            total += size
            files += 1
            sizes[relative.parts[0]] += size
            counts[relative.parts[0]] += 1
            archive.write(path, relative.as_posix())
    zipped = buffer.getbuffer().nbytes
    return {
        "path": _shown(function_dir),
        "files": files,
        "bytes": total,
        "zip_bytes": zipped,
        "mib": _round(total / 2**20),
        "zip_mib": _round(zipped / 2**20),
        "ratio_zip_to_bytes": _round(zipped / total, 3) if total else None,
        "share_of_lambda_unzipped_limit": _round(total / LAMBDA_UNZIPPED_LIMIT_BYTES, 3),
        "share_of_lambda_zip_upload_limit": _round(zipped / LAMBDA_ZIPPED_UPLOAD_LIMIT_BYTES, 3),
        "largest_entries": [
            {"name": name, "bytes": size, "files": counts[name]}
            for name, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:top]
        ],
    }


def bench_bundle(build_dir: Path) -> JsonObject:
    functions: dict[str, JsonObject | None] = {}
    missing: dict[str, str] = {}
    for name in BUNDLED_FUNCTIONS:
        function_dir = build_dir / name
        if function_dir.is_dir():
            functions[name] = bundle_figures(function_dir)
        else:
            functions[name] = None
            missing[name] = f"{function_dir} does not exist: run make sam-build first"
    return {"build_dir": _shown(build_dir), "functions": functions, "missing": missing}


def _shown(path: Path) -> str:
    """A path as the published figures show it: relative to the repository when inside it,
    so that no machine's own folders end up in docs/benchmarks.*."""
    try:
        return path.resolve().relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return path.name


# -- the whole run ----------------------------------------------------------------------


def run_micro(
    *,
    repeats: int = DEFAULT_REPEATS,
    calls: int = DEFAULT_CALLS,
    import_runs: int = DEFAULT_IMPORT_RUNS,
    build_dir: Path | None = None,
) -> dict[str, Any]:
    """Every micro-benchmark figure, as one JSON-serialisable object.

    `repeats` rounds of `calls` assembly calls each (medians), `import_runs` fresh
    interpreters per import figure (median), the bundle read from `build_dir`
    (default `.aws-sam/build`).
    """
    if repeats < 1 or calls < 1 or import_runs < 1:
        raise ValueError("repeats, calls and import_runs must be at least 1")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "micro",
        "machine": machine(),
        "settings": {"repeats": repeats, "calls": calls, "import_runs": import_runs},
        "assembly": bench_assembly(repeats=repeats, calls=calls),
        "imports": bench_imports(runs=import_runs),
        "bundle": bench_bundle(build_dir or DEFAULT_BUILD_DIR),
    }
    result["elapsed_s"] = _round(time.perf_counter() - started)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeats", type=int, default=DEFAULT_REPEATS, help="timed rounds (the median is kept)"
    )
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="assembly calls per round")
    parser.add_argument(
        "--import-runs",
        type=int,
        default=DEFAULT_IMPORT_RUNS,
        help="fresh interpreters per import figure (the median is kept)",
    )
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=DEFAULT_BUILD_DIR,
        help="where `make sam-build` put the functions (default: .aws-sam/build)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    result = run_micro(
        repeats=args.repeats,
        calls=args.calls,
        import_runs=args.import_runs,
        build_dir=args.build_dir,
    )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
