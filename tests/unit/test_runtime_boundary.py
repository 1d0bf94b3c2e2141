"""The Lambda bundle's package imports none of the dev-only code or its dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

DEV_ONLY = {
    "qomon_sync_dev",
    "aiohttp",
    "hypothesis",
    "pytest",
    "jsonschema",
    "moto",
    "mypy",
    "ruff",
}

PROBE = """
import importlib, json, pkgutil, sys
import qomon_sync
for module in pkgutil.walk_packages(qomon_sync.__path__, "qomon_sync."):
    importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_importing_every_runtime_module_loads_no_dev_only_package() -> None:
    # A fresh interpreter that sees only functions/, as the Lambda runtime does.
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT / "functions",
        env={"PYTHONPATH": str(ROOT / "functions"), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert "qomon_sync" in loaded
    assert not loaded & DEV_ONLY, loaded & DEV_ONLY


def test_no_runtime_source_names_the_dev_package() -> None:
    offenders = [
        path.relative_to(ROOT)
        for path in (ROOT / "functions").rglob("*.py")
        if "qomon_sync_dev" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
