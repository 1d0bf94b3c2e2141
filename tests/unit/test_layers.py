"""Dependencies point one way: handlers -> application -> domain and adapters; the domain
imports nothing of ours outside itself (CONTRIBUTING, "Where code goes")."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from types import MappingProxyType, ModuleType

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
    """The ingest's use case reads deliveries through `sources/`; nothing imports upward."""
    allowed = {"domain", "adapters", "sources", "application", "settings"}
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
    assert len(handler.read_text(encoding="utf-8").splitlines()) < 80


def test_the_ingest_handler_is_wiring_and_one_call() -> None:
    """Issue 19, point 1: what a request becomes (its source, method and body, its
    authentication, its events and their sending) is application/ingest.py's; the handler
    reads API Gateway's event into its request and writes the answer."""
    handler = PACKAGE / "handlers" / "ingest.py"
    assert {layer_of(m) for m in imported(handler)} <= {
        "application",
        "handlers",
        "settings",
        "sources",
    }
    assert len(handler.read_text(encoding="utf-8").splitlines()) < 100


NETWORK_OR_AWS = ("boto3", "botocore", "httpx", "socket", "urllib.request", "http.client",
                  "aws_lambda_powertools", "requests", "aiohttp")  # fmt: skip


def test_the_domain_reaches_no_network_nor_aws() -> None:
    """Issue 18, point 9: what a process needs from outside is passed in, never fetched."""
    found = {}
    for path in (PACKAGE / "domain").rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        reached = {n for n in names if n.startswith(NETWORK_OR_AWS)}
        if reached:
            found[path.name] = reached
    assert found == {}


def test_the_domain_keeps_no_process_global_state() -> None:
    """Issue 18, point 9: nothing in `domain/` is set by a handler, local mode or a test
    for the whole process (the pseudonym key was: an operators' command that never set it
    failed): no `global` statement, no module-level list, set or dict to fill."""
    found = []
    for path in (PACKAGE / "domain").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Global | ast.Nonlocal):
                found.append(f"{path.name}:{node.lineno} {type(node).__name__.lower()}")
        for node in tree.body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            exported = isinstance(node, ast.Assign) and [
                t.id for t in node.targets if isinstance(t, ast.Name)
            ] == ["__all__"]
            literal = ast.List | ast.Set | ast.Dict | ast.ListComp | ast.SetComp | ast.DictComp
            if not exported and isinstance(value, literal):
                found.append(f"{path.name}:{node.lineno} a module-level list, set or dict")
    assert found == []


MUTABLE = (dict, list, set, bytearray)


def holds_mutable(value: object, seen: set[int] | None = None) -> bool:
    """Whether `value` is, or holds, a container anyone could change: through tuples,
    frozensets, read-only mappings and frozen dataclasses (a table of constants may be
    any of these, as long as nothing in it can be filled)."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, type):
        return False
    seen.add(id(value))
    if isinstance(value, MUTABLE):
        return True
    if isinstance(value, MappingProxyType):
        return any(holds_mutable(v, seen) for v in (*value.keys(), *value.values()))
    if isinstance(value, tuple | frozenset):
        return any(holds_mutable(v, seen) for v in value)
    if dataclasses.is_dataclass(value):
        return any(holds_mutable(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return False


def test_what_the_domain_holds_at_module_level_is_read_only() -> None:
    """What a domain module holds at module level, however it was built (a call such as
    pydantic's `ConfigDict` makes a dict too, and a frozen dataclass may hold one), is
    read-only: a table shared by the whole process cannot be filled or edited by one
    caller for the others."""
    found = []
    for path in sorted((PACKAGE / "domain").rglob("*.py")):
        module = importlib.import_module(f"qomon_sync.domain.{path.stem}")
        for name, value in vars(module).items():
            if name.startswith("__") or isinstance(value, ModuleType) or callable(value):
                continue
            if holds_mutable(value):
                found.append(f"{path.name} {name}")
    assert found == []


def module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_among(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each runtime module's imports of other runtime modules, including those made only
    for type checking (a circle there is still two modules that cannot be read apart):
    `from package import name` counts as an import of `package.name` when that is a
    module, and of the package otherwise."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[module] = {name for name in found if name in modules and name != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_runtime_modules_import_each_other() -> None:
    """Issue 19: `application/flush.py` and `application/sync_batch.py` imported each
    other (the flush took the whole batch). Dependencies point one way, within a layer
    too: no circle of imports among the modules both Lambdas ship."""
    modules = {module_of(path): path for path in PACKAGE.rglob("*.py")}
    assert circles(imports_among(modules)) == []
