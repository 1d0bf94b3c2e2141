"""Dependencies point one way: handlers -> application -> domain and adapters; the domain
imports nothing of ours outside itself (CONTRIBUTING, "Where code goes")."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "functions" / "qomon_sync"


def imported(path: Path) -> set[str]:
    """The qomon_sync modules a file imports, as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("qomon_sync.")}


def layer_of(module: str) -> str:
    return module.split(".")[1]


def imports_of(layer: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(PACKAGE)): {layer_of(m) for m in imported(path)}
        for path in (PACKAGE / layer).rglob("*.py")
    }


def test_the_domain_imports_nothing_of_ours_outside_the_domain() -> None:
    allowed = {"domain"}
    assert {
        f: layers - allowed for f, layers in imports_of("domain").items() if layers - allowed
    } == {}


def test_the_application_never_imports_the_handlers() -> None:
    allowed = {"domain", "adapters", "application", "settings"}
    found = imports_of("application")
    assert {f: layers - allowed for f, layers in found.items() if layers - allowed} == {}


def test_adapters_never_import_the_application_or_the_handlers() -> None:
    found = imports_of("adapters")
    assert {f: layers & {"application", "handlers"} for f, layers in found.items()} == {
        f: set() for f in found
    }


def test_the_sync_handler_is_wiring_and_one_call() -> None:
    handler = PACKAGE / "handlers" / "sync.py"
    assert {layer_of(m) for m in imported(handler)} <= {
        "adapters",
        "application",
        "domain",
        "handlers",
        "settings",
    }
    assert len(handler.read_text(encoding="utf-8").splitlines()) < 120
