"""Issue 12: several consumers (each its own process, as Lambda instances) share the
space's one token bucket: no 429, nothing sent back, nothing lost, one write per contact."""

from __future__ import annotations

import pytest

from qomon_sync_dev.bench.tokens import run_pipeline
from qomon_sync_dev.bench.workload import WorkloadSpec, build_workload
from qomon_sync_dev.standin.seed import build_seed

pytestmark = pytest.mark.integration


def test_three_consumer_processes_share_one_bucket_and_fold_each_backlog_once() -> None:
    workload = build_workload(
        build_seed()["contacts"], WorkloadSpec(events=400, contacts=40, seed=5)
    )
    # A tight bucket (burst 100, 40/s): every consumer waits its turn on the shared one.
    run = run_pipeline(workload, scale=4.0, consumers=3, timeout_s=240)
    assert run.rate_limited == 0
    assert run.returned == 0  # nothing sent back, for want of tokens or anything else
    assert (run.lost, run.staged_left, run.state_mismatches) == (0, 0, [])
    assert run.calls["GET /contacts/{id}"] == len(workload.touched)
    assert run.calls["PATCH /contacts/{id}"] == len(workload.changed)
    assert run.calls["GET /v1/forms/type/{type}"] == 6  # the forms, once for all three
    assert run.ratio_to_floor <= 1.1
