"""The probe's accounting and report: what became of every accepted event (from the sync's
"event processed" lines, the dead-letter queue and what the stand-in holds), what the log
search found, and the figures printed at the end."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qomon_sync_dev.bench.probe_logs import (
    CAPTURE_PATHS,
    Personal,
    Scanner,
    ScanResult,
    markers_found,
    read_lines,
)

if TYPE_CHECKING:
    from qomon_sync_dev.bench.probe import Observed, Sent

APPLIED = ("replaced", "created")
TERMINAL = (*APPLIED, "unchanged", "dead_letter")
SKIPPED_WARNING = "contact not found: skipped"
REDRIVEN = "no reason (moved by the redrive policy)"


# -- accounting -----------------------------------------------------------------------------


@dataclass
class Outcomes:
    """The sync's "event processed" lines, by event id."""

    actions: dict[str, list[str]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, int] = field(default_factory=dict)
    """The Qomon contact each created event made."""
    skipped: set[str] = field(default_factory=set)
    lines: int = 0


def read_outcomes(path: Path) -> Outcomes:
    outcomes = Outcomes()
    for line in read_lines(path):
        record = line.record
        if record is None or record.get("message") != "event processed":
            continue
        outcomes.lines += 1
        event_id = str(record.get("event_id"))
        action = str(record.get("action"))
        outcomes.actions.setdefault(event_id, []).append(action)
        if action == "dead_letter":
            outcomes.codes[event_id] = str(record.get("code"))
        if action == "created" and isinstance(record.get("contact_id"), int):
            outcomes.contacts[event_id] = record["contact_id"]
        if action == "unchanged" and any(
            SKIPPED_WARNING in str(w) for w in record.get("warnings") or []
        ):
            outcomes.skipped.add(event_id)
    return outcomes


def _letters_by_event(letters: list[dict[str, str]]) -> dict[str, str]:
    by_event: dict[str, str] = {}
    for letter in letters:
        event_id = letter.get("event_id")
        if not event_id:
            with contextlib.suppress(ValueError, AttributeError):
                event_id = json.loads(letter["body"]).get("event_id")
        if event_id:
            by_event[str(event_id)] = letter.get("error_code") or REDRIVEN
    return by_event


NOT_DRAINED = "still in the queue (not drained in time)"


def _fate(
    actions: list[str],
    in_queue: str | None,
    outcomes: Outcomes,
    event_id: str,
    waiting: frozenset[str] = frozenset(),
) -> str:
    """What became of one accepted event, in a few words; "LOST: ..." if nothing."""
    terminal = [a for a in actions if a in TERMINAL]
    first = terminal[0] if terminal else None
    if first is None and event_id in waiting:
        fate = NOT_DRAINED
    elif first in APPLIED:
        fate = f"applied ({first})"
    elif first == "unchanged":
        fate = "skipped (unknown person)" if event_id in outcomes.skipped else "unchanged"
    elif in_queue is not None:
        fate = f"dead-lettered: {in_queue}"
    elif first == "dead_letter":
        fate = "LOST: dead-lettered in the log, not in the dead-letter queue"
    elif "duplicate" in actions:
        fate = "LOST: only ever seen as a duplicate"
    else:
        fate = "LOST: no outcome"
    return fate


def account(observed: Observed, personal: Personal, path: Path, marker: str) -> dict[str, Any]:
    """The figures of a run, and the problems found (sentences without personal data)."""
    outcomes = read_outcomes(path)
    problems: list[str] = []
    deliveries = _deliveries_figures(observed, problems)
    events = _event_figures(observed, outcomes, problems)
    writes = _qomon_writes(observed, outcomes, problems)
    logs = _log_figures(path, personal, marker, problems)
    if not observed.drained:
        problems.append("the queue did not drain in time")
    if observed.timed_out:
        problems.append(f"the run reached its time limit ({observed.spec.max_seconds:g} s)")
    return {
        "spec": asdict(observed.spec),
        "wall_s": round(observed.wall_s, 1),
        "phases_s": observed.phases_s,
        "deliveries": deliveries,
        "outage": {"seconds": observed.outage_s, "qomon_calls_failed": observed.qomon_faults},
        "events": events,
        "qomon": writes,
        "logs": logs,
        "drained": observed.drained,
        "problems": problems,
    }


def _event_figures(observed: Observed, outcomes: Outcomes, problems: list[str]) -> dict[str, Any]:
    letters = _letters_by_event(observed.letters)
    accepted: Counter[str] = Counter(e for s in observed.sent for e in s.event_ids)
    waiting = frozenset(observed.waiting)
    fates = {
        e: _fate(outcomes.actions.get(e, []), letters.get(e), outcomes, e, waiting)
        for e in accepted
    }
    lost = sorted(e for e, fate in fates.items() if fate.startswith("LOST"))
    if lost:
        problems.append(f"{len(lost)} accepted events lost: {', '.join(lost[:5])}")
    twice = _applied_twice(accepted, outcomes, problems)
    duplicates = sum(outcomes.actions.get(e, []).count("duplicate") for e in accepted)
    queue_deduplicated = sum(
        max(0, n - 1 - outcomes.actions.get(e, []).count("duplicate")) for e, n in accepted.items()
    )
    counts = Counter(fates.values())
    source_of = {e: s.delivery.source for s in observed.sent for e in s.event_ids}
    by_source: dict[str, Counter[str]] = {}
    for event_id, fate in fates.items():
        by_source.setdefault(source_of.get(event_id, "?"), Counter())[fate] += 1
    return {
        "accepted_deliveries_of_events": sum(accepted.values()),
        "distinct_events_accepted": len(accepted),
        "by_fate": dict(sorted(counts.items())),
        "by_source": {k: dict(sorted(v.items())) for k, v in sorted(by_source.items())},
        "applied": sum(n for f, n in counts.items() if f.startswith("applied")),
        "unchanged_or_skipped": counts["unchanged"] + counts["skipped (unknown person)"],
        "dead_lettered": sum(n for f, n in counts.items() if f.startswith("dead-lettered")),
        "duplicates_not_applied_again": duplicates,
        "redeliveries_deduplicated_by_the_queue": queue_deduplicated,
        "lost": len(lost),
        "not_drained": counts[NOT_DRAINED],
        "applied_twice": twice,
        "event_processed_lines": outcomes.lines,
        "dead_letters_in_queue": len(observed.letters),
        "sync_invocations_that_raised": observed.sync_crashes,
    }


def _status(sent: Sent) -> str:
    return {-1: "not sent (time limit)", 0: "no answer"}.get(sent.status, str(sent.status))


def _deliveries_figures(observed: Observed, problems: list[str]) -> dict[str, Any]:
    statuses = Counter(_status(s) for s in observed.sent)
    by_source: dict[str, Counter[str]] = {}
    for s in observed.sent:
        by_source.setdefault(s.delivery.source, Counter())[_status(s)] += 1
    refused = [s for s in observed.sent if s.status not in (202, -1)]
    if refused:
        shown = Counter(f"{s.delivery.label} -> {_status(s)} {s.title}".strip() for s in refused)
        problems.append(
            f"{len(refused)} legitimate deliveries not accepted: "
            + "; ".join(f"{n} x {what}" for what, n in shown.most_common(5))
        )
    not_sent = sum(1 for s in observed.sent if s.status == -1)
    if not_sent:
        problems.append(f"{not_sent} deliveries not sent: the run's time limit came first")
    return {
        "sent": len(observed.sent),
        "first_deliveries": sum(1 for s in observed.sent if s.delivery.redelivery is None),
        "redeliveries": dict(
            Counter(s.delivery.redelivery for s in observed.sent if s.delivery.redelivery)
        ),
        "by_status": dict(sorted(statuses.items())),
        "by_source": {k: dict(sorted(v.items())) for k, v in sorted(by_source.items())},
        "by_phase": dict(Counter(s.phase for s in observed.sent)),
        "accepted": statuses["202"],
        "with_no_event": sum(1 for s in observed.sent if s.status == 202 and not s.event_ids),
    }


def _applied_twice(accepted: Counter[str], outcomes: Outcomes, problems: list[str]) -> int:
    twice = sorted(
        e for e in accepted if sum(a in APPLIED for a in outcomes.actions.get(e, [])) > 1
    )
    settled = sorted(
        e for e in accepted if sum(a in TERMINAL for a in outcomes.actions.get(e, [])) > 1
    )
    if twice:
        problems.append(f"{len(twice)} events applied more than once: {', '.join(twice[:5])}")
    again = [e for e in settled if e not in twice]
    if again:
        problems.append(
            f"{len(again)} events settled more than once (not as duplicates): "
            + ", ".join(again[:5])
        )
    return len(set(twice) | set(settled))


@dataclass(frozen=True)
class Facts:
    """What the probe knows of one event it sent."""

    source: str
    note: str
    mail: str | None


def _facts(sent: Sequence[Sent]) -> dict[str, Facts]:
    facts: dict[str, Facts] = {}
    for s in sent:
        d = s.delivery
        if d.notes and len(s.event_ids) == len(d.notes) == len(d.mails):
            for event_id, note, mail in zip(s.event_ids, d.notes, d.mails, strict=True):
                facts[event_id] = Facts(d.source, note, mail)
    return facts


def _qomon_writes(observed: Observed, outcomes: Outcomes, problems: list[str]) -> dict[str, Any]:
    """What the stand-in holds: each applied event's note exactly once and no other
    event's; each created contact with the e-mail it was looked up by, each person once."""
    facts = _facts(observed.sent)
    notes = _check_notes(observed, outcomes, facts, problems)
    created = _check_created(observed, outcomes, facts, problems)
    if created["contacts_created_missing_from_qomon"]:
        problems.append(
            f"{created['contacts_created_missing_from_qomon']} contacts logged as created are "
            "not in Qomon"
        )
    return {**notes, **created, "contacts_in_qomon": len(observed.contacts)}


def _check_notes(
    observed: Observed, outcomes: Outcomes, facts: Mapping[str, Facts], problems: list[str]
) -> dict[str, int]:
    stored = [str(n.get("data", "")) for c in observed.contacts for n in c.get("notes") or []]
    counts = {e: sum(f.note in data for data in stored) for e, f in facts.items()}
    applied = {e for e in facts if any(a in APPLIED for a in outcomes.actions.get(e, []))}
    missing = sorted(e for e in applied if counts[e] == 0)
    doubled = sorted(e for e in facts if counts[e] > 1)
    stray = sorted(e for e in facts if e not in applied and counts[e] > 0)
    for found, what in (
        (missing, "applied events' notes not in Qomon"),
        (doubled, "notes added more than once"),
        (stray, "notes in Qomon of events not logged as applied"),
    ):
        if found:
            problems.append(f"{len(found)} {what}: {', '.join(found[:5])}")
    return {
        "notes_checked": len(facts),
        "notes_of_applied_events_found_once": sum(1 for e in applied if counts[e] == 1),
        "notes_missing": len(missing),
        "notes_added_twice": len(doubled),
        "notes_of_events_not_applied": len(stray),
    }


def _check_created(
    observed: Observed, outcomes: Outcomes, facts: Mapping[str, Facts], problems: list[str]
) -> dict[str, Any]:
    by_id = {c.get("id"): c for c in observed.contacts}
    created = {e: cid for e, cid in outcomes.contacts.items() if e in facts}
    without_mail: Counter[str] = Counter()
    contacts_of: dict[str, set[int]] = {}
    for event_id, contact_id in created.items():
        mail = facts[event_id].mail
        if mail is None:
            continue
        contacts_of.setdefault(mail.casefold(), set()).add(contact_id)
        stored = str(by_id.get(contact_id, {}).get("mail") or "")
        if stored.casefold() != mail.casefold():
            without_mail[facts[event_id].source] += 1
    twice = {m: ids for m, ids in contacts_of.items() if len(ids) > 1}
    if without_mail:
        problems.append(
            f"{sum(without_mail.values())} contacts created without the e-mail they were "
            f"looked up by ({_counts(without_mail)}): the next delivery for that person "
            "cannot find them"
        )
    if twice:
        extra = sum(len(ids) - 1 for ids in twice.values())
        problems.append(f"{len(twice)} people created more than once ({extra} extra contacts)")
    return {
        "contacts_created": len(set(created.values())),
        "contacts_created_without_their_mail": dict(sorted(without_mail.items())),
        "people_created_more_than_once": len(twice),
        "extra_contacts": sum(len(ids) - 1 for ids in twice.values()),
        "contacts_created_missing_from_qomon": sum(
            1 for cid in set(created.values()) if cid not in by_id
        ),
    }


def _log_figures(
    path: Path, personal: Personal, marker: str, problems: list[str]
) -> dict[str, Any]:
    captured = markers_found(path, marker)
    missed = [p for p in CAPTURE_PATHS if p not in captured]
    if missed:
        problems.append(f"the log capture missed: {', '.join(missed)}")
    scan: ScanResult = Scanner(personal).scan(read_lines(path))
    if scan.lines_with_hits:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(scan.hits_by_kind.items()))
        problems.append(f"personal data or secrets in {scan.lines_with_hits} log lines ({kinds})")
    return {
        "lines_scanned": scan.lines,
        "log_records": scan.records,
        "metric_blobs": scan.metric_blobs,
        "other_lines": scan.other_lines,
        "capture_paths_checked": f"{len(captured)}/{len(CAPTURE_PATHS)}",
        "values_searched": personal.count(),
        "lines_with_personal_data": scan.lines_with_hits,
        "hits_by_kind": dict(sorted(scan.hits_by_kind.items())),
        "first_hits": [asdict(hit) for hit in scan.first_hits],
    }


# -- the report -----------------------------------------------------------------------------


def _counts(counts: Mapping[str, int], unit: str = "") -> str:
    return ", ".join(f"{n:,} x {k}{unit}" for k, n in counts.items()) or "none"


def _row(label: str, value: object) -> str:
    return f"  {label:<44} {value}"


def print_report(report: Mapping[str, Any], out: Callable[[str], None] = print) -> None:
    spec, deliveries = report["spec"], report["deliveries"]
    redeliveries = deliveries["redeliveries"]
    out(
        f"qomon-sync probe: {deliveries['first_deliveries']:,} webhooks "
        f"(+{sum(redeliveries.values()):,} redeliveries) from {spec['concurrency']} threads, "
        f"a {report['outage']['seconds']:g} s Qomon outage; "
        f"{report['wall_s']:g} s on 127.0.0.1 (seed {spec['seed']})"
    )
    phases = ", ".join(f"{what} {sec:g}" for what, sec in report.get("phases_s", {}).items())
    out(_row("seconds", phases or "-"))
    out("\nwebhooks")
    out(_row("sent", f"{deliveries['sent']:,} ({_counts(redeliveries)} among them)"))
    out(_row("answered", _counts(deliveries["by_status"])))
    for source, statuses in deliveries["by_source"].items():
        out(_row(f"  {source}", _counts(statuses)))
    out(_row("by phase", _counts(deliveries["by_phase"])))
    out(_row("accepted with no event (Brevo `opened`)", deliveries["with_no_event"]))
    out("\nQomon outage")
    out(_row("seconds down", report["outage"]["seconds"]))
    out(_row("calls answered 500/502/503", f"{report['outage']['qomon_calls_failed']:,}"))
    _print_events(report, out)
    _print_logs(report, out)


def _print_events(report: Mapping[str, Any], out: Callable[[str], None]) -> None:
    events, qomon = report["events"], report["qomon"]
    out("\nevents")
    out(_row("accepted (distinct events)", f"{events['distinct_events_accepted']:,}"))
    out(_row("accepted (counting redeliveries)", f"{events['accepted_deliveries_of_events']:,}"))
    for fate, count in events["by_fate"].items():
        out(_row(f"  {fate}", f"{count:,}"))
    for source, fates in events["by_source"].items():
        out(_row(f"  {source}", ", ".join(f"{f} {n:,}" for f, n in fates.items())))
    out(_row("duplicates the sync did not apply again", events["duplicates_not_applied_again"]))
    out(
        _row(
            "redeliveries the queue deduplicated", events["redeliveries_deduplicated_by_the_queue"]
        )
    )
    out(_row("LOST", events["lost"]))
    if events.get("not_drained"):
        out(_row("still in the queue (not drained in time)", events["not_drained"]))
    out(_row("APPLIED TWICE", events["applied_twice"]))
    out(_row("dead letters in the queue", events["dead_letters_in_queue"]))
    out(_row("sync invocations that raised", events["sync_invocations_that_raised"]))
    out("\nwhat Qomon holds")
    out(
        _row(
            "notes of applied events found exactly once",
            f"{qomon['notes_of_applied_events_found_once']:,} (missing {qomon['notes_missing']}, "
            f"added twice {qomon['notes_added_twice']}, of events not applied "
            f"{qomon['notes_of_events_not_applied']})",
        )
    )
    out(_row("contacts created", f"{qomon['contacts_created']:,}"))
    without = qomon["contacts_created_without_their_mail"]
    out(_row("  without the e-mail they were found by", _counts(without) if without else "0"))
    out(
        _row(
            "people created more than once",
            f"{qomon['people_created_more_than_once']} ({qomon['extra_contacts']} extra contacts)",
        )
    )


def _print_logs(report: Mapping[str, Any], out: Callable[[str], None]) -> None:
    logs = report["logs"]
    out("\nlogs")
    out(
        _row(
            "lines scanned",
            f"{logs['lines_scanned']:,} ({logs['log_records']:,} log records, "
            f"{logs['metric_blobs']:,} EMF metric blobs, {logs['other_lines']:,} other)",
        )
    )
    out(_row("capture paths proven", logs["capture_paths_checked"]))
    out(_row("values searched", _counts(logs["values_searched"])))
    out(_row("lines with personal data or a secret", logs["lines_with_personal_data"]))
    out(_row("hits by kind", _counts(logs["hits_by_kind"]) if logs["hits_by_kind"] else "none"))
    for hit in logs["first_hits"]:
        where = f"at `{hit['where']}`" + (f" ({hit['message']})" if hit["message"] else "")
        out(_row(f"  {hit['kind']}", f"line {hit['line']} {where}"))
    if report.get("log_file"):
        out(_row("captured lines kept in", report["log_file"]))
    out("")
    if report["problems"]:
        out("PROBLEMS:")
        for problem in report["problems"]:
            out(f"  {problem}")
        return
    out("no accepted event lost, none applied twice; no personal data or secret in any log line")
