"""The quick probe (`make probe-quick`): local mode under concurrent signed webhooks and a Qomon
outage, on loopback; its report's invariants hold. (Its hostile requests are
tests/integration/test_hostile_requests.py now.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.probe.account import print_report
from tests.probe.logs import CAPTURE_PATHS, KINDS
from tests.probe.run import QUICK, run_probe

pytestmark = pytest.mark.integration

SOURCES = {"generic", "typeform", "tally", "brevo"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], float]:
    log = tmp_path_factory.mktemp("probe") / "pipeline.log"
    started = time.monotonic()
    report = run_probe(QUICK, log_file=log, say=lambda _: None)
    return report, time.monotonic() - started


def test_quick_probe_is_small_and_bounded(quick: tuple[dict[str, Any], float]) -> None:
    report, seconds = quick
    spec = report["spec"]
    assert (spec["webhooks"], spec["concurrency"], spec["outage_s"]) == (60, 4, 3.0)
    assert seconds < 60
    assert report["wall_s"] <= spec["max_seconds"]
    assert report["drained"]


def test_every_legitimate_delivery_is_accepted_in_every_phase(
    quick: tuple[dict[str, Any], float],
) -> None:
    report, _ = quick
    deliveries = report["deliveries"]
    assert deliveries["first_deliveries"] == 60
    assert sum(deliveries["redeliveries"].values()) >= 1
    assert deliveries["by_status"] == {"202": deliveries["sent"]}
    assert set(deliveries["by_source"]) == SOURCES
    assert set(deliveries["by_phase"]) == {
        "before the outage",
        "during the outage",
        "after the outage",
    }
    assert report["outage"]["seconds"] >= 3.0
    assert report["outage"]["qomon_calls_failed"] > 0


def test_no_accepted_event_is_lost_or_applied_twice(quick: tuple[dict[str, Any], float]) -> None:
    report, _ = quick
    events = report["events"]
    assert events["lost"] == 0
    assert events["applied_twice"] == 0
    assert events["distinct_events_accepted"] == (
        events["applied"] + events["unchanged_or_skipped"] + events["dead_lettered"]
    )
    assert events["applied"] > 0
    assert events["dead_lettered"] > 0  # the unknown people of the generic source
    assert all(not fate.startswith("LOST") for fate in events["by_fate"])
    assert not any("NO REASON" in fate or "no reason" in fate for fate in events["by_fate"])
    assert events["dead_letters_in_queue"] == events["dead_lettered"]
    qomon = report["qomon"]
    assert qomon["notes_checked"] > 0
    assert qomon["notes_missing"] == qomon["notes_added_twice"] == 0
    assert qomon["notes_of_events_not_applied"] == 0
    assert qomon["contacts_created_missing_from_qomon"] == 0


def test_created_contacts_keep_the_email_they_were_found_by(
    quick: tuple[dict[str, Any], float],
) -> None:
    qomon = quick[0]["qomon"]
    assert qomon["contacts_created"] > 0
    assert qomon["contacts_created_without_their_mail"] == {}
    assert qomon["people_created_more_than_once"] == 0


def test_no_log_line_holds_personal_data_or_a_secret(quick: tuple[dict[str, Any], float]) -> None:
    logs = quick[0]["logs"]
    assert logs["capture_paths_checked"] == f"{len(CAPTURE_PATHS)}/{len(CAPTURE_PATHS)}"
    assert logs["log_records"] > 100
    assert logs["metric_blobs"] > 10
    assert set(logs["values_searched"]) == set(KINDS)
    assert all(count > 0 for count in logs["values_searched"].values())
    assert logs["lines_with_personal_data"] == 0
    assert logs["hits_by_kind"] == {}


def test_the_report_says_it_in_words_and_numbers(quick: tuple[dict[str, Any], float]) -> None:
    report, _ = quick
    printed: list[str] = []
    print_report(report, out=printed.append)
    text = "\n".join(printed)
    for words in ("LOST", "APPLIED TWICE", "lines scanned", "Qomon outage"):
        assert words in text
    assert Path(report["log_file"]).exists()
    lines = Path(report["log_file"]).read_text(encoding="utf-8").splitlines()
    assert len(lines) == report["logs"]["lines_scanned"]
