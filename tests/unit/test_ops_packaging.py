"""The operators' commands stand alone: they load no developer tool, read the names the
pipeline really uses, and find local mode where it writes its endpoints."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_without_the_developer_tools_other_commands_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "developer_tools_installed", lambda: False)
    assert cli.main(["local"]) == 2
    assert "developer commands need the development install" in capsys.readouterr().err


def test_the_one_entry_point_reaches_both_kinds_of_command() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'qomon-sync = "qomon_sync_ops.cli:main"' in pyproject
    assert 'ops = ["boto3==1.44.5", "tqdm==4.70.1"]' in pyproject
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "tqdm==4.70.1" in dev  # the same pin for developers
    assert "qomon_sync_ops" not in (ROOT / "functions" / "requirements.txt").read_text()
    from qomon_sync_dev.cli import COMMANDS

    names = {name for name, _, _ in COMMANDS}
    assert names >= cli.OPERATOR_COMMANDS


def test_local_mode_is_found_where_it_writes_its_endpoints() -> None:
    from qomon_sync_dev import local_mode

    assert target.LOCAL_STATE_DIR == local_mode.DEFAULT_STATE_DIR
    assert target.LOCAL_STATE_DIR_ENV == local_mode.STATE_DIR_ENV
    assert target.LOCAL_ENDPOINTS_FILE == local_mode.ENDPOINTS_FILE
    assert target.LOCAL_STACK == local_mode.STACK


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
