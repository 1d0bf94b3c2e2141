"""`qomon-sync pacing-check`: does a paced client meet zero 429s from a tight bucket?

Starts a stand-in with the given burst and refill, then runs read-modify-write traffic
through a client left on the limits integrators observed (100 tokens, 10/s): the client must
learn the real limit from the `x-ratelimit-*` headers and pace itself. Prints the counts
from both sides; exits 1 when any call met a 429.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from qomon_sync.adapters.qomon import Deadline, QomonClient
from qomon_sync.domain.contact_shape import ShapePolicy, to_write_shape
from qomon_sync.domain.forms import FormCatalog
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

TOKEN = "pacing-check-token"


@dataclass
class PacingReport:
    burst: int
    refill: float
    calls: int
    gets: int
    patches: int
    tokens_client: int
    tokens_server: int
    rate_limited_client: int
    rate_limited_server: int
    elapsed_s: float
    token_floor_s: float
    """How long the bucket alone forces this traffic to take: (tokens - burst) / refill."""

    @property
    def ok(self) -> bool:
        return self.rate_limited_server == 0 and self.rate_limited_client == 0


def run_pacing_check(
    *, burst: int, refill: float, calls: int, patch_share: float = 0.5, random_seed: int = 1
) -> PacingReport:
    rng = random.Random(random_seed)
    config = StandinConfig(token=TOKEN, burst=burst, refill=refill)
    with StandinServer(config) as server, QomonClient(server.url, TOKEN) as client:
        seed = httpx.get(f"{server.url}/_standin/contacts", timeout=10).json()
        ids = [c["id"] for c in (seed["contacts"] if isinstance(seed, dict) else seed)][:10]
        started = time.monotonic()
        gets = patches = 0
        latest: dict[int, dict[str, Any]] = {}
        forms = FormCatalog([])
        # The seed carries fields no schema lists, as live search results do.
        keep = ShapePolicy(passthrough=frozenset({"external_id", "membership_number"}))
        while gets + patches < calls:
            contact_id = rng.choice(ids)
            if contact_id in latest and rng.random() < patch_share:
                body = to_write_shape(latest[contact_id], forms, keep)
                body["firstname"] = f"Pace {gets + patches}"
                latest[contact_id] = client.replace_contact(
                    contact_id, body, deadline=Deadline.after(60)
                )
                patches += 1
            else:
                latest[contact_id] = client.get_contact(contact_id, deadline=Deadline.after(60))
                gets += 1
        elapsed = time.monotonic() - started
        server_stats = httpx.get(f"{server.url}/_standin/stats", timeout=10).json()
    return PacingReport(
        burst=burst,
        refill=refill,
        calls=gets + patches,
        gets=gets,
        patches=patches,
        tokens_client=client.stats.tokens,
        tokens_server=int(server_stats["tokens_spent"]),
        rate_limited_client=client.stats.rate_limited,
        rate_limited_server=int(server_stats["rate_limited"]),
        elapsed_s=round(elapsed, 2),
        token_floor_s=round(max(0.0, client.stats.tokens - burst) / refill, 2),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--refill", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--patch-share", type=float, default=0.5)
    parser.add_argument("--random-seed", type=int, default=1)


def run_from_args(args: argparse.Namespace) -> int:
    report = run_pacing_check(
        burst=args.burst,
        refill=args.refill,
        calls=args.calls,
        patch_share=args.patch_share,
        random_seed=args.random_seed,
    )
    print(json.dumps(asdict(report), indent=2))
    verdict = "OK: no 429" if report.ok else "FAIL: the client met 429s"
    print(
        f"{verdict} - {report.calls} calls ({report.gets} GET, {report.patches} PATCH), "
        f"{report.tokens_server} tokens in {report.elapsed_s}s "
        f"(the bucket alone needs {report.token_floor_s}s)"
    )
    return 0 if report.ok else 1
