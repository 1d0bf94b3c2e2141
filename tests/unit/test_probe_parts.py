"""The probe's parts that need no server: the log search (every form a value may take,
kinds and line numbers, never the value), the verdicts on answers and events, and the
traffic it builds."""

from __future__ import annotations

import argparse
import io
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from qomon_sync_dev.standin.seed import build_seed
from tests.integration.hostile import Hostile, _judge
from tests.probe.account import (
    NOT_DRAINED,
    Outcomes,
    _fate,
    _log_figures,
    print_report,
)
from tests.probe.logs import Line, Personal, Scanner, read_lines
from tests.probe.run import QUICK, ProbeSpec, add_arguments, spec_from_args
from tests.probe.traffic import SOURCE_CYCLE, TrafficBuilder

MAIL = "zoé.quéméner@example.net"


def scanner() -> Scanner:
    personal = Personal()
    personal.add("email", MAIL)
    personal.add("phone", "+33612345678")
    personal.add("first_name", "Zoé")
    personal.add("tag", "quartier nord")
    personal.add("note", "Rappeler après 18 h.")
    personal.add("secret", "local-qomon-token")
    return Scanner(personal)


def line(text: str, number: int = 1) -> Line:
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    return Line(number, text, record if isinstance(record, dict) else None)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ('{"detail": "zoé.quéméner@example.net"}', {"email", "first_name"}),
        ('{"detail": "zo\\u00e9.qu\\u00e9m\\u00e9ner@example.net"}', {"email", "first_name"}),
        ("GET /search?mail=zo%C3%A9.qu%C3%A9m%C3%A9ner%40example.net", {"email", "first_name"}),
        ("ZOÉ.QUÉMÉNER@EXAMPLE.NET", {"email", "first_name"}),
        ('{"mobile": "06 12 34 56 78"}', {"phone"}),
        ("called 0033612345678 twice", {"phone"}),
        ("called 06.12.34.56.78", {"phone"}),
        ('{"tags": ["quartier nord"]}', {"tag"}),
        ('{"note": "Rappeler apr\\u00e8s 18 h."}', {"note"}),
        ("Authorization: Bearer local-qomon-token", {"secret"}),
        # Not a hit: a one-word value inside another word, digits of a decimal number or
        # inside a timestamp (a phone's digits end the run), a digest.
        ("Zoéa and Zoélie", set()),
        ('{"QomonLatency": [12.612345678, 3.0033612345678]}', set()),
        ('{"Timestamp": 1612345678000}', set()),
        ('{"changed": ["tags[404ce2b678e4]"]}', set()),
    ],
)
def test_the_search_finds_every_form_of_a_value_and_nothing_else(
    text: str, kinds: set[str]
) -> None:
    assert scanner().kinds_in(line(text)) == kinds


def test_a_hit_names_its_kind_line_and_key_never_the_value(tmp_path: Path) -> None:
    log = tmp_path / "pipeline.log"
    records = [
        {"message": "event processed", "function_name": "sync", "event_id": "probe-1"},
        {"message": "event processed", "function_name": "sync", "detail": f"no {MAIL} here"},
        {"_aws": {"CloudWatchMetrics": []}, "EventsReceived": 1},
    ]
    log.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + "plain line\n",
        encoding="utf-8",
    )
    result = scanner().scan(read_lines(log))
    assert (result.lines, result.records, result.metric_blobs, result.other_lines) == (4, 2, 1, 1)
    assert result.lines_with_hits == 1
    assert result.hits_by_kind == Counter({"email": 1, "first_name": 1})
    hit = result.first_hits[0]
    assert (hit.line, hit.where, hit.message) == (2, "detail", "sync / event processed")
    problems: list[str] = []
    personal = Personal()
    personal.add("email", MAIL)
    figures = _log_figures(log, personal, "no-marker", problems)
    assert figures["lines_with_personal_data"] == 1
    assert MAIL not in json.dumps(figures, ensure_ascii=False)
    assert not any(MAIL in p for p in problems)
    assert any("log capture missed" in p for p in problems)


def test_each_accepted_event_gets_one_fate() -> None:
    outcomes = Outcomes(skipped={"e-skip"})
    assert _fate(["created", "duplicate"], None, outcomes, "e") == "applied (created)"
    assert _fate(["unchanged"], None, outcomes, "e-skip") == "skipped (unknown person)"
    assert _fate(["dead_letter"], "contact_not_found", outcomes, "e") == (
        "dead-lettered: contact_not_found"
    )
    assert _fate(["dead_letter"], None, outcomes, "e").startswith("LOST")
    assert _fate([], "no reason (moved by the redrive policy)", outcomes, "e").startswith(
        "dead-lettered"
    )
    assert _fate(["duplicate"], None, outcomes, "e").startswith("LOST")
    assert _fate([], None, outcomes, "e") == "LOST: no outcome"
    # Not lost, but not drained either: the run says so and fails on it.
    assert _fate([], None, outcomes, "e", frozenset({"e"})) == NOT_DRAINED


def test_a_hostile_request_must_get_a_4xx() -> None:
    request = Hostile("header trick", "x", "POST", "/webhooks/generic", ())
    beyond = Hostile("header trick", "x", "POST", "/webhooks/generic", (), http_layer=True)
    assert _judge(request, 401, True) == "ok"
    assert _judge(request, 401, False) == "a 4xx that is not problem JSON"
    assert _judge(beyond, 400, False) == "refused by the HTTP server"
    assert _judge(request, 202, False) == "ACCEPTED (a 2xx)"
    assert _judge(request, 500, True) == "A 500 (a 5xx)"
    assert _judge(request, 503, True, "Temporarily unavailable") == "A 503 (a 5xx)"
    assert _judge(request, 503, True, "Queue unavailable") == "ok"
    assert _judge(request, 0, False) == "connection closed without an answer"


def test_the_traffic_is_distinct_events_of_every_source_with_redeliveries_after() -> None:
    personal = Personal()
    builder = TrafficBuilder(random.Random(1), build_seed()["contacts"], personal)
    deliveries = builder.build(60, 0.05)
    firsts = [d for d in deliveries if d.redelivery is None]
    assert len(firsts) == 60
    assert {d.source for d in firsts} == set(SOURCE_CYCLE)
    assert len({d.body for d in firsts}) == 60
    for again in (d for d in deliveries if d.redelivery is not None):
        original = next(d for d in firsts if d.body == again.body)
        assert deliveries.index(original) < deliveries.index(again)
    bodies = [json.loads(d.body) for d in firsts if d.source == "generic"]
    ids = [e["event_id"] for b in bodies for e in (b if isinstance(b, list) else [b])]
    assert len(ids) == len(set(ids))
    assert all(count > 0 for kind, count in personal.count().items() if kind != "secret")
    assert all(d.notes and len(d.notes) == len(d.mails) for d in firsts if d.source != "brevo")


def test_the_command_line_is_bounded() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert spec_from_args(parser.parse_args(["--quick"])) == QUICK
    spec = spec_from_args(parser.parse_args(["--webhooks", "1718", "--concurrency", "16"]))
    assert (spec.webhooks, spec.concurrency, spec.outage_s) == (1718, 16, 30.0)
    for wrong in (
        ProbeSpec(webhooks=0),
        ProbeSpec(webhooks=100_000),
        ProbeSpec(concurrency=500),
        ProbeSpec(outage_s=-1),
        ProbeSpec(max_seconds=10_000),
        ProbeSpec(log_level="TRACE"),
    ):
        with pytest.raises(ValueError, match="must be"):
            wrong.checked()
    assert ProbeSpec(outage_s=0).checked().outage_s == 0


def test_the_report_prints_problems_last() -> None:
    out = io.StringIO()
    report = {
        "spec": {"concurrency": 4, "seed": 1},
        "wall_s": 1.0,
        "deliveries": {
            "sent": 0,
            "first_deliveries": 0,
            "redeliveries": {},
            "by_status": {},
            "by_source": {},
            "by_phase": {},
            "with_no_event": 0,
        },
        "outage": {"seconds": 0.0, "qomon_calls_failed": 0},
        "events": {
            "distinct_events_accepted": 0,
            "accepted_deliveries_of_events": 0,
            "by_fate": {},
            "by_source": {},
            "duplicates_not_applied_again": 0,
            "redeliveries_deduplicated_by_the_queue": 0,
            "lost": 1,
            "applied_twice": 0,
            "dead_letters_in_queue": 0,
            "sync_invocations_that_raised": 0,
        },
        "qomon": {
            "notes_of_applied_events_found_once": 0,
            "notes_missing": 0,
            "notes_added_twice": 0,
            "notes_of_events_not_applied": 0,
            "contacts_created": 0,
            "contacts_created_without_their_mail": {},
            "people_created_more_than_once": 0,
            "extra_contacts": 0,
        },
        "logs": {
            "lines_scanned": 0,
            "log_records": 0,
            "metric_blobs": 0,
            "other_lines": 0,
            "capture_paths_checked": "6/6",
            "values_searched": {},
            "lines_with_personal_data": 0,
            "hits_by_kind": {},
            "first_hits": [],
        },
        "problems": ["1 accepted events lost: probe-x"],
    }
    lines: list[str] = []
    print_report(report, out=lines.append)
    out.write("\n".join(lines))
    assert out.getvalue().rstrip().endswith("1 accepted events lost: probe-x")
