"""The benchmark workload is reproducible, shaped as specified, and its reference model
agrees with the real assembly (two independent implementations of the same rules)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from qomon_sync.domain.assembly import AssemblyPolicy, Rejected, Replace, assemble_contact
from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.contact_shape import ShapePolicy
from qomon_sync.domain.forms import Form, FormCatalog
from qomon_sync_dev.bench.workload import WorkloadSpec, build_workload, state_of
from qomon_sync_dev.standin.seed import build_seed
from qomon_sync_dev.standin.store import ContactStore

POLICY = AssemblyPolicy(
    shape=ShapePolicy(passthrough=frozenset({"external_id", "membership_number"}))
)


def test_the_same_seed_gives_the_same_workload() -> None:
    contacts = build_seed()["contacts"]
    assert build_workload(contacts).events == build_workload(contacts).events
    assert build_workload(contacts).events != build_workload(contacts, WorkloadSpec(seed=8)).events


def test_the_workload_has_the_specified_shape() -> None:
    spec = WorkloadSpec(events=400)
    workload = build_workload(build_seed()["contacts"], spec)
    assert len(workload.events) == 400
    assert 0.1 < workload.noop_events / 400 < 0.3
    assert workload.unknown_events > 0
    per_contact = Counter(e["contact"].get("id") or e["contact"]["mail"] for e in workload.events)
    top = per_contact.most_common(3)
    assert sum(n for _, n in top) > 400 / 4  # skewed: a few contacts get many events
    # A person is always named the same way (one message group, so one order).
    kinds: dict[int, set[str]] = {}
    ids = {c["mail"].casefold(): c["id"] for c in build_seed()["contacts"] if c.get("mail")}
    for event in workload.events:
        ref = event["contact"]
        cid = ref.get("id") or ids.get(ref["mail"].casefold())
        if cid is not None:
            kinds.setdefault(cid, set()).add("id" if "id" in ref else "mail")
    assert all(len(k) == 1 for k in kinds.values())
    assert any(k == {"mail"} for k in kinds.values())
    assert workload.token_floor() == len(workload.touched) + workload.unknown_lookups + 5 * len(
        workload.changed
    )


def test_the_reference_model_agrees_with_the_assembly() -> None:
    seed = build_seed()
    store = ContactStore.from_seed(seed)
    forms = FormCatalog(Form.model_validate(f) for f in seed["forms"])
    workload = build_workload(seed["contacts"], WorkloadSpec(events=300))
    ids = {c["mail"].casefold(): c["id"] for c in seed["contacts"] if c.get("mail")}
    current: dict[int, dict[str, Any]] = {
        cid: store.render(store.get(cid)) for cid in workload.expected
    }
    for raw in workload.events:
        event = ChangeEvent.model_validate(raw)
        cid = event.contact.id or ids.get((event.contact.mail or "").casefold())
        if cid not in current:
            continue  # a person Qomon does not know
        outcome = assemble_contact(current[cid], forms, [event], POLICY)
        assert not isinstance(outcome, Rejected), outcome
        if isinstance(outcome, Replace):
            current[cid] = outcome.contact
    for cid, expected in workload.expected.items():
        assert state_of(current[cid]) == expected, cid


def test_the_floor_with_lookups_counts_one_search_per_group_of_emails_and_the_forms() -> None:
    # Issue 21: beside today's floor, the calls any client must make.
    workload = build_workload(build_seed()["contacts"], WorkloadSpec(events=1000, contacts=100))
    mails = workload.mails
    assert len(mails) > 30
    assert workload.lookup_floor(100) == (len(workload.touched) + 1 + 6 + 5 * len(workload.changed))
    assert workload.lookup_floor(10) == workload.lookup_floor(100) + (len(mails) + 9) // 10 - 1


def test_an_all_email_workload_names_everyone_by_email_and_creates_a_third() -> None:
    spec = WorkloadSpec(events=600, contacts=60, by_mail_share=1.0, new_share=1 / 3)
    workload = build_workload(build_seed()["contacts"], spec)
    assert all("mail" in e["contact"] and "id" not in e["contact"] for e in workload.events)
    assert len(workload.new_people) == 20
    new_mails = set(workload.new_people.values())
    for event in workload.events:
        asks = event.get("if_missing") == "create"
        assert asks == (event["contact"]["mail"] in new_mails)
    # A new person costs a search and, when changed, a create: no read.
    changed_new = len(workload.changed & workload.new_people.keys())
    assert changed_new > 10
    assert workload.lookup_floor(100) == (
        len(workload.touched) - 20 + 1 + 6 + 5 * len(workload.changed)
    )


@pytest.mark.parametrize("flag", ["--sizes", "--by-mail"])
def test_the_bench_refuses_a_workload_that_is_not_events_over_contacts_before_running(
    flag: str,
) -> None:
    """Found after minutes of benchmarking, a typo cost the whole run, and with a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "qomon_sync_dev.cli", "bench", flag, "300/33,0", "--no-docs"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "'0' is not a workload: give EVENTS/CONTACTS, e.g. 3000/300" in done.stderr
