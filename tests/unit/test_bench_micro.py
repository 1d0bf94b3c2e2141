"""`make bench`'s micro-benchmarks: the figures' shape and sanity, never their speed.

One small run (a few assembly calls, one fresh interpreter per import figure) is shared
by the tests; the bundle is read from a fake build directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from qomon_sync_dev.bench import micro

FAKE_SYNC_FILES = {
    "pydantic_core/_core.so": 5000,
    "pydantic/main.py": 3000,
    "pydantic/fields.py": 1000,
    "qomon_sync/handlers/sync.py": 700,
    "six.py": 50,
    **{f"pkg{n:02d}/__init__.py": 10 + n for n in range(12)},
}


def _fake_build(root: Path) -> Path:
    for relative, size in FAKE_SYNC_FILES.items():
        path = root / "SyncFunction" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return root


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    build_dir = _fake_build(tmp_path_factory.mktemp("build"))
    return micro.run_micro(repeats=1, calls=60, import_runs=1, build_dir=build_dir)


def _ratio(value: Any, over: Any) -> Any:
    return pytest.approx(value / over, rel=1e-2, abs=2e-3)


def test_the_result_is_json_with_every_section(result: dict[str, Any]) -> None:
    assert json.loads(json.dumps(result)) == result
    assert {"machine", "settings", "assembly", "imports", "bundle"} <= result.keys()
    assert result["settings"] == {"repeats": 1, "calls": 60, "import_runs": 1}
    assert result["elapsed_s"] > 0


def test_the_machine_is_recorded(result: dict[str, Any]) -> None:
    machine = result["machine"]
    assert machine["python"].count(".") == 2
    assert machine["cpu_count"] >= 1
    assert machine["platform"]
    assert machine["date_utc"].endswith("+00:00")
    assert "processor" in machine


def test_assembly_figures_are_positive_and_ratios_follow_from_them(
    result: dict[str, Any],
) -> None:
    assembly = result["assembly"]
    per_event = assembly["us_per_event"]
    for clock in ("cpu", "wall"):
        assert per_event["assembly"][clock] > 0
        assert per_event["json_round_trip"][clock] > 0
        assert assembly["ratio_assembly_to_json_round_trip"][clock] == _ratio(
            per_event["assembly"][clock], per_event["json_round_trip"][clock]
        )
        fold = assembly["fold"]
        assert fold["us_per_event"]["folded"][clock] > 0
        assert fold["us_per_event"]["one_call_per_event"][clock] > 0
        assert fold["ratio_folded_to_one_call_per_event"][clock] == _ratio(
            fold["us_per_event"]["folded"][clock], fold["us_per_event"]["one_call_per_event"][clock]
        )
    assert assembly["calls_per_round"] == 60
    assert assembly["fold"]["events_per_contact"] == 10
    assert assembly["fold"]["contacts_per_round"] == 6
    assert assembly["contact_json_bytes_median"] > 1000


def test_the_event_mix_applies_to_the_seed_without_rejections(result: dict[str, Any]) -> None:
    assembly = result["assembly"]
    assert assembly["contacts"] == 40
    assert assembly["distinct_events"] == 40 * len(micro.EVENT_KINDS)
    assert sum(assembly["outcomes"].values()) == assembly["distinct_events"]
    assert not [kind for kind in assembly["outcomes"] if kind.startswith("rejected")]
    assert assembly["outcomes"]["replace"] > assembly["distinct_events"] * 0.9
    assert set(assembly["fold"]["outcomes"]) == {"replace"}


@pytest.mark.parametrize("handler", ["sync", "ingest"])
def test_import_figures_are_positive_and_own_is_the_difference(
    result: dict[str, Any], handler: str
) -> None:
    imports = result["imports"]
    assert imports["runs"] == 1
    assert imports["environment"]["PYTHONPATH"] == "functions"
    figures = imports[handler]
    assert figures["module"] == f"qomon_sync.handlers.{handler}"
    assert figures["handler_ms"] > 0
    assert figures["libraries_ms"] > 0
    assert figures["own_ms"] == pytest.approx(
        figures["handler_ms"] - figures["libraries_ms"], abs=0.02
    )
    assert figures["ratio_handler_to_libraries"] == _ratio(
        figures["handler_ms"], figures["libraries_ms"]
    )
    assert len(figures["runs_ms"]["handler"]) == len(figures["runs_ms"]["libraries"]) == 1


@pytest.mark.parametrize("handler", ["sync", "ingest"])
def test_the_library_baseline_loads_every_package_the_handler_loads(
    result: dict[str, Any], handler: str
) -> None:
    # Otherwise "own" would count a library's import as ours: add it to HANDLER_LIBRARIES.
    assert result["imports"][handler]["packages_loaded_by_handler_only"] == []


def test_the_bundle_is_measured_where_built_and_null_with_a_reason_elsewhere(
    result: dict[str, Any],
) -> None:
    bundle = result["bundle"]
    sync = bundle["functions"]["SyncFunction"]
    assert sync["bytes"] == sum(FAKE_SYNC_FILES.values())
    assert sync["files"] == len(FAKE_SYNC_FILES)
    assert sync["zip_bytes"] > 0
    assert sync["ratio_zip_to_bytes"] == _ratio(sync["zip_bytes"], sync["bytes"])
    largest = sync["largest_entries"]
    assert len(largest) == 10
    assert [e["name"] for e in largest[:4]] == ["pydantic_core", "pydantic", "qomon_sync", "six.py"]
    assert largest[1] == {"name": "pydantic", "bytes": 4000, "files": 2}
    assert [e["bytes"] for e in largest] == sorted((e["bytes"] for e in largest), reverse=True)
    assert bundle["functions"]["IngestFunction"] is None
    assert "make sam-build" in bundle["missing"]["IngestFunction"]
    assert "SyncFunction" not in bundle["missing"]


def test_no_build_at_all_gives_nulls(tmp_path: Path) -> None:
    bundle = micro.bench_bundle(tmp_path / "nothing-here")
    assert bundle["functions"] == {"SyncFunction": None, "IngestFunction": None}
    assert set(bundle["missing"]) == {"SyncFunction", "IngestFunction"}


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        micro.run_micro(repeats=0)


def test_the_command_prints_the_figures_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_run_micro(**kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs)
        return {"benchmark": "micro", "bénévole": 1.5}

    monkeypatch.setattr(micro, "run_micro", fake_run_micro)
    parser = argparse.ArgumentParser()
    micro.add_arguments(parser)
    args = parser.parse_args(["--repeats", "3", "--calls", "90", "--build-dir", str(tmp_path)])
    assert micro.run_from_args(args) == 0
    assert json.loads(capsys.readouterr().out) == {"benchmark": "micro", "bénévole": 1.5}
    assert seen == {
        "repeats": 3,
        "calls": 90,
        "import_runs": micro.DEFAULT_IMPORT_RUNS,
        "build_dir": tmp_path,
    }
