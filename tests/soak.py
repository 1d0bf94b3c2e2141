"""The soak (`make soak`, `python -m tests.soak [--quick]`): the benchmark workload under
injected faults, then a conservation check. A test in all but name (CI runs `--quick`; a
loss fails it), so it lives with the tests.

Faults: a share of 5xx answers, dropped connections and hung answers (longer than the
client waits), 429 storms, duplicate deliveries, malformed messages, and the consumer
killed mid-batch: after staging a contact's events before the messages are deleted (and
before the flush marker behind them is queued), between the GET and the PATCH, and after
the PATCH before the messages are deleted (a Lambda timing out or crashing there).

At the end, every event must be reflected in Qomon's final state (per the workload's
reference model) or in the dead-letter queue with a specific reason; nothing the workload
did not name may have changed; no note may have been added twice; no event may be left in
the staging table. It prints a table of the faults injected and the outcomes, and exits
non-zero on any loss.

Then two pause phases (tests/soak_pause.py, issue 20): a Qomon outage and a refused key,
each longer than the redrive policy's receives x the visibility timeout; the space must
pause, Qomon see only probes, and the queue drain by itself once Qomon is back, nothing
lost, dead-lettered or applied twice. `--no-pause` skips them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import boto3
import httpx

from qomon_sync.domain.change_event import ChangeEvent
from qomon_sync.domain.dates import to_qomon_date
from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync_dev.bench.workload import FORMS, Workload, WorkloadSpec, build_workload, state_of
from qomon_sync_dev.local_lambda import take_dead_letters, wait_until_drained
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.seed import build_seed

SOAK_MAX_RECEIVE_COUNT = 10
"""The redrive policy's limit in the soak, above the stack's 5. The soak's faults are dense
(a delivery fails about 4 times in 10: a kill at 15 % at each of three points in
`--quick`, then 5xx, drops and hangs), so at 5 some contact now and then fails 5
deliveries in a row, and the run measures the odds of that rather than conservation:
the contact's events are dead-lettered (`retries_exhausted` with the reason, as
designed) and counted as loss. The give-up on a last delivery is tested on its own
(tests/integration/test_backlog_flush.py, test_crashes.py)."""


class KilledMidBatch(BaseException):
    """The consumer dies here: nothing after this point of the invocation happens."""


@dataclass(frozen=True)
class SoakSpec:
    events: int = 200
    contacts: int = 30
    seed: int = 11
    fail_rate: float = 0.05
    drop_rate: float = 0.02
    timeout_rate: float = 0.01
    storms: int = 2
    storm_s: float = 2.0
    duplicate_share: float = 0.05
    malformed: int = 5
    kill_after_staging: float = 0.08
    kill_before_patch: float = 0.08
    kill_after_patch: float = 0.08
    scale: float = 5.0
    timeout_s: float = 480.0
    """A contact's events now fold into one write per backlog, so there are few writes to
    kill at: the kill rates are per staging and per write."""


QUICK = SoakSpec(
    events=60,
    contacts=15,
    storms=1,
    malformed=2,
    kill_after_staging=0.15,
    kill_before_patch=0.15,
    kill_after_patch=0.15,
    timeout_s=240.0,
)


class Killer(httpx.BaseTransport):
    """Kills the consumer after staging (the runtime's `on_staged` hook), and before or
    after a write (as the Qomon client's transport: a PATCH or a create about to be sent,
    or answered with success). One draw per write, however many attempts the client makes
    of it: an attempt that repeats the last one, unanswered or answered with a failure,
    is the same write retried.

    The crashes are transient, as a Lambda's are (an instance dies, the next one does
    not): an invocation holding a message on its last delivery (told by the poller before
    it invokes) is never killed. At random rates, some contact would otherwise now and then
    be killed on every delivery, which is a poison event, not a transient crash: the
    redrive policy moves it without a reason, by SQS's design. That case has its own test
    (tests/integration/test_crashes.py)."""

    def __init__(self, spec: SoakSpec, max_receive_count: int) -> None:
        self.rng = random.Random(spec.seed)
        self.spec = spec
        self.max_receive_count = max_receive_count
        self.counts: Counter[str] = Counter()
        self._invocation = threading.local()
        self._http = httpx.HTTPTransport()

    def invoking(self, messages: list[dict[str, Any]]) -> None:
        """The poller's hook: the batch it is about to hand to the handler."""
        most = max((int(m["Attributes"]["ApproximateReceiveCount"]) for m in messages), default=1)
        self._invocation.last = most >= self.max_receive_count
        self._invocation.write = None

    def _kill(self, chance: float, draw: float, what: str) -> bool:
        if draw >= chance:
            return False
        if getattr(self._invocation, "last", False):
            self.counts["kills withheld on a last delivery"] += 1
            return False
        self.counts[what] += 1
        return True

    def staged(self, group: str) -> None:
        what = "killed after staging, before delete"
        if self._kill(self.spec.kill_after_staging, self.rng.random(), what):
            raise KilledMidBatch

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in ("PATCH", "POST") or "/search" in request.url.path:
            return self._http.handle_request(request)
        write = (request.method, str(request.url), request.read())
        retried = getattr(self._invocation, "write", None)
        if retried is not None and retried[0] == write:
            draw = retried[1]
        else:
            draw = self.rng.random()
            if self._kill(self.spec.kill_before_patch, draw, "killed between GET and PATCH"):
                raise KilledMidBatch
        self._invocation.write = (write, draw)  # until it succeeds: a retry is the same write
        response = self._http.handle_request(request)
        if not response.is_success:
            return response
        self._invocation.write = None
        after = draw - self.spec.kill_before_patch
        if after >= 0 and self._kill(
            self.spec.kill_after_patch, after, "killed after PATCH, before delete"
        ):
            response.close()
            raise KilledMidBatch
        return response

    def close(self) -> None:
        self._http.close()


def run_soak(spec: SoakSpec) -> dict[str, Any]:
    workload = build_workload(
        build_seed()["contacts"],
        WorkloadSpec(events=spec.events, contacts=spec.contacts, seed=spec.seed),
    )
    rng = random.Random(spec.seed + 1)
    standin = StandinConfig(
        token="soak-token",
        burst=100,
        refill=10.0 * spec.scale,
        fail_rate=spec.fail_rate,
        drop_rate=spec.drop_rate,
        timeout_rate=spec.timeout_rate,
        hang_s=2.0,
        random_seed=spec.seed,
    )
    # AWS keeps visibility (360 s) above the function timeout (60 s), so a killed
    # invocation's in-progress claims have expired when its messages come back; the same
    # ratio here, shortened.
    options = LocalOptions(
        standin=standin,
        visibility_timeout_s=12,
        function_timeout_s=10.0,
        max_receive_count=SOAK_MAX_RECEIVE_COUNT,
    )
    env = {
        "SAFETY_MARGIN_S": "2",
        "QOMON_READ_TIMEOUT_S": "1.0",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("SOAK_LOG_LEVEL", "ERROR"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    injected: Counter[str] = Counter()
    try:
        killer = Killer(spec, options.max_receive_count)
        with LocalMode(options) as local:
            assert local.endpoints is not None
            assert local.poller is not None
            from qomon_sync.handlers.sync import current_runtime

            runtime = current_runtime()
            runtime.transport, runtime.on_staged = killer, killer.staged
            local.poller.before_invoke = killer.invoking
            endpoints = local.endpoints
            sqs = boto3.client(
                "sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
            )
            local.poller.pause()
            before = _untouched_view(
                httpx.get(f"{endpoints.qomon_url}/_standin/contacts", timeout=10).json()
            )
            assert local.pseudonyms is not None
            messages = _backlog(workload, spec, rng, injected, local.pseudonyms)
            for body, group, dedup in messages:
                sqs.send_message(
                    QueueUrl=endpoints.changes_queue_url,
                    MessageBody=body,
                    MessageGroupId=group,
                    MessageDeduplicationId=dedup,
                )
            storms = threading.Thread(
                target=_storms, args=(endpoints.qomon_url, spec, injected), daemon=True
            )
            started = time.monotonic()
            with contextlib.redirect_stdout(io.StringIO()):
                local.poller.resume()
                storms.start()
                drained = wait_until_drained(
                    sqs, endpoints.changes_queue_url, local, time.monotonic() + spec.timeout_s
                )
            wall = time.monotonic() - started
            letters = take_dead_letters(sqs, endpoints.dead_letter_queue_url)
            stats = httpx.get(f"{endpoints.qomon_url}/_standin/stats", timeout=10).json()
            stored = {
                cid: httpx.get(f"{endpoints.qomon_url}/_standin/contacts/{cid}", timeout=10).json()[
                    "contact"
                ]
                for cid in workload.expected
            }
            after = _untouched_view(
                httpx.get(f"{endpoints.qomon_url}/_standin/contacts", timeout=10).json()
            )
            injected.update(killer.counts)
            crashes = len(local.poller.errors)
            staged_left = _staged_left(endpoints)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _count_faults(stats, injected)
    report = _conservation(
        workload,
        letters,
        stored,
        injected,
        drained=drained,
        wall_s=wall,
        crashes=crashes,
        spec=spec,
    )
    return _nothing_else(report, staged_left, before, after)


def _count_faults(stats: dict[str, Any], injected: Counter[str]) -> None:
    faults = stats.get("faults", {})
    injected["5xx answers"] += int(faults.get("server_errors", 0))
    injected["dropped connections"] += int(faults.get("dropped", 0))
    injected["hung answers (timeouts)"] += int(faults.get("timeouts", 0))
    injected["429 answers"] += int(stats.get("rate_limited", 0))


def _nothing_else(
    report: dict[str, Any], staged_left: int, before: dict[int, Any], after: dict[int, Any]
) -> dict[str, Any]:
    """Nothing stranded in the staging table, nothing no event named moved."""
    if staged_left:
        report["problems"].append(f"{staged_left} events left in the staging table")
    moved = sorted(str(cid) for cid in before if before[cid] != after.get(cid))
    if moved:
        report["problems"].append(f"fields no event named changed on contacts {', '.join(moved)}")
    report["lost"] = len(report["problems"])
    report["outcomes"]["contacts_checked_for_unnamed_changes"] = len(before)
    return report


TRACKED_FORMS = {form_id for form_id, *_ in FORMS}
MAY_CHANGE = frozenset(
    {"firstname", "phone", "tags", "notes", "UpdatedAt", "formdatas", "custom_fields"}
)


def _staged_left(endpoints: Any) -> int:
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=endpoints.aws_endpoint_url, region_name=endpoints.region
    )
    items = dynamodb.scan(TableName=endpoints.staging_table)["Items"]
    return sum(1 for item in items if item["sk"]["S"].startswith("event#"))


def _untouched_view(listing: dict[str, Any]) -> dict[int, Any]:
    """Every stored contact less what the workload may change (first name, phone, tags,
    the answers of the forms it uses, notes) and what Qomon changes itself (UpdatedAt,
    answer ids and dates): what must come out of the soak exactly as it went in."""
    view = {}
    for contact in listing["contacts"]:
        rest = {k: v for k, v in contact.items() if k not in MAY_CHANGE}
        if rest.get("birthdate"):  # an instant: written in milliseconds whatever it was read in
            rest["birthdate"] = to_qomon_date(rest["birthdate"])
        answers = sorted(
            (a["form_id"], a["form_ref_id"], str(a["data"]))
            for a in [*contact.get("formdatas", []), *contact.get("custom_fields", [])]
            if a.get("deleted_at") is None and a["form_id"] not in TRACKED_FORMS
        )
        view[contact["id"]] = (json.dumps(rest, sort_keys=True), answers)
    return view


def _backlog(
    workload: Workload,
    spec: SoakSpec,
    rng: random.Random,
    injected: Counter[str],
    pseudonyms: Pseudonyms,
) -> list[tuple[str, str, str]]:
    """The workload as queue messages (body, group, deduplication id), with duplicate
    deliveries and malformed messages mixed in."""
    messages = []
    for event in workload.events:
        group = ChangeEvent.model_validate(event).contact.group(pseudonyms)
        messages.append((json.dumps(event), group, event["event_id"]))
        if rng.random() < spec.duplicate_share:  # a sender's later redelivery
            messages.append((json.dumps(event), group, event["event_id"] + "-again"))
            injected["duplicate deliveries"] += 1
    for n in range(spec.malformed):
        junk = '{"event_id": "broken-' + str(n)
        messages.insert(rng.randrange(len(messages)), (junk, "junk", f"junk-{n}"))
        injected["malformed messages"] += 1
    return messages


def _storms(qomon_url: str, spec: SoakSpec, injected: Counter[str]) -> None:
    for _ in range(spec.storms):
        time.sleep(1.5)
        httpx.post(
            f"{qomon_url}/_standin/faults", json={"rate_limit_storm_s": spec.storm_s}, timeout=10
        )
        injected["429 storms"] += 1


def _conservation(
    workload: Workload,
    letters: list[dict[str, str]],
    stored: dict[int, dict[str, Any]],
    injected: Counter[str],
    *,
    drained: bool,
    wall_s: float,
    crashes: int,
    spec: SoakSpec,
) -> dict[str, Any]:
    reasons = Counter(
        letter.get("error_code", "NO REASON (moved by the redrive policy)") for letter in letters
    )
    lettered_ids = {
        json.loads(letter["body"]).get("event_id")
        for letter in letters
        if letter["body"].startswith('{"event_id": "bench')
    }
    unknown_ids = {
        e["event_id"] for e in workload.events if "personne.inconnue" in json.dumps(e["contact"])
    }
    problems: list[str] = []
    for cid, expected in workload.expected.items():
        actual = state_of(stored[cid])
        problems += [
            f"contact {cid}: {key} differs from the model"
            for key in sorted(expected)
            if actual.get(key) != expected[key]
        ]
        notes = [n["data"] for n in stored[cid].get("notes", [])]
        problems += [
            f"contact {cid}: note added {notes.count(n)} times"
            for n in workload.notes.get(cid, [])
            if notes.count(n) != 1
        ]
    if not drained:
        problems.append("the queue did not drain in time")
    if lettered_ids - unknown_ids:
        problems.append(f"{len(lettered_ids - unknown_ids)} known-contact events dead-lettered")
    if unknown_ids - lettered_ids:
        problems.append(
            f"{len(unknown_ids - lettered_ids)} unknown-contact events not dead-lettered"
        )
    if any("NO REASON" in r for r in reasons):
        problems.append("events dead-lettered without a reason")
    if reasons.get("invalid_event", 0) != spec.malformed:
        found = reasons.get("invalid_event", 0)
        problems.append(f"{found} of {spec.malformed} malformed messages dead-lettered")
    return {
        "spec": spec.__dict__,
        "events": len(workload.events),
        "wall_s": round(wall_s, 1),
        "faults_injected": dict(sorted(injected.items())),
        "outcomes": {
            "dead_letters_by_reason": dict(sorted(reasons.items())),
            "consumer_crashes_seen": crashes,
            "contacts_checked": len(workload.expected),
        },
        "problems": problems,
        "lost": len(problems),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the small configuration CI runs")
    parser.add_argument("--events", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-pause", action="store_true", help="skip the two pause phases")


def run_from_args(args: argparse.Namespace) -> int:
    spec = QUICK if args.quick else SoakSpec()
    if args.events or args.seed:
        spec = SoakSpec(
            **{
                **spec.__dict__,
                **{k: v for k, v in (("events", args.events), ("seed", args.seed)) if v},
            }
        )
    report = run_soak(spec)
    held = _report(report, spec)
    if not args.no_pause:
        from tests.soak_pause import QUICK_PAUSE, PauseSpec, print_phases, run_pause_phase

        pause = QUICK_PAUSE if args.quick else PauseSpec()
        phases = [run_pause_phase(kind, pause) for kind in ("outage", "key_refused")]
        held = print_phases(phases) and held
    return 0 if held else 1


def _report(report: dict[str, Any], spec: SoakSpec) -> bool:
    print(f"soak: {report['events']} events in {report['wall_s']} s (seed {spec.seed})\n")
    print(f"{'fault injected':<40} {'count':>6}")
    for name, count in report["faults_injected"].items():
        print(f"{name:<40} {count:>6}")
    print(f"\n{'outcome':<40} {'count':>6}")
    for reason, count in report["outcomes"]["dead_letters_by_reason"].items():
        print(f"{'dead-lettered: ' + reason:<40} {count:>6}")
    print(f"{'consumer crashes seen':<40} {report['outcomes']['consumer_crashes_seen']:>6}")
    outcomes = report["outcomes"]
    print(f"{'contacts checked against the model':<40} {outcomes['contacts_checked']:>6}")
    unnamed = outcomes["contacts_checked_for_unnamed_changes"]
    print(f"{'contacts checked for unnamed changes':<40} {unnamed:>6}")
    if report["problems"]:
        print("\nLOSS OR DAMAGE:")
        for problem in report["problems"]:
            print(f"  {problem}")
        return False
    print("\nconservation holds: every event is in Qomon's final state or dead-lettered, with why")
    return True


if __name__ == "__main__":
    sys.exit(main())
