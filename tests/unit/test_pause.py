"""The space-wide pause (issue 20): which failures are systemic, when they trip the pause,
and what the probe does (disable the mapping, one call, back off, resume, tell a person)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from qomon_sync.adapters.qomon import (
    Deadline,
    QomonAuthError,
    QomonBudgetExhausted,
    QomonNotFound,
    QomonRateLimited,
    QomonServerError,
    QomonTransportError,
    QomonValidationError,
)
from qomon_sync.adapters.space_pause import SpacePauses, place_of
from qomon_sync.application.pause import PauseProbe, systemic, trip_or_suspect
from qomon_sync.domain.pause import (
    KEY_REFUSED,
    OUTAGE,
    Systemic,
    contact_id_of,
    duration,
    next_interval,
    second_contact,
)
from qomon_sync.settings import Settings
from tests.unit.fakes import FakeClock, staging_table_in_moto

TABLE = "staging"
SETTINGS = Settings(
    pause_window_s=60, pause_probe_first_s=60, pause_probe_max_s=300, qomon_api_key_secret="k"
)


class Recorder:
    def __init__(self) -> None:
        self.counts: list[tuple[str, float]] = []
        self.lines: list[str] = []

    def event(self, event_id: str, action: str, **details: Any) -> None:
        self.lines.append(action)

    def info(self, message: str, **details: Any) -> None:
        self.lines.append(f"{message} {details}")

    def warning(self, message: str, **details: Any) -> None:
        self.lines.append(f"{message} {details}")

    def count(self, name: str, value: float = 1) -> None:
        self.counts.append((name, value))

    def dead_lettered(self, code: str) -> None:
        pass

    def call(self, endpoint: str, status: int | None, latency_s: float) -> None:
        pass


class Mapping:
    def __init__(self) -> None:
        self.on = True
        self.switches: list[bool] = []

    def enabled(self) -> bool:
        return self.on

    def switch(self, *, on: bool) -> bool:
        self.switches.append(on)
        self.on = on
        return True


class Topic:
    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def tell(self, subject: str, message: str) -> None:
        self.told.append((subject, message))


@pytest.fixture
def pauses() -> Iterator[tuple[SpacePauses, FakeClock]]:
    clock = FakeClock(1_800_000_000.0)
    with staging_table_in_moto(TABLE) as dynamodb:
        yield SpacePauses(dynamodb, TABLE, place_of("https://q.example"), clock=clock), clock


# -- what is systemic --------------------------------------------------------------------------


def test_5xx_timeouts_refused_connections_and_a_refused_key_are_systemic() -> None:
    assert systemic(QomonServerError("down", status=503)) == Systemic(OUTAGE, "Qomon answers 503")
    transport = QomonTransportError("ConnectError", request_sent=False)
    found = systemic(transport)
    assert found is not None
    assert found.cause == OUTAGE
    spent = QomonBudgetExhausted("no time", last_error=QomonServerError("x", status=502))
    assert systemic(spent) == Systemic(OUTAGE, "Qomon answers 502")
    refused = systemic(QomonAuthError("no", status=401))
    assert refused == Systemic(KEY_REFUSED, "Qomon refuses the API key (HTTP 401)")


def test_what_is_about_one_contact_is_not_systemic() -> None:
    assert systemic(QomonValidationError("bad", status=422)) is None
    assert systemic(QomonNotFound("gone", status=404)) is None
    assert systemic(QomonRateLimited("slow", retry_after=1)) is None
    assert systemic(QomonBudgetExhausted("no time", last_error=None)) is None


# -- when it trips -------------------------------------------------------------------------------


def test_one_contact_failing_alone_never_makes_two() -> None:
    assert not second_contact(None, None, "id:1", 100.0, 60)
    assert not second_contact("id:1", 90.0, "id:1", 100.0, 60)
    assert second_contact("id:1", 90.0, "id:2", 100.0, 60)
    assert not second_contact("id:1", 10.0, "id:2", 100.0, 60)


def test_a_poison_contact_does_not_pause_the_space(pauses: Any) -> None:
    space, clock = pauses
    failure = Systemic(OUTAGE, "Qomon answers 500")
    for _ in range(5):
        assert trip_or_suspect(space, "id:700103", failure, SETTINGS) is None
        clock.now += 30
    assert space.get() is None


def test_two_contacts_failing_within_the_window_pause_the_space(pauses: Any) -> None:
    space, clock = pauses
    failure = Systemic(OUTAGE, "Qomon answers 503")
    assert trip_or_suspect(space, "id:700103", failure, SETTINGS) is None
    clock.now += 59
    pause = trip_or_suspect(space, "id:700106", failure, SETTINGS)
    assert pause is not None
    assert pause.cause == OUTAGE
    assert pause.waiting == (700106,)
    assert pause.description == "Qomon answers 503"
    assert pause.next_probe_at == clock.now + 60
    # A third contact finds the pause (first writer wins) and joins those to probe.
    later = trip_or_suspect(space, "id:700107", failure, SETTINGS)
    assert later is not None
    assert later.since == pause.since
    assert later.waiting == (700106, 700107)


def test_two_contacts_failing_far_apart_do_not(pauses: Any) -> None:
    space, clock = pauses
    failure = Systemic(OUTAGE, "Qomon answers 503")
    assert trip_or_suspect(space, "id:1", failure, SETTINGS) is None
    clock.now += 61
    assert trip_or_suspect(space, "id:2", failure, SETTINGS) is None


def test_a_refused_key_pauses_at_once(pauses: Any) -> None:
    space, _ = pauses
    failure = Systemic(KEY_REFUSED, "Qomon refuses the API key (HTTP 401)")
    pause = trip_or_suspect(space, "mail:h:ab12", failure, SETTINGS)
    assert pause is not None
    assert pause.cause == KEY_REFUSED
    assert pause.waiting == ()


def test_the_pause_is_keyed_by_the_space_url_not_the_key() -> None:
    assert place_of("https://q.example") == place_of("https://q.example")
    assert place_of("https://q.example") != place_of("https://other.example")
    assert contact_id_of("id:700103") == 700103
    assert contact_id_of("mail:h:ab12") is None


# -- the probe -----------------------------------------------------------------------------------


def probe(
    space: SpacePauses, clock: FakeClock, answers: list[Exception | None]
) -> tuple[PauseProbe, Mapping, Topic, list[int], Recorder]:
    mapping, topic, called, telemetry = Mapping(), Topic(), [], Recorder()

    def call(contact_id: int, deadline: Deadline) -> None:
        called.append(contact_id)
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    return (
        PauseProbe(
            settings=SETTINGS,
            pauses=space,
            mapping=mapping,  # type: ignore[arg-type]
            call=call,
            topic=topic,  # type: ignore[arg-type]
            telemetry=telemetry,
            waiting=lambda: 42,
            clock=clock,
        ),
        mapping,
        topic,
        called,
        telemetry,
    )


def test_not_paused_the_probe_calls_nothing_and_reports_zero(pauses: Any) -> None:
    space, clock = pauses
    runner, mapping, topic, called, telemetry = probe(space, clock, [])
    assert runner.run() == "flowing"
    assert called == []
    assert mapping.switches == []
    assert topic.told == []
    assert telemetry.counts == []
    assert telemetry.lines == []


def test_paused_the_probe_disables_the_mapping_tells_once_and_waits_its_turn(
    pauses: Any,
) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    runner, mapping, topic, called, telemetry = probe(space, clock, [])
    assert runner.run().startswith("paused (Qomon answers 503); next probe in 1 min")
    assert mapping.switches == [False]
    [(subject, message)] = topic.told
    assert subject == "qomon-sync paused: Qomon answers 503"
    assert "Qomon answers 503 since" in message
    assert "42 messages wait" in message
    assert "nothing is lost" in message
    clock.now += 30
    runner.run()
    assert len(topic.told) == 1
    assert called == []
    assert ("SpacePaused", 1) in telemetry.counts


def test_a_failed_probe_doubles_the_wait_up_to_the_cap(pauses: Any) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    down = QomonServerError("down", status=503)
    runner, mapping, _, called, _ = probe(space, clock, [down] * 5)
    waits = []
    for _ in range(5):
        clock.now = space.get().next_probe_at
        runner.run()
        pause = space.get()
        waits.append(pause.interval_s)
    assert waits == [120, 240, 300, 300, 300]
    assert called == [1, 700103, 1, 700103, 1]  # the witness and the waiting one in turn
    assert space.get().probes == 5
    assert mapping.on is False
    assert next_interval(60, first_s=60, max_s=300) == 120


def test_a_probe_that_gets_an_answer_resumes_and_says_how_long(pauses: Any) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    runner, mapping, topic, _called, _ = probe(
        space, clock, [QomonServerError("down", status=503), QomonNotFound("gone", status=404)]
    )
    clock.now += 60
    runner.run()
    clock.now = space.get().next_probe_at
    assert runner.run() == "resumed after 3 min 00 s (2 probes)"
    assert space.get() is None
    assert mapping.switches == [False, True]
    assert mapping.on
    subject, message = topic.told[-1]
    assert subject == "qomon-sync resumed"
    assert "after a pause of 3 min 00 s (2 probes)" in message


def test_a_refused_key_names_the_secret_and_resumes_when_the_key_works(pauses: Any) -> None:
    space, clock = pauses
    space.trip(
        Systemic(KEY_REFUSED, "Qomon refuses the API key (HTTP 401)"), None, first_probe_s=60
    )
    runner, _, topic, called, _ = probe(space, clock, [QomonAuthError("no", status=401), None])
    clock.now += 60
    runner.run()
    subject, message = topic.told[0]
    assert subject == "qomon-sync paused: Qomon refuses the API key"
    assert "put a valid key in the secret k" in message.lower()
    clock.now = space.get().next_probe_at
    assert runner.run().startswith("resumed")
    assert called == [1, 1]  # no waiting contact: the witness
    assert "Qomon accepts the API key again" in topic.told[-1][1]


def test_a_pause_of_three_days_queues_a_marker_again_for_every_staged_group(
    pauses: Any,
) -> None:
    """At the queue's 4-day retention SQS deletes the markers behind staged events: a pause
    that lasted 3 days or more ends by queuing them again."""
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    runner, _, _, _, telemetry = probe(space, clock, [None, None])
    requeued: list[int] = []

    def requeue(since: float) -> int:
        requeued.append(7)
        return 7

    runner.requeue = requeue
    clock.now += 3 * 86400
    assert runner.run().startswith("resumed after 3 days")
    assert requeued == [7]
    assert any("flush markers queued again" in line for line in telemetry.lines)
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    clock.now += 60
    runner.run()
    assert requeued == [7]  # a short pause queues nothing again


def test_markers_are_queued_again_for_the_groups_with_a_head() -> None:
    from qomon_sync.adapters.staging import StagingTable
    from qomon_sync.application.pause import requeue_markers

    class Markers:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, group: str) -> str:
            self.sent.append(group)
            return f"m{len(self.sent)}"

    with staging_table_in_moto(TABLE) as dynamodb:
        staging = StagingTable(dynamodb, TABLE, retention_s=3600)
        staging.expect_marker("id:700103", "old", since=1.0)
        staging.expect_marker("mail:h:ab12", "old", since=2.0)
        SpacePauses(dynamodb, TABLE, "p").trip(Systemic(OUTAGE, "x"), 1, first_probe_s=1)
        markers = Markers()
        assert requeue_markers(staging, markers, lambda: 5.0, since=4.0) == 2  # type: ignore[arg-type]
        assert sorted(markers.sent) == ["id:700103", "mail:h:ab12"]
        assert staging.head("id:700103").marker in {"m1", "m2"}
        assert staging.head("id:700103").since == 1.0  # the wait is still counted from then


def test_an_operator_asks_for_a_probe_now(pauses: Any) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 1, first_probe_s=60)
    clock.now += 5
    pause = space.probe_now()
    assert pause is not None
    assert pause.probe_due(clock.now)


def test_durations_read_as_words() -> None:
    assert duration(12) == "12 s"
    assert duration(250) == "4 min 10 s"
    assert duration(7500) == "2 h 05 min"
    assert duration(3 * 86400 + 7200) == "3 days 2 h"


def test_a_poison_contact_among_the_waiting_ids_does_not_hold_the_pause(pauses: Any) -> None:
    """The probe rotates through the waiting ids and the witness: a contact Qomon answers
    500 for (and only for it) decides nothing; the pause ends within len(waiting)+1 rounds
    once Qomon answers for the others."""
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700101, first_probe_s=60)
    for contact in (700102, 700103):
        space.add_waiting(contact)
    poison = 700101
    runner, mapping, _topic, called, _ = probe(space, clock, [])

    def call(contact_id: int, deadline: Deadline) -> None:
        called.append(contact_id)
        if contact_id == poison:
            raise QomonServerError("boom", status=500)

    runner.call = call
    rounds = 0
    while space.get() is not None and rounds < 4:
        clock.now = space.get().next_probe_at
        runner.run()
        rounds += 1
    assert space.get() is None, called
    assert rounds <= len((700101, 700102, 700103)) + 1
    assert len(set(called)) == len(called)  # never the same contact twice in a row here
    assert mapping.on


def test_a_budget_spent_on_timeouts_is_systemic() -> None:
    """A flush against a Qomon that hangs ends on its budget, the last error a timeout."""
    timeout = QomonTransportError("ReadTimeout", request_sent=True)
    spent = QomonBudgetExhausted("no time", last_error=timeout)
    assert systemic(spent) == systemic(timeout)
    assert systemic(spent) is not None
    nested = QomonBudgetExhausted("again", last_error=spent)
    assert systemic(nested) == systemic(timeout)


class Broken:
    """An AWS call refused: the SNS topic, the event source mapping, the secret."""

    def __init__(self) -> None:
        self.on = True

    def enabled(self) -> bool:
        return self.on

    def switch(self, *, on: bool) -> bool:
        raise _refused("AccessDeniedException")

    def tell(self, subject: str, message: str) -> None:
        raise _refused("AuthorizationError")


def _refused(code: str) -> Exception:
    from botocore.exceptions import ClientError

    refused: Exception = ClientError({"Error": {"Code": code, "Message": "no"}}, "Call")
    return refused


def test_a_failing_step_of_a_probe_round_does_not_stop_the_others(pauses: Any) -> None:
    """Telling (SNS), switching the mapping and reading the secret each may fail: the
    round goes on to the probe, counts SpacePaused and says which step failed, by type."""
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    runner, _, _, called, telemetry = probe(space, clock, [])
    broken = Broken()
    runner.topic = broken  # type: ignore[assignment]
    runner.mapping = broken  # type: ignore[assignment]

    def call(contact_id: int, deadline: Deadline) -> None:
        called.append(contact_id)
        raise _refused("AccessDeniedException")  # the secret cannot be read

    runner.call = call
    clock.now += 60
    said = runner.run()
    assert said.startswith("still paused")
    assert called == [1]
    assert ("SpacePaused", 1) in telemetry.counts
    assert ("PauseProbes", 1) in telemetry.counts
    failed = " ".join(telemetry.lines)
    for step in ("telling", "mapping", "probe"):
        assert step in failed, failed
    assert "ClientError" in failed
    assert space.get().probes == 1  # backed off, probed again next time
    assert space.get().told is False  # nobody was told: the next round tries again


def test_the_probe_handler_flushes_its_metrics_even_when_a_round_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from qomon_sync.handlers import pause_probe

    class Runtime:
        pauses = object()

    class Round:
        def __init__(self, **parts: Any) -> None:
            self.telemetry = parts["telemetry"]

        def run(self) -> str:
            self.telemetry.count("SpacePaused", 1)
            raise RuntimeError("a round that fails")

    monkeypatch.setattr(pause_probe, "build_runtime", lambda settings: Runtime())
    monkeypatch.setattr(pause_probe, "PauseProbe", Round)
    monkeypatch.setattr("qomon_sync.handlers.pause_probe.boto3.client", lambda *a, **k: object())
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")

    class Context:
        function_name = "probe"
        memory_limit_in_mb = 128
        invoked_function_arn = "arn:aws:lambda:eu-west-3:1:function:probe"
        aws_request_id = "r"

    with pytest.raises(RuntimeError):
        pause_probe.handler({}, Context())  # type: ignore[arg-type]
    assert '"SpacePaused":[1.0]' in capsys.readouterr().out.replace(" ", "")


def test_a_403_is_suspected_like_an_outage_and_a_401_pauses_at_once(pauses: Any) -> None:
    space, clock = pauses
    forbidden = systemic(QomonAuthError("no", status=403))
    assert forbidden is not None
    assert forbidden.description == "Qomon refuses the API key (HTTP 403)"
    for _ in range(3):
        assert trip_or_suspect(space, "id:700103", forbidden, SETTINGS) is None
        clock.now += 10
    # A 503 of another contact is not the same failure: no pause from the pair.
    assert (
        trip_or_suspect(space, "id:700106", Systemic(OUTAGE, "Qomon answers 503"), SETTINGS) is None
    )
    assert trip_or_suspect(space, "id:700107", forbidden, SETTINGS) is None
    pause = trip_or_suspect(space, "id:700108", forbidden, SETTINGS)
    assert pause is not None
    assert pause.description == "Qomon refuses the API key (HTTP 403)"


def test_a_long_pause_queues_its_markers_before_it_ends_and_a_cut_round_resumes_them(
    pauses: Any,
) -> None:
    """After a pause of 3 days, the markers are queued again BEFORE the pause item is
    cleared: a round cut short (the probe's timeout) leaves the pause in place, and the
    next round queues only the groups not yet done, then ends the pause."""
    from qomon_sync.adapters.staging import StagingTable
    from qomon_sync.application.pause import requeue_markers

    space, clock = pauses
    staging = StagingTable(space._db, TABLE, retention_s=10 * 86400)
    groups = ["id:700101", "id:700102", "id:700103", "mail:h:ab12"]
    for group in groups:
        staging.expect_marker(group, "old", since=1.0)
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700101, first_probe_s=60)

    class Markers:
        def __init__(self, fail_after: int | None) -> None:
            self.sent: list[str] = []
            self.fail_after = fail_after

        def send(self, group: str) -> str:
            if self.fail_after is not None and len(self.sent) == self.fail_after:
                raise TimeoutError("the round ran out of time")
            self.sent.append(group)
            return f"m{len(self.sent)}"

    cut, rest = Markers(fail_after=2), Markers(fail_after=None)
    runner, mapping, topic, _, _ = probe(space, clock, [None, None])
    clock.now += 3 * 86400
    runner.requeue = lambda since: requeue_markers(staging, cut, clock, since=since)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        runner.run()
    assert space.get() is not None  # not cleared: the next round finishes the job
    assert not any(subject == "qomon-sync resumed" for subject, _ in topic.told)
    runner.requeue = lambda since: requeue_markers(staging, rest, clock, since=since)  # type: ignore[arg-type]
    clock.now += 60
    assert runner.run().startswith("resumed after 3 days")
    assert space.get() is None
    assert sorted(cut.sent + rest.sent) == sorted(groups)  # each group once
    assert mapping.on


# -- what is not an answer, and what the round must not claim -----------------------------------


def test_a_probe_that_could_not_call_stays_paused_and_probes_next_round(pauses: Any) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    no_tokens = QomonBudgetExhausted("rate-limit tokens not available in time", last_error=None)
    runner, mapping, topic, called, _ = probe(space, clock, [no_tokens, None])
    clock.now += 60
    said = runner.run()
    assert said.startswith("paused (Qomon answers 503); no probe made"), said
    pause = space.get()
    assert pause is not None
    assert pause.probe_due(clock.now)  # not backed off: the next round probes
    assert pause.interval_s == 60
    assert mapping.on is False
    assert not any(subject == "qomon-sync resumed" for subject, _ in topic.told)
    clock.now += 60
    assert runner.run().startswith("resumed")
    assert len(called) == 2


def test_a_maintenance_page_is_not_an_answer(pauses: Any) -> None:
    from qomon_sync.adapters.qomon import QomonMalformedResponse

    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    page = QomonMalformedResponse("not JSON", status=200)
    runner, _, topic, _, _ = probe(space, clock, [page])
    clock.now += 60
    assert runner.run().startswith("still paused")
    assert space.get() is not None
    assert space.get().probes == 1
    assert not any(subject == "qomon-sync resumed" for subject, _ in topic.told)


def test_a_resume_that_finds_a_newer_pause_says_nothing_of_resuming(pauses: Any) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    runner, _, topic, _, telemetry = probe(space, clock, [None])
    clock.now += 60
    original_clear = space.clear
    space.clear = lambda pause: False  # another pause holds now
    said = runner.run()
    space.clear = original_clear
    assert not said.startswith("resumed"), said
    assert not any(subject == "qomon-sync resumed" for subject, _ in topic.told)
    assert ("SpacePaused", 0) not in telemetry.counts


def test_a_busy_mapping_is_not_said_to_be_disabled(pauses: Any) -> None:
    space, clock = pauses
    space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=60)
    runner, mapping, _, _, telemetry = probe(space, clock, [])
    mapping.switch = lambda *, on: False  # type: ignore[method-assign]  # ResourceInUse
    runner.run()
    assert not any("is disabled" in line for line in telemetry.lines), telemetry.lines
    assert any("busy" in line for line in telemetry.lines), telemetry.lines


def test_the_cli_docstring_names_the_operators_commands() -> None:
    from qomon_sync_ops import cli

    assert cli.__doc__ is not None
    assert "X's" not in cli.__doc__
    assert "(`status`, `dlq`, `backfill`, `resume`) are this package's `COMMANDS`" in " ".join(
        cli.__doc__.split()
    )


class OpsTarget:
    description = "stack qomon-sync-test (eu-west-3)"
    local = False
    staging_table = TABLE
    qomon_base_url = "https://q.example"
    pause_probe_function = "qomon-sync-test-pause-probe"

    def __init__(self, clients: dict[str, Any]) -> None:
        self._clients = clients

    def client(self, name: str) -> Any:
        return self._clients[name]


def test_resume_refused_the_invoke_says_the_probe_is_set_for_now_and_the_permission() -> None:
    from qomon_sync_ops import resume
    from qomon_sync_ops.target import OpsError

    class Lambda:
        def invoke(self, **_: Any) -> Any:
            raise _refused("AccessDeniedException")

    with staging_table_in_moto(TABLE) as dynamodb:
        space = SpacePauses(dynamodb, TABLE, place_of("https://q.example"))
        space.trip(Systemic(OUTAGE, "Qomon answers 503"), 700103, first_probe_s=600)
        target = OpsTarget({"dynamodb": dynamodb, "lambda": Lambda()})
        import io

        out = io.StringIO()
        with pytest.raises(OpsError) as refused:
            resume.run(None, target, out)  # type: ignore[arg-type]
        text = str(refused.value)
        assert "lambda:InvokeFunction" in text
        assert "qomon-sync-test-pause-probe" in text
        assert "next probe was set to now" in text
        assert "within a minute" in text
        pause = space.get()
        assert pause is not None
        assert pause.probe_due(time.time())


def test_status_says_what_it_could_not_read_of_the_pause_and_prints_the_rest() -> None:
    from qomon_sync_ops import status

    class Refusing:
        def get_item(self, **_: Any) -> Any:
            raise _refused("AccessDeniedException")

    target = OpsTarget({"dynamodb": Refusing()})
    pause, unread = status.read_pause(target)  # type: ignore[arg-type]
    assert pause is None
    assert unread is not None
    assert "AccessDeniedException" in unread
    assert "dynamodb:GetItem" in unread
    line = status.pause_line(status.Status(pause_unread=unread))
    assert line.startswith("unknown: could not read"), line
