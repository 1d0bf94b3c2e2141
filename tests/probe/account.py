"""The probe's accounting and report: what became of every accepted event (from the sync's
"event processed" lines, the dead-letter queue and what the stand-in holds), what the log
search found, and the figures printed at the end."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.probe.logs import CAPTURE_PATHS, Personal, Scanner, read_lines

if TYPE_CHECKING:
    from tests.probe.run import Observed, Sent

APPLIED = ("replaced", "created")
TERMINAL = (*APPLIED, "unchanged", "dead_letter")
SKIPPED_WARNING = "contact not found: skipped"
REDRIVEN = "no reason (moved by the redrive policy)"
NOT_DRAINED = "still in the queue (not drained in time)"


@dataclass
class Outcomes:
    """The sync's "event processed" lines, by event id."""

    actions: dict[str, list[str]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, int] = field(default_factory=dict)
    """The Qomon contact each created event made."""
    skipped: set[str] = field(default_factory=set)
    lines: int = 0

    def applied(self, event_id: str) -> int:
        return sum(a in APPLIED for a in self.actions.get(event_id, []))


def read_outcomes(path: Path) -> Outcomes:
    outcomes = Outcomes()
    for line in read_lines(path):
        record = line.record or {}
        if record.get("message") != "event processed":
            continue
        outcomes.lines += 1
        event_id, action = str(record.get("event_id")), str(record.get("action"))
        outcomes.actions.setdefault(event_id, []).append(action)
        if action == "dead_letter":
            outcomes.codes[event_id] = str(record.get("code"))
        if action == "created" and isinstance(record.get("contact_id"), int):
            outcomes.contacts[event_id] = record["contact_id"]
        warnings = record.get("warnings") or []
        if action == "unchanged" and any(SKIPPED_WARNING in str(w) for w in warnings):
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


def _fate(
    actions: list[str],
    in_queue: str | None,
    outcomes: Outcomes,
    event_id: str,
    waiting: frozenset[str] = frozenset(),
) -> str:
    """What became of one accepted event, in a few words; "LOST: ..." if nothing."""
    first = next((a for a in actions if a in TERMINAL), None)
    if first is None and event_id in waiting:
        return NOT_DRAINED
    if first in APPLIED:
        return f"applied ({first})"
    if first == "unchanged":
        return "skipped (unknown person)" if event_id in outcomes.skipped else "unchanged"
    if in_queue is not None:
        return f"dead-lettered: {in_queue}"
    if first == "dead_letter":
        return "LOST: dead-lettered in the log, not in the dead-letter queue"
    return "LOST: only ever seen as a duplicate" if "duplicate" in actions else "LOST: no outcome"


PAUSE_OUTAGE_S = 20.0
"""An outage this long meets several contacts' flushes: it must pause the space (issue 20)."""


def account(observed: Observed, personal: Personal, path: Path, marker: str) -> dict[str, Any]:
    """The figures of a run, and the problems found (sentences without personal data)."""
    outcomes = read_outcomes(path)
    problems: list[str] = []
    report = {
        "spec": asdict(observed.spec),
        "wall_s": round(observed.wall_s, 1),
        "phases_s": observed.phases_s,
        "deliveries": _deliveries_figures(observed, problems),
        "outage": {"seconds": observed.outage_s, "qomon_calls_failed": observed.qomon_faults},
        "pause": observed.pause,
        "events": _event_figures(observed, outcomes, problems),
        "qomon": _qomon_writes(observed, outcomes, problems),
        "logs": _log_figures(path, personal, marker, problems),
        "drained": observed.drained,
        "problems": problems,
    }
    if not observed.drained:
        problems.append("the queue did not drain in time")
    pause = observed.pause
    if observed.outage_s >= PAUSE_OUTAGE_S and pause and not pause.get("paused"):
        problems.append(f"a {observed.outage_s:g} s outage did not pause the space")
    if pause and pause.get("paused", 0) > len(pause.get("resumed", [])):
        problems.append("the space was still paused at the end")
    if observed.timed_out:
        problems.append(f"the run reached its time limit ({observed.spec.max_seconds:g} s)")
    return report


def _by(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Counts of values per key, sorted: {"generic": {"202": 24}, ...}."""
    grouped: dict[str, Counter[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, Counter())[value] += 1
    return {key: dict(sorted(values.items())) for key, values in sorted(grouped.items())}


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
    duplicates = {e: outcomes.actions.get(e, []).count("duplicate") for e in accepted}
    counts = Counter(fates.values())
    source_of = {e: s.delivery.source for s in observed.sent for e in s.event_ids}
    return {
        "accepted_deliveries_of_events": sum(accepted.values()),
        "distinct_events_accepted": len(accepted),
        "by_fate": dict(sorted(counts.items())),
        "by_source": _by((source_of.get(e, "?"), fate) for e, fate in fates.items()),
        "applied": sum(n for f, n in counts.items() if f.startswith("applied")),
        "unchanged_or_skipped": counts["unchanged"] + counts["skipped (unknown person)"],
        "dead_lettered": sum(n for f, n in counts.items() if f.startswith("dead-lettered")),
        "duplicates_not_applied_again": sum(duplicates.values()),
        "redeliveries_deduplicated_by_the_queue": sum(
            max(0, n - 1 - duplicates[e]) for e, n in accepted.items()
        ),
        "lost": len(lost),
        "not_drained": counts[NOT_DRAINED],
        "applied_twice": _applied_twice(accepted, outcomes, problems),
        "event_processed_lines": outcomes.lines,
        "dead_letters_in_queue": len(observed.letters),
        "sync_invocations_that_raised": observed.sync_crashes,
    }


def _status(sent: Sent) -> str:
    return {-1: "not sent (time limit)", 0: "no answer"}.get(sent.status, str(sent.status))


def _deliveries_figures(observed: Observed, problems: list[str]) -> dict[str, Any]:
    sent = observed.sent
    statuses = Counter(_status(s) for s in sent)
    refused = Counter(
        f"{s.delivery.label} -> {_status(s)} {s.title}".strip()
        for s in sent
        if s.status not in (202, -1)
    )
    if refused:
        problems.append(
            f"{sum(refused.values())} legitimate deliveries not accepted: "
            + "; ".join(f"{n} x {what}" for what, n in refused.most_common(5))
        )
    if statuses["not sent (time limit)"]:
        problems.append(
            f"{statuses['not sent (time limit)']} deliveries not sent: the run's time limit "
            "came first"
        )
    return {
        "sent": len(sent),
        "first_deliveries": sum(1 for s in sent if s.delivery.redelivery is None),
        "redeliveries": dict(Counter(s.delivery.redelivery for s in sent if s.delivery.redelivery)),
        "by_status": dict(sorted(statuses.items())),
        "by_source": _by((s.delivery.source, _status(s)) for s in sent),
        "by_phase": dict(Counter(s.phase for s in sent)),
        "accepted": statuses["202"],
        "with_no_event": sum(1 for s in sent if s.status == 202 and not s.event_ids),
    }


def _applied_twice(accepted: Counter[str], outcomes: Outcomes, problems: list[str]) -> int:
    twice = sorted(e for e in accepted if outcomes.applied(e) > 1)
    settled = sorted(
        e for e in accepted if sum(a in TERMINAL for a in outcomes.actions.get(e, [])) > 1
    )
    again = [e for e in settled if e not in twice]
    if twice:
        problems.append(f"{len(twice)} events applied more than once: {', '.join(twice[:5])}")
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


def _qomon_writes(observed: Observed, outcomes: Outcomes, problems: list[str]) -> dict[str, Any]:
    """What the stand-in holds: each applied event's note exactly once and no other
    event's; each created contact with the e-mail it was looked up by, each person once."""
    facts: dict[str, Facts] = {}
    for s in observed.sent:
        d = s.delivery
        if d.notes and len(s.event_ids) == len(d.notes) == len(d.mails):
            for event_id, note, mail in zip(s.event_ids, d.notes, d.mails, strict=True):
                facts[event_id] = Facts(d.source, note, mail)
    notes = _check_notes(observed, outcomes, facts, problems)
    created = _check_created(observed, outcomes, facts, problems)
    return {**notes, **created, "contacts_in_qomon": len(observed.contacts)}


def _check_notes(
    observed: Observed, outcomes: Outcomes, facts: Mapping[str, Facts], problems: list[str]
) -> dict[str, int]:
    stored = [str(n.get("data", "")) for c in observed.contacts for n in c.get("notes") or []]
    counts = {e: sum(f.note in data for data in stored) for e, f in facts.items()}
    applied = {e for e in facts if outcomes.applied(e)}
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
        if str(by_id.get(contact_id, {}).get("mail") or "").casefold() != mail.casefold():
            without_mail[facts[event_id].source] += 1
    extra = sum(len(ids) - 1 for ids in contacts_of.values())
    twice = sum(1 for ids in contacts_of.values() if len(ids) > 1)
    missing = sum(1 for cid in set(created.values()) if cid not in by_id)
    if without_mail:
        problems.append(
            f"{sum(without_mail.values())} contacts created without the e-mail they were "
            f"looked up by ({_counts(without_mail)}): the next delivery for that person "
            "cannot find them"
        )
    if twice:
        problems.append(f"{twice} people created more than once ({extra} extra contacts)")
    if missing:
        problems.append(f"{missing} contacts logged as created are not in Qomon")
    return {
        "contacts_created": len(set(created.values())),
        "contacts_created_without_their_mail": dict(sorted(without_mail.items())),
        "people_created_more_than_once": twice,
        "extra_contacts": extra,
        "contacts_created_missing_from_qomon": missing,
    }


def _log_figures(
    path: Path, personal: Personal, marker: str, problems: list[str]
) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8", errors="replace")
    captured = [what for what in CAPTURE_PATHS if f"{marker} {what}" in text]
    missed = [p for p in CAPTURE_PATHS if p not in captured]
    if missed:
        problems.append(f"the log capture missed: {', '.join(missed)}")
    scan = Scanner(personal).scan(read_lines(path))
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


def _pause_rows(pause: Mapping[str, Any]) -> list[tuple[str, object]]:
    """The pause the outage brought (issue 20): how often, the probes, the resumes."""
    if not pause:
        return []
    resumed = "; ".join(pause.get("resumed", [])) or "-"
    return [
        ("space paused (times)", pause.get("paused", 0)),
        ("probes that found Qomon still down", pause.get("probes_that_failed", 0)),
        ("resumed by the probe", resumed),
        ("told a person", "; ".join(pause.get("told", [])) or "-"),
    ]


def print_report(report: Mapping[str, Any], out: Callable[[str], None] = print) -> None:
    spec, d, outage = report["spec"], report["deliveries"], report["outage"]
    e, q, logs = report["events"], report["qomon"], report["logs"]
    out(
        f"qomon-sync probe: {d['first_deliveries']:,} webhooks "
        f"(+{sum(d['redeliveries'].values()):,} redeliveries) from {spec['concurrency']} "
        f"threads, a {outage['seconds']:g} s Qomon outage; {report['wall_s']:g} s on "
        f"127.0.0.1 (seed {spec['seed']})"
    )
    phases = ", ".join(f"{what} {s:g}" for what, s in report.get("phases_s", {}).items())
    hits = [
        (f"  {h['kind']}", f"line {h['line']} at `{h['where']}`" + (f" ({m})" if m else ""))
        for h in logs["first_hits"]
        for m in [h["message"]]
    ]
    without = q["contacts_created_without_their_mail"]
    rows: list[tuple[str, object] | str] = [
        ("seconds", phases or "-"),
        "webhooks",
        ("sent", f"{d['sent']:,} ({_counts(d['redeliveries'])} among them)"),
        ("answered", _counts(d["by_status"])),
        *((f"  {source}", _counts(statuses)) for source, statuses in d["by_source"].items()),
        ("by phase", _counts(d["by_phase"])),
        ("accepted with no event (Brevo `opened`)", d["with_no_event"]),
        "Qomon outage",
        ("seconds down", outage["seconds"]),
        ("calls answered 500/502/503", f"{outage['qomon_calls_failed']:,}"),
        *_pause_rows(report.get("pause") or {}),
        "events",
        ("accepted (distinct events)", f"{e['distinct_events_accepted']:,}"),
        ("accepted (counting redeliveries)", f"{e['accepted_deliveries_of_events']:,}"),
        *((f"  {fate}", f"{count:,}") for fate, count in e["by_fate"].items()),
        *(
            (f"  {source}", ", ".join(f"{f} {n:,}" for f, n in fates.items()))
            for source, fates in e["by_source"].items()
        ),
        ("duplicates the sync did not apply again", e["duplicates_not_applied_again"]),
        ("redeliveries the queue deduplicated", e["redeliveries_deduplicated_by_the_queue"]),
        ("LOST", e["lost"]),
        *([(NOT_DRAINED, e["not_drained"])] if e.get("not_drained") else []),
        ("APPLIED TWICE", e["applied_twice"]),
        ("dead letters in the queue", e["dead_letters_in_queue"]),
        ("sync invocations that raised", e["sync_invocations_that_raised"]),
        "what Qomon holds",
        (
            "notes of applied events found exactly once",
            f"{q['notes_of_applied_events_found_once']:,} (missing {q['notes_missing']}, "
            f"added twice {q['notes_added_twice']}, of events not applied "
            f"{q['notes_of_events_not_applied']})",
        ),
        ("contacts created", f"{q['contacts_created']:,}"),
        ("  without the e-mail they were found by", _counts(without) if without else "0"),
        (
            "people created more than once",
            f"{q['people_created_more_than_once']} ({q['extra_contacts']} extra contacts)",
        ),
        "logs",
        (
            "lines scanned",
            f"{logs['lines_scanned']:,} ({logs['log_records']:,} log records, "
            f"{logs['metric_blobs']:,} EMF metric blobs, {logs['other_lines']:,} other)",
        ),
        ("capture paths proven", logs["capture_paths_checked"]),
        ("values searched", _counts(logs["values_searched"])),
        ("lines with personal data or a secret", logs["lines_with_personal_data"]),
        ("hits by kind", _counts(logs["hits_by_kind"]) if logs["hits_by_kind"] else "none"),
        *hits,
        *([("captured lines kept in", report["log_file"])] if report.get("log_file") else []),
    ]
    for row in rows:
        out(f"\n{row}" if isinstance(row, str) else f"  {row[0]:<44} {row[1]}")
    out("")
    if report["problems"]:
        out("PROBLEMS:")
        for problem in report["problems"]:
            out(f"  {problem}")
        return
    out("no accepted event lost, none applied twice; no personal data or secret in any log line")
