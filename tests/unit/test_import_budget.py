"""The import budget: cold starts are mostly imports, so our own code must stay light.

Each handler is imported in fresh interpreters, in turn with its libraries alone
(boto3, Powertools, httpx, pydantic...), so that machine drift hits both alike; the ratio
of the medians is what is held to the budget, never an absolute time.
"""

from __future__ import annotations

import pytest

from qomon_sync_dev.bench import micro

IMPORT_BUDGET = {"sync": 1.6, "ingest": 1.6}
"""Handler import CPU time over its libraries' (fastest of 7 runs each), per handler. Figures
when the budgets were set (2026-12-01, a busy 2-core machine): sync 1.16-1.47, ingest
1.16-1.43."""


@pytest.fixture(scope="module")
def imports() -> dict[str, dict[str, float]]:
    return micro.bench_imports(runs=7)


@pytest.mark.parametrize("handler", ["sync", "ingest"])
def test_the_handler_imports_within_the_budget_of_its_libraries(
    imports: dict[str, dict[str, float]], handler: str
) -> None:
    ratio = imports[handler]["ratio_cpu_handler_to_libraries"]
    budget = IMPORT_BUDGET[handler]
    print(f"{handler}: {ratio:.3f} x its libraries' import time (budget {budget})")
    assert ratio <= budget, imports[handler]
