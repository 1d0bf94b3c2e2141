"""`qomon-sync bench`: the figures for tokens, throughput, overhead and size, from a run.

Runs seeded workloads of several sizes through our pipeline (one consumer, at Qomon's
real refill rate unless `--scale` says otherwise) and through the per-record approach,
then the pipeline again with several consumer processes sharing the space's bucket, then
the in-process micro-benchmarks, and writes the figures as JSON plus docs/benchmarks.md
with tables and a chart. Nothing in the report is typed in: every number comes from this
run, on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qomon_sync.adapters.qomon.client import SEARCH_GROUP_SIZE

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
SIZES = ("300/33", "1000/100", "3000/300", "1000/40", "3000/40")
"""events/contacts: the three the acceptance names, and two more events per contact for
the chart (the per-record approach pays per event, the pipeline per contact)."""
CONSUMERS = (1, 2, 5, 10)
REFILL, BURST = 10, 100
BY_MAIL = "1000/100"
"""The e-mail workload: every event names its person by e-mail, a third of them new to
Qomon (`if_missing: create`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default=",".join(SIZES),
        help="comma-separated EVENTS/CONTACTS workloads, one consumer each (the first three "
        "are the report's rows; the largest is the headline)",
    )
    parser.add_argument("--events", type=int, help="one workload of this many events")
    parser.add_argument("--contacts", type=int, default=40, help="with --events")
    parser.add_argument(
        "--consumers",
        type=int,
        nargs="+",
        default=list(CONSUMERS),
        help="consumer processes (as Lambda instances); counts above 1 run the largest size",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="the pipeline's refill x scale (1: Qomon's)"
    )
    parser.add_argument(
        "--per-record-scale",
        type=float,
        default=20.0,
        help="the per-record approach's refill x scale: its tokens do not depend on it, only "
        "its wall time (a 3,000-event run at Qomon's rate takes half an hour)",
    )
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.json")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where the report goes")
    parser.add_argument("--no-docs", action="store_true", help="write the JSON only")
    parser.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument(
        "--by-mail",
        default=BY_MAIL,
        help="EVENTS/CONTACTS of the workload naming everyone by e-mail, a third new to "
        "Qomon ('' to skip)",
    )
    parser.add_argument(
        "--idle-deliveries",
        type=int,
        default=20,
        help="webhooks of the idle latency run, one every --idle-gap seconds (0 to skip)",
    )
    parser.add_argument("--idle-gap", type=float, default=3.0)


def run_from_args(args: argparse.Namespace) -> int:
    # Checked before any run: a bad workload found after minutes of benchmarking is lost time.
    try:
        sizes = [(args.events, args.contacts)] if args.events else _sizes(args.sizes)
        if args.by_mail:
            _sizes(args.by_mail)
    except ValueError as error:
        print(f"qomon-sync bench: {error}", file=sys.stderr, flush=True)
        return 2
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the handler's logs stay quiet
    runs = [_size(events, contacts, args) for events, contacts in sizes]
    headline = max(runs, key=lambda r: (r["workload"]["events"], r["workload"]["contacts_touched"]))
    size = headline["workload"]
    consumers = [
        _consumers(count, size["events"], size["requested"], args)
        for count in args.consumers
        if count > 1
    ]
    by_mail = _by_mail(args) if args.by_mail else {}
    idle = _idle(args) if args.idle_deliveries > 0 else {}
    micro: dict[str, Any] = {}
    if not args.no_micro:
        from qomon_sync_dev.bench.micro import run_micro

        micro = run_micro()
    pipeline, per_record = headline["strategies"]["pipeline"], headline["strategies"]["per_record"]
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": _processor(),
        },
        "workload": headline["workload"],
        "strategies": headline["strategies"],
        "comparison": {
            "tokens_ratio_pipeline_to_per_record": round(
                pipeline["tokens"] / per_record["tokens"], 3
            ),
            "pipeline_ratio_to_floor": pipeline["ratio_to_floor"],
            "pipeline_ratio_to_lookup_floor": pipeline["ratio_to_lookup_floor"],
        },
        "latency": {"idle": idle, "backlog": pipeline["latency"]},
        "by_mail": by_mail,
        "sizes": runs,
        "consumers": consumers,
        "micro": micro,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"figures: {args.out}")
    if not args.no_docs:
        from qomon_sync_dev.bench.report import chart, markdown

        path = args.docs / "benchmarks.png"
        chart(figures, path)
        (args.docs / "benchmarks.md").write_text(markdown(figures, path.name), encoding="utf-8")
        print(f"report: {args.docs / 'benchmarks.md'}")
    return 1 if _wrong(figures) else 0


def _sizes(text: str) -> list[tuple[int, int]]:
    """`3000/300,1000/100` as pairs; a ValueError that says which part is not a workload."""
    sizes = []
    for part in text.split(","):
        events, _, contacts = part.strip().partition("/")
        if not (events.isdigit() and contacts.isdigit() and int(events) and int(contacts)):
            raise ValueError(
                f"{part.strip()!r} is not a workload: give EVENTS/CONTACTS, e.g. 3000/300"
            )
        sizes.append((int(events), int(contacts)))
    return sizes


def _workload(events: int, contacts: int, args: argparse.Namespace, **shape: Any) -> Any:
    from qomon_sync_dev.bench.workload import WorkloadSpec, build_workload
    from qomon_sync_dev.standin.seed import build_seed

    spec = WorkloadSpec(events=events, contacts=contacts, seed=args.seed, **shape)
    return build_workload(build_seed()["contacts"], spec)


def _describe(
    workload: Any, requested: int, scale: float, per_record_scale: float
) -> dict[str, Any]:
    return {
        "events": len(workload.events),
        "requested": requested,
        "contacts_touched": len(workload.touched),
        "contacts_changed": len(workload.changed),
        "events_per_contact": round(len(workload.events) / max(1, len(workload.touched)), 2),
        "noop_events": workload.noop_events,
        "unknown_contact_events": workload.unknown_events,
        "unknown_lookups": workload.unknown_lookups,
        "seed": workload.spec.seed,
        "skew": workload.spec.skew,
        "floor_tokens": workload.token_floor(),
        "emails": len(workload.mails),
        "new_people": len(workload.new_people),
        "search_group_size": SEARCH_GROUP_SIZE,
        "lookup_floor_tokens": workload.lookup_floor(SEARCH_GROUP_SIZE),
        "qomon": {
            "burst": BURST,
            "refill_per_s": REFILL,
            "time_scale": scale,
            "per_record_time_scale": per_record_scale,
        },
    }


def _size(events: int, contacts: int, args: argparse.Namespace) -> dict[str, Any]:
    from qomon_sync_dev.bench.tokens import as_dict, run_per_record, run_pipeline

    workload = _workload(events, contacts, args)
    print(f"workload: {len(workload.events)} events over {len(workload.touched)} contacts")
    with _quiet():
        pipeline = run_pipeline(workload, scale=args.scale)
    print(
        f"  pipeline: {pipeline.tokens} tokens ({pipeline.ratio_to_floor}x the floor, "
        f"{pipeline.ratio_to_lookup_floor}x with lookups), "
        f"{pipeline.calls.get('POST /search', 0)} searches, {pipeline.wall_s}s, "
        f"latency {pipeline.latency}"
    )
    per_record = run_per_record(workload, scale=args.per_record_scale)
    print(f"  per-record: {per_record.tokens} tokens ({per_record.ratio_to_floor}x)")
    return {
        "workload": _describe(workload, contacts, args.scale, args.per_record_scale),
        "strategies": {"pipeline": as_dict(pipeline), "per_record": as_dict(per_record)},
    }


def _consumers(count: int, events: int, contacts: int, args: argparse.Namespace) -> dict[str, Any]:
    from qomon_sync_dev.bench.tokens import as_dict, run_pipeline

    workload = _workload(events, contacts, args)
    with _quiet():
        run = run_pipeline(workload, scale=args.scale, consumers=count)
    print(
        f"{count} consumers: {run.tokens} tokens, {run.rate_limited} x 429, "
        f"bucket use {run.bucket_use}, {run.returned} sent back"
    )
    return {
        "consumers": count,
        "workload": _describe(workload, contacts, args.scale, args.per_record_scale),
        "pipeline": as_dict(run),
    }


def _by_mail(args: argparse.Namespace) -> dict[str, Any]:
    """Every person named by e-mail, a third new to Qomon: ours beside the per-record way."""
    from qomon_sync_dev.bench.tokens import as_dict, run_per_record, run_pipeline

    events, contacts = _sizes(args.by_mail)[0]
    shape = {"by_mail_share": 1.0, "new_share": 1 / 3, "unknown_share": 0.0}
    workload = _workload(events, contacts, args, **shape)
    print(f"by e-mail: {len(workload.events)} events, {len(workload.mails)} e-mails")
    with _quiet():
        pipeline = run_pipeline(workload, scale=args.scale)
    per_record = run_per_record(workload, scale=args.per_record_scale)
    for name, run in (("pipeline", pipeline), ("per-record", per_record)):
        print(
            f"  {name}: {run.tokens_per_changed_contact} tokens per changed contact, "
            f"{run.searches_per_email} searches per e-mail"
        )
    return {
        "workload": _describe(workload, contacts, args.scale, args.per_record_scale),
        "strategies": {"pipeline": as_dict(pipeline), "per_record": as_dict(per_record)},
    }


def _idle(args: argparse.Namespace) -> dict[str, Any]:
    from qomon_sync_dev.bench.latency import run_idle
    from qomon_sync_dev.standin.seed import build_seed

    with _quiet():
        latency = run_idle(
            build_seed()["contacts"],
            deliveries=args.idle_deliveries,
            gap_s=args.idle_gap,
            refill=REFILL * args.scale,
        )
    print(f"idle: {latency}")
    return {**latency.as_dict(), "gap_s": args.idle_gap}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The handler's EMF metrics (local mode's in-process poller writes them to stdout)."""
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        yield


def _wrong(figures: dict[str, Any]) -> bool:
    runs = [run for size in figures["sizes"] for run in size["strategies"].values()]
    runs += [entry["pipeline"] for entry in figures["consumers"]]
    runs += list(figures["by_mail"].get("strategies", {}).values())
    return any(r["lost"] or r["state_mismatches"] or r["rate_limited"] for r in runs)


def _processor() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
