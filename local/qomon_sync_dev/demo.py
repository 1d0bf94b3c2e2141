"""`qomon-sync demo`: the main job on embedded local defaults.

Starts a seeded Qomon stand-in on 127.0.0.1, sends the sample change events in
events/changes through the real client and the per-contact read-modify-write, and prints
what happened to each event and what it cost in Qomon calls and tokens. Exits 0 when
every event is accounted for (applied, unchanged, or dead-lettered with a reason).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from qomon_sync.adapters.qomon import Deadline, QomonClient
from qomon_sync.adapters.qomon.port import QomonContacts, fetch_forms
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_sync import EventOutcome, sync_contact
from qomon_sync.settings import Settings
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "demo-token"
# The seed, like live search results, carries fields no schema lists: a user declares them.
DEMO_SETTINGS = Settings(unknown_fields_passthrough=frozenset({"external_id", "membership_number"}))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, default=ROOT / "events" / "changes")


def run_from_args(args: argparse.Namespace) -> int:
    paths = sorted(args.events.glob("*.json"))
    events: list[ChangeEvent] = []
    outcomes: list[EventOutcome] = []
    for path in paths:
        try:
            events.append(ChangeEvent.model_validate_json(path.read_bytes()))
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            outcomes.append(
                EventOutcome(
                    path.stem,
                    "dead_letter",
                    code="invalid_event",
                    detail=f"{where}: {first['msg']}",
                )
            )

    groups: dict[str, list[ChangeEvent]] = {}
    for event in events:  # arrival order within each contact, as the FIFO queue keeps it
        groups.setdefault(event.contact.key, []).append(event)

    with (
        StandinServer(StandinConfig(token=TOKEN)) as server,
        QomonClient(server.url, TOKEN) as client,
    ):
        print(
            f"qomon-sync demo: {len(paths)} change events from {args.events}"
            f" -> Qomon stand-in at {server.url}\n"
        )
        forms = fetch_forms(client, Deadline.after(30))
        forms_stats = client.stats.as_dict()
        for group in groups.values():
            qomon = QomonContacts(client, Deadline.after(30))
            outcomes.extend(
                sync_contact(group, qomon, forms, DEMO_SETTINGS.assembly_policy()).outcomes
            )
        stats = client.stats.as_dict()

    print(f"{'event':<28} {'contact':>8}  {'outcome':<12} detail")
    for outcome in outcomes:
        detail = (
            ", ".join(outcome.changed)
            if outcome.action != "dead_letter"
            else f"{outcome.code}: {outcome.detail}"
        )
        contact = str(outcome.contact_id or "-")
        print(f"{outcome.event_id:<28} {contact:>8}  {outcome.action:<12} {detail}")

    actions = Counter(o.action for o in outcomes)
    reasons = Counter(o.code for o in outcomes if o.action == "dead_letter")
    contacts = Counter(
        (o.action, o.contact_id)
        for o in outcomes
        if o.action in ("replaced", "created", "unchanged")
    )
    by_action = Counter(action for action, _ in contacts)
    sync_calls = stats["calls"] - forms_stats["calls"]
    sync_tokens = stats["tokens"] - forms_stats["tokens"]
    print(
        f"\nevents received: {len(paths)}; contacts replaced: {by_action['replaced']}, "
        f"created: {by_action['created']}, unchanged: {by_action['unchanged']}; "
        f"events dead-lettered: {actions['dead_letter']}"
        + (
            f" ({', '.join(f'{code}: {n}' for code, n in sorted(reasons.items()))})"
            if reasons
            else ""
        )
    )
    print(
        f"Qomon: {sync_calls} calls, {sync_tokens} tokens for the events "
        f"(+{forms_stats['calls']} calls, {forms_stats['tokens']} tokens to load the forms once); "
        f"429s: {stats['rate_limited']}"
    )
    print(
        json.dumps(
            {
                name: {"calls": e["calls"], "tokens": e["tokens"]}
                for name, e in stats["endpoints"].items()
            }
        )
    )
    accounted = len(outcomes) == len(paths)
    print("every event accounted for" if accounted else "SOME EVENTS WERE NOT ACCOUNTED FOR")
    return 0 if accounted else 1
