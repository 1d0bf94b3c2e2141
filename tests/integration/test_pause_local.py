"""Issue 20 in local mode: an outage, and a refused key, longer than the redrive policy's
`maxReceiveCount` x the visibility timeout (here 3 x 4 s against 20 s): the space pauses,
the probe disables the event source mapping and probes, Qomon sees only the probes, no
message reaches its redrive limit, and once Qomon answers (or a valid key is put in the
secret, with no command run) the backlog drains: nothing lost, nothing dead-lettered,
nothing applied twice, every contact as sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from qomon_sync_dev.local_lambda import queue_is_empty
from qomon_sync_dev.local_mode import LocalMode, LocalOptions
from tests.integration.sync_harness import clients, dead_letters, send, staged, standin
from tests.soak_pause import Receives

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0
OPTIONS = LocalOptions(
    visibility_timeout_s=4,
    max_receive_count=3,
    probe_every_s=1.0,
    pause_probe_first_s=2.0,
    pause_probe_max_s=5.0,
    pause_window_s=30.0,
    pause_hold_s=0.3,
)
CONTACTS = (700223, 700226, 700229, 700232, 700235, 700238)
EVENTS_EACH = 3


@pytest.fixture
def local() -> Iterator[LocalMode]:
    with LocalMode(OPTIONS) as running:
        yield running


def calls(local: LocalMode) -> int:
    return sum(int(n) for n in standin(local, "stats")["calls"].values())


def pause_of(local: LocalMode) -> Any:
    from qomon_sync.handlers.sync import current_runtime

    pauses = current_runtime().pauses
    assert pauses is not None
    return pauses.get()


def wait_for(what: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s")


def send_backlog(local: LocalMode) -> dict[int, str]:
    last = {}
    for n in range(EVENTS_EACH):
        for contact_id in CONTACTS:
            last[contact_id] = f"Prénom {contact_id} {n}"
            send(local, contact_id, set={"firstname": last[contact_id]})
    return last


def drained(local: LocalMode) -> bool:
    assert local.endpoints is not None
    assert local.poller is not None
    sqs, _ = clients(local)
    return (
        queue_is_empty(sqs, local.endpoints.changes_queue_url)
        and local.poller.idle.is_set()
        and pause_of(local) is None
        and not staged(local)
    )


def through_the_pause(local: LocalMode, back: Any) -> dict[str, Any]:
    """Send the backlog into a failing Qomon, wait OUTAGE_S, bring it `back`, drain; the
    figures (the issue's acceptance), asserted and returned."""
    assert local.poller is not None
    assert local.aws is not None
    receives = Receives()
    local.poller.before_invoke = receives
    started = time.monotonic()
    last = send_backlog(local)
    pause = wait_for(lambda: pause_of(local), 15)
    at_trip = calls(local)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
    probes = pause_of(local).probes
    during = calls(local) - at_trip
    assert pause_of(local).probes == probes  # no probe between the two reads
    returned = time.monotonic()
    back()
    wait_for(lambda: drained(local), 60)
    figures = {
        "cause": pause.cause,
        "outage_s": round(returned - started, 1),
        "drain_s": round(time.monotonic() - returned, 1),
        "probes_during": probes,
        "calls_after_trip": during,
        "most_receives": receives.most,
        "dead_lettered": len(dead_letters(local)),
    }
    print(json.dumps(figures))
    assert figures["dead_lettered"] == 0
    # Only probes reach Qomon once the space is paused, and no message nears its limit.
    assert during == probes >= 2
    assert receives.most < OPTIONS.max_receive_count
    for contact_id, firstname in last.items():
        assert standin(local, f"contacts/{contact_id}")["contact"]["firstname"] == firstname
    assert local.aws.mapping_switches[:1] == [False]
    assert local.aws.mapping_switches[-1] is True
    return figures


def test_an_outage_longer_than_the_redrive_limit_pauses_and_resumes_by_itself(
    local: LocalMode,
) -> None:
    standin(local, "config", {"outage": True})
    figures = through_the_pause(local, lambda: standin(local, "config", {"outage": False}))
    assert figures["cause"] == "outage"
    stats = standin(local, "stats")
    # One PATCH a contact: its whole backlog at once, nothing applied twice.
    assert stats["statuses"].get("200", 0) >= len(CONTACTS)
    assert stats["calls"]["PATCH /contacts/{id}"] == len(CONTACTS)
    subjects = [subject for subject, _ in local.told()]
    assert subjects == ["qomon-sync paused: Qomon answers 503", "qomon-sync resumed"]
    for _, message in local.told():
        assert "Prénom" not in message


def test_a_refused_key_resumes_once_a_valid_key_is_in_the_secret_with_no_command(
    local: LocalMode,
) -> None:
    assert local.endpoints is not None
    standin(local, "config", {"new_token": "the-new-key"})
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=local.endpoints.aws_endpoint_url,
        region_name=local.endpoints.region,
    )

    def new_key() -> None:
        secrets.put_secret_value(
            SecretId=local.endpoints.qomon_api_key_secret,  # type: ignore[union-attr]
            SecretString=json.dumps({"api_key": "the-new-key"}),
        )

    figures = through_the_pause(local, new_key)
    assert figures["cause"] == "key_refused"
    subject, message = local.told()[0]
    assert subject == "qomon-sync paused: Qomon refuses the API key"
    assert local.endpoints.qomon_api_key_secret in message
    assert "the-new-key" not in json.dumps(local.told())
