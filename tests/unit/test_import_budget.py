"""The import budget: cold starts are mostly imports, so our own code must stay light.

Each handler is imported in fresh interpreters, in turn with its libraries alone
(boto3, Powertools, httpx, pydantic...), so that machine drift hits both alike; the ratio
of the medians is what is held to the budget, never an absolute time.
"""

from __future__ import annotations

import pytest

from qomon_sync_dev.bench import micro

IMPORT_BUDGET = {"sync": 1.35, "ingest": 1.6}
"""Handler import time over its libraries' (fastest of 7 runs each), per handler. Figures
when the budgets were set: in the benchmark notes (docs/benchmarks.md)."""


@pytest.fixture(scope="module")
def imports() -> dict[str, dict[str, float]]:
    return micro.bench_imports(runs=7)


@pytest.mark.parametrize("handler", ["sync", "ingest"])
def test_the_handler_imports_within_the_budget_of_its_libraries(
    imports: dict[str, dict[str, float]], handler: str
) -> None:
    ratio = imports[handler]["ratio_fastest_handler_to_fastest_libraries"]
    budget = IMPORT_BUDGET[handler]
    print(f"{handler}: {ratio:.3f} x its libraries' import time (budget {budget})")
    assert ratio <= budget, imports[handler]
