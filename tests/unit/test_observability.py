"""The handlers' Logger and Metrics take their names from the settings, as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

CHILD = """
import json
from qomon_sync.handlers.observability import logger, metrics
print(json.dumps({"service": logger.service, "namespace": metrics.namespace}))
"""


def names_with(env: dict[str, str]) -> dict[str, str]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions"), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    names: dict[str, str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return names


def test_service_and_namespace_come_from_the_environment() -> None:
    names = names_with(
        {"POWERTOOLS_SERVICE_NAME": "sync-eu", "POWERTOOLS_METRICS_NAMESPACE": "CampaignA"}
    )
    assert names == {"service": "sync-eu", "namespace": "CampaignA"}


def test_defaults_match_the_template() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    completed = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**env, "PYTHONPATH": str(ROOT / "functions")},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {
        "service": "qomon-sync",
        "namespace": "QomonSync",
    }
