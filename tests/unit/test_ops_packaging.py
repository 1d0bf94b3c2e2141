"""The operators' commands stand alone: they load no developer tool, say what an operator's
install lacks in words, read the names the pipeline really uses, and find local mode where
it writes its endpoints."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qomon_sync_ops import cli, status, target
from tests.conftest import ROOT
from tests.unit.test_runtime_boundary import DEV_ONLY

PROBE = """
import importlib, json, pkgutil, sys
import qomon_sync_ops
from qomon_sync_ops.cli import main
for module in pkgutil.walk_packages(qomon_sync_ops.__path__, "qomon_sync_ops."):
    importlib.import_module(module.name)
code = main(["dlq", "list"])
print(json.dumps([code, sorted({name.split(".")[0] for name in sys.modules})]))
"""


def test_the_operator_commands_load_no_developer_tool() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'functions'}:{ROOT / 'ops'}", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    code, loaded = json.loads(done.stdout)
    assert code == 2  # no --stack nor --local: said in words
    assert "--stack NAME" in done.stderr
    assert "qomon_sync_ops" in loaded
    assert not set(loaded) & DEV_ONLY, set(loaded) & DEV_ONLY


def test_nothing_in_ops_imports_or_names_the_developer_package() -> None:
    # The developer commands reach `qomon-sync` through the entry-point group, by name in
    # pyproject.toml: no module of ops/ imports qomon_sync_dev, nor names it to import.
    offenders = []
    for path in sorted((ROOT / "ops").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        imported = {
            name.split(".")[0]
            for node in ast.walk(ast.parse(text))
            for name in (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
        }
        if "qomon_sync_dev" in imported or "qomon_sync_dev" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


SIMULATED_INSTALL = """
import importlib.abc, os, sys

ABSENT = set(os.environ["ABSENT"].split(","))


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent())
"""
"""A sitecustomize that hides packages, as a machine that never installed them."""


def qomon_sync(tmp_path: Path, *args: str, absent: set[str]) -> subprocess.CompletedProcess[str]:
    """The `qomon-sync` console script, as run on a machine without the `absent` packages."""
    (tmp_path / "sitecustomize.py").write_text(SIMULATED_INSTALL, encoding="utf-8")
    return subprocess.run(
        [str(Path(sys.executable).parent / "qomon-sync"), *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "ABSENT": ",".join(sorted(absent)), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# `pip install '.[ops]'` installs the developer package (the distribution holds it) without
# the developer dependencies; a wheel without it would have neither.
OPERATORS_INSTALLS = {
    "ops extra": DEV_ONLY - {"qomon_sync_dev"},
    "without the developer package": set(DEV_ONLY),
}


@pytest.mark.parametrize("absent", OPERATORS_INSTALLS.values(), ids=OPERATORS_INSTALLS.keys())
def test_an_operators_install_says_what_a_developer_command_needs(
    tmp_path: Path, absent: set[str]
) -> None:
    # Given an operator's machine, without the developer tools
    # When the operator asks for a developer command
    done = qomon_sync(tmp_path, "demo", absent=absent)
    # Then a sentence says what to install, exit 2, never a traceback
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "developer commands need the development install: `make install`" in done.stderr
    assert done.stderr.count("\n") <= 2, done.stderr
    # And the operators' commands are all there
    listed = qomon_sync(tmp_path, "--help", absent=absent)
    assert listed.returncode == 0, listed.stderr
    for name in cli.OPERATOR_COMMANDS:
        assert f"    {name} " in listed.stdout, name
    asked = qomon_sync(tmp_path, "dlq", "list", absent=absent)
    assert (asked.returncode, "Traceback" in asked.stderr) == (2, False)
    assert "--stack NAME" in asked.stderr


def test_the_one_entry_point_reaches_both_kinds_of_command(tmp_path: Path) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'qomon-sync = "qomon_sync_ops.cli:main"' in pyproject
    assert '[project.entry-points."qomon_sync.commands"]' in pyproject
    assert 'developer = "qomon_sync_dev.cli:COMMANDS"' in pyproject
    assert 'ops = ["boto3==1.44.5", "tqdm==4.70.1"]' in pyproject
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "tqdm==4.70.1" in dev  # the same pin for developers
    assert "qomon_sync_ops" not in (ROOT / "functions" / "requirements.txt").read_text()
    from qomon_sync_dev.cli import COMMANDS

    # Each command is listed once, in the table of the package that holds it
    developer = [name for name, _, _ in COMMANDS]
    assert len(set(developer)) == len(developer)
    assert not set(developer) & cli.OPERATOR_COMMANDS
    assert set(cli.commands()) == set(developer) | cli.OPERATOR_COMMANDS
    # And the installed `qomon-sync` lists both kinds, and runs a developer command
    listed = qomon_sync(tmp_path, "--help", absent=set())
    for name in [*cli.OPERATOR_COMMANDS, *developer]:
        assert f"    {name}" in listed.stdout, name
    schema = qomon_sync(tmp_path, "schema", absent=set())
    assert schema.returncode == 0, schema.stderr
    assert '"$id": "urn:qomon-sync:change-event:v1"' in schema.stdout


def test_an_unknown_command_is_named_with_the_commands_there_are(tmp_path: Path) -> None:
    done = qomon_sync(tmp_path, "stauts", absent=set())
    assert done.returncode == 2
    assert done.stderr.startswith("qomon-sync: `stauts` is not a command here (status, dlq, ")


def test_local_mode_is_found_where_it_writes_its_endpoints() -> None:
    from qomon_sync_dev import local_lambda, local_mode

    assert target.LOCAL_STATE_DIR == local_mode.DEFAULT_STATE_DIR
    assert target.LOCAL_STATE_DIR_ENV == local_mode.STATE_DIR_ENV
    assert target.LOCAL_ENDPOINTS_FILE == local_mode.ENDPOINTS_FILE
    assert target.LOCAL_STACK == local_lambda.STACK


def test_status_reads_the_metrics_the_sync_emits() -> None:
    package = ROOT / "functions" / "qomon_sync"
    sync = "\n".join(
        path.read_text()
        for folder in ("handlers", "application")
        for path in sorted((package / folder).glob("*.py"))
    )
    for name, _ in status.HOUR:
        assert f'"{name}"' in sync, name
    assert f'"{status.DEAD_LETTERED}"' in sync
    assert 'add_dimension(name="reason"' in sync
