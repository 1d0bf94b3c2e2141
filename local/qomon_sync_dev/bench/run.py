"""`qomon-sync bench`: the figures for tokens, throughput, overhead and size, from a run.

Runs the seeded workload through our pipeline and through the per-record approach (same
stand-in, same time scale), then the in-process micro-benchmarks, and writes the figures
as JSON plus docs/benchmarks.md with a table and a chart. Nothing in the report is typed
in: every number comes from this run, on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--contacts", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--scale", type=float, default=4.0, help="refill x scale for both strategies"
    )
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.json")
    parser.add_argument("--no-docs", action="store_true", help="write the JSON only")


def run_from_args(args: argparse.Namespace) -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the handler's logs stay quiet
    from qomon_sync_dev.bench.micro import run_micro
    from qomon_sync_dev.bench.tokens import as_dict, run_per_record, run_pipeline
    from qomon_sync_dev.bench.workload import WorkloadSpec, build_workload
    from qomon_sync_dev.standin.make_seed import build_seed

    spec = WorkloadSpec(events=args.events, contacts=args.contacts, seed=args.seed)
    workload = build_workload(build_seed()["contacts"], spec)
    events, contacts = len(workload.events), len(workload.touched)
    print(f"workload: {events} events over {contacts} contacts, seed {spec.seed}")
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metrics
        pipeline = run_pipeline(workload, scale=args.scale)
    print(f"pipeline: {pipeline.tokens} tokens, {pipeline.wall_s}s")
    per_record = run_per_record(workload, scale=args.scale)
    print(f"per-record: {per_record.tokens} tokens, {per_record.wall_s}s")
    micro = run_micro()
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": _processor(),
        },
        "workload": {
            "events": len(workload.events),
            "contacts_touched": len(workload.touched),
            "contacts_changed": len(workload.changed),
            "noop_events": workload.noop_events,
            "unknown_contact_events": workload.unknown_events,
            "seed": spec.seed,
            "skew": spec.skew,
            "floor_tokens": workload.token_floor(),
            "qomon": {"burst": 100, "refill_per_s": 10, "time_scale": args.scale},
        },
        "strategies": {"pipeline": as_dict(pipeline), "per_record": as_dict(per_record)},
        "comparison": {
            "tokens_ratio_pipeline_to_per_record": round(pipeline.tokens / per_record.tokens, 3),
            "pipeline_ratio_to_floor": pipeline.ratio_to_floor,
        },
        "micro": micro,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"figures: {args.out}")
    if not args.no_docs:
        chart = DOCS / "benchmarks.png"
        _chart(figures, chart)
        (DOCS / "benchmarks.md").write_text(_markdown(figures, chart.name), encoding="utf-8")
        print(f"report: {DOCS / 'benchmarks.md'}")
    wrong = [s for s in (pipeline, per_record) if s.lost or s.state_mismatches or s.rate_limited]
    return 1 if wrong else 0


def _processor() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _chart(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = figures["strategies"]
    floor = figures["workload"]["floor_tokens"] / figures["workload"]["events"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["qomon-sync", "per-record"]
    per_event = [runs["pipeline"]["tokens_per_event"], runs["per_record"]["tokens_per_event"]]
    left.bar(names, per_event, color=["#2a9d8f", "#e76f51"])
    left.axhline(floor, color="black", linestyle="--", label=f"floor {floor:.2f}")
    left.set_title("Qomon tokens per event")
    left.legend()
    use = [runs["pipeline"]["bucket_use"] * 100, runs["per_record"]["bucket_use"] * 100]
    right.bar(names, use, color=["#2a9d8f", "#e76f51"])
    right.set_ylim(0, 110)
    right.set_title("Bucket use under backlog (% of refill)")
    workload = figures["workload"]
    fig.suptitle(f"{workload['events']} events, seed {workload['seed']} ({figures['when']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(figures: dict[str, Any], chart: str) -> str:
    w, runs, micro = figures["workload"], figures["strategies"], figures["micro"]
    p, r = runs["pipeline"], runs["per_record"]
    rows = [
        ("tokens spent", p["tokens"], r["tokens"]),
        ("tokens per event", p["tokens_per_event"], r["tokens_per_event"]),
        ("ratio to the floor", p["ratio_to_floor"], r["ratio_to_floor"]),
        ("GET / PATCH / search calls", _calls(p), _calls(r)),
        ("429s", p["rate_limited"], r["rate_limited"]),
        ("dead letters", p["dead_letters"], r["dead_letters"]),
        ("events lost", p["lost"], r["lost"]),
        ("final state against the model", _state(p), _state(r)),
        ("wall time (s)", p["wall_s"], r["wall_s"]),
        ("time the token budget alone needs (s)", p["budget_s"], r["budget_s"]),
        ("bucket use under backlog", f"{p['bucket_use']:.0%}", f"{r['bucket_use']:.0%}"),
    ]
    table = "\n".join(f"| {name} | {a} | {b} |" for name, a, b in rows)
    return f"""# Benchmarks

Generated by `make bench` on {figures["when"]} on {figures["machine"]["processor"]}
({figures["machine"]["cpus"]} CPUs, Python {figures["machine"]["python"]},
{figures["machine"]["platform"]}). Every figure below comes from that run
([`benchmarks.json`](benchmarks.json)); none is typed in.

## Tokens and throughput

Workload: {w["events"]} change events over {w["contacts_touched"]} contacts of the stand-in's
seed (Zipf skew {w["skew"]}, seed {w["seed"]}): {w["noop_events"]} events change nothing,
{w["unknown_contact_events"]} name people Qomon does not know, the rest answer every form
type, by Qomon id or by e-mail. Qomon is played by the stand-in with burst 100 and refill
10 tokens/s, times {w["qomon"]["time_scale"]} for both strategies. The floor for this
workload is one read per contact touched (or lookup per unknown person) and one write per
contact whose data really changes: **{w["floor_tokens"]} tokens**.

| | qomon-sync | per-record (GET, overlay, PATCH per event) |
|---|---|---|
{table}

qomon-sync spends **{figures["comparison"]["tokens_ratio_pipeline_to_per_record"]:.0%}** of
the per-record approach's tokens, **{p["ratio_to_floor"]}x** the floor.

![tokens per event and bucket use]({chart})

## In-process overhead

```json
{json.dumps(micro, indent=2, ensure_ascii=False)}
```
"""


def _calls(run: dict[str, Any]) -> str:
    calls = run["calls"]
    return " / ".join(
        str(calls.get(k, 0)) for k in ("GET /contacts/{id}", "PATCH /contacts/{id}", "POST /search")
    )


def _state(run: dict[str, Any]) -> str:
    return (
        "matches" if not run["state_mismatches"] else f"{len(run['state_mismatches'])} mismatches"
    )
