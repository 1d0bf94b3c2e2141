"""`qomon-sync local`: the whole pipeline on one machine, no AWS account needed.

- a local AWS (moto in server mode, on 127.0.0.1) with the same FIFO queue, FIFO
  dead-letter queue (redrive after `maxReceiveCount`), idempotency table and secret as
  template.yaml;
- the Qomon stand-in, seeded, unless a Qomon URL and key are given;
- a poller playing the Lambda SQS event source mapping: batches of up to 10, real-shaped
  SQS events, the very same handler, partial batch responses (only the messages that did
  not fail are deleted), visibility timeout and receive counts, so failures come back and
  the redrive policy ends them in the dead-letter queue.

It writes the endpoints it serves to a JSON file (AWS endpoint, queue and DLQ URLs,
Qomon URL) so users and tests can send messages with boto3 or the AWS CLI.

`qomon-sync local` keeps its queues, dead letters, idempotency ledger and the stand-in's
contacts in a state folder (`.local-run/` by default; see local_state), on fixed ports
with fixed secrets, so a stop or a kill loses nothing that was answered 202 and a restart
picks up where it was. In-process users (tests, the soak, the benchmark) run without a
state folder on free ports, as before.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets as secrets_module
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import httpx

from qomon_sync.domain.privacy import Pseudonyms
from qomon_sync_dev import local_logs, local_state
from qomon_sync_dev.local_aws import MAPPING_UUID, LocalAws, create_staging_table
from qomon_sync_dev.local_lambda import (
    REGION,
    STACK,
    EventSourcePoller,
    PauseProbeRunner,
    WebhookServer,
)
from qomon_sync_dev.local_sqs import LocalQueues
from qomon_sync_dev.local_state import Left
from qomon_sync_dev.signing import local_webhook_secrets
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

ACCOUNT_ID = "123456789012"  # moto's default account
STANDIN_TOKEN = "local-qomon-token"
DEFAULT_STATE_DIR = Path(".local-run")
ENDPOINTS_FILE = "endpoints.json"
DEFAULT_PORTS = {"webhook": 8780, "aws": 8781, "qomon": 8782}
"""`qomon-sync local`'s ports on 127.0.0.1, the same at every start (0: any free port)."""
PORT_ENV = {
    "webhook": "QOMON_SYNC_LOCAL_WEBHOOK_PORT",
    "aws": "QOMON_SYNC_LOCAL_AWS_PORT",
    "qomon": "QOMON_SYNC_LOCAL_QOMON_PORT",
}
STATE_DIR_ENV = "QOMON_SYNC_LOCAL_STATE_DIR"
SECRET_SUFFIX = "local0"
"""Pins the random six characters moto puts at the end of a secret's ARN: the ARNs in
the endpoints file are the same at every start."""
# The seed, like live search results, carries fields no schema lists: declared here as a
# user would declare theirs.
LOCAL_PASSTHROUGH = "address.citycode,external_id,membership_number"


LOCAL_LEDGER_RETENTION_DAYS = 36_500
"""Local mode's ledger (kept in its state folder) remembers applied events for a century:
its demo and tests replay services' documented examples, dated years ago, which the
replay window would otherwise refuse. Set it to AWS's default (21) to try that window."""


# Local-only webhook secrets, one per source of functions/sources.yaml, from the registry
# (AWS: the WebhookSecrets secret). The generic one is a Standard Webhooks `whsec_` secret.
LOCAL_WEBHOOK_SECRETS = local_webhook_secrets()


@dataclass(frozen=True)
class Endpoints:
    aws_endpoint_url: str
    region: str
    changes_queue_url: str
    changes_queue_arn: str
    dead_letter_queue_url: str
    idempotency_table: str
    qomon_api_key_secret: str
    staging_table: str
    qomon_url: str
    pseudonym_key_secret: str = f"{STACK}/pseudonym-key"
    """Local mode's key of e-mail pseudonyms (the operators' commands read it too)."""
    webhook_url: str = ""
    """`.../webhooks/{source}`: the ingest handler behind a local HTTP API."""
    dead_letter_queue_arn: str = ""
    unknown_fields_passthrough: str = ""
    """As the stack's UnknownFieldsPassthrough: `qomon-sync dlq show --preview` uses it."""
    webhook_secrets: dict[str, str] | None = None
    state_dir: str = ""
    """Where the queues, dead letters, ledger and stand-in are kept ("": nowhere)."""
    alarm_topic_arn: str = ""
    """Local mode's alarm topic (moto's SNS): the pause probe tells a person there."""


@dataclass(frozen=True)
class LocalOptions:
    qomon_url: str | None = None
    qomon_token: str | None = None
    standin: StandinConfig | None = None
    visibility_timeout_s: int = 10
    max_receive_count: int = 5
    function_timeout_s: float = 10.0
    """At most the visibility timeout, as on AWS (60 s against 360 s): a killed invocation's
    ledger claims and contact leases last until it would have ended, so they must have
    expired when its messages come back, or the next delivery finds them held."""
    batch_size: int = 10
    unknown_fields_passthrough: str = LOCAL_PASSTHROUGH
    ledger_retention_days: int = LOCAL_LEDGER_RETENTION_DAYS
    state_dir: Path | None = None
    """Keep the queues, dead letters, ledger and stand-in here across stops and kills;
    None keeps them in memory only (lost at stop)."""
    fresh: bool = False
    """Forget what `state_dir` kept before starting."""
    webhook_port: int = 0
    aws_port: int = 0
    qomon_port: int = 0
    paused: bool = False
    """Start with the poller paused (`poller.resume()` starts it): nothing is received,
    not even what the state folder gave back, until then."""
    probe_every_s: float = 2.0
    """The pause probe's schedule (AWS: every minute); 0 runs no probe."""
    pause_probe_first_s: float = 2.0
    """The first wait between probes of a pause (AWS: 60 s), doubling up to the next."""
    pause_probe_max_s: float = 10.0
    """The longest wait between probes (AWS: 300 s)."""
    pause_window_s: float = 30.0
    """Two contacts failing systemically within this pause the space (AWS: 120 s)."""
    pause_hold_s: float = 0.5
    """How long a paused batch holds its messages (AWS: 5 s)."""

    def timeouts_problem(self) -> str | None:
        """What is wrong with the timeouts for a run that may be killed, in words (local
        mode's command refuses it; tests that kill nothing may shorten the visibility)."""
        if self.function_timeout_s <= self.visibility_timeout_s:
            return None
        return (
            f"the function timeout ({self.function_timeout_s:g} s) is longer than the "
            f"visibility timeout ({self.visibility_timeout_s} s): a message would come back "
            "while the invocation holding it may still run (AWS keeps 60 s against 360 s); "
            "give --function-timeout at most the --visibility-timeout"
        )

    @property
    def safety_margin_s(self) -> float:
        """The time each invocation keeps back (settings `SAFETY_MARGIN_S`, 8 s on AWS for
        60 s), scaled down with a shorter function timeout."""
        return max(1.0, min(8.0, self.function_timeout_s / 5))


class PortInUse(RuntimeError):
    pass


def _check_port(port: int, what: str) -> None:
    """Fail with a sentence that names the way out, before anything has started (the
    servers' own errors would say only that the address is in use, one server later)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(
                f"port {port} ({what}) is in use on 127.0.0.1: is another qomon-sync local "
                f"running? Stop it, or choose another port (--{what}-port or "
                f"{PORT_ENV[what]}; 0 takes any free one)"
            ) from None


class LocalMode:
    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self.aws: LocalAws | None = None
        self.queues: LocalQueues | None = None
        self.standin: StandinServer | None = None
        self.webhooks: WebhookServer | None = None
        self.poller: EventSourcePoller | None = None
        self.probe: PauseProbeRunner | None = None
        self.endpoints: Endpoints | None = None
        self.journal: local_state.Journal | None = None
        self.restored: local_state.Restored | None = None
        self.left: Left | None = None
        self._lock: local_state.StateLock | None = None
        self.metrics: local_logs.LocalCloudWatch | None = None
        self.pseudonyms: Pseudonyms | None = None
        """The deployment's pseudonyms, once started (the handlers read the same key)."""
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> LocalMode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Endpoints:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Endpoints:
        options = self.options
        for what, port in (
            ("webhook", options.webhook_port),
            ("aws", options.aws_port),
            ("qomon", options.qomon_port if not options.qomon_url else 0),
        ):
            _check_port(port, what)
        if options.state_dir is not None:
            self._lock = local_state.StateLock(options.state_dir)
            if options.fresh:
                local_state.wipe(options.state_dir)
            self.journal = local_state.Journal(options.state_dir)
        state_file = str(self.journal.path) if self.journal is not None else None
        local_sqs_url: list[str] = []
        self.queues = LocalQueues(state_file, lambda: local_sqs_url[0], ACCOUNT_ID, REGION)
        keep = self.journal.keep_items if self.journal is not None else None
        self.aws = LocalAws(self.queues, REGION, keep_items=keep)
        aws_url = self.aws.start(options.aws_port)
        local_sqs_url.append(aws_url)
        local_logs.isolate_functions()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        # moto keeps its state per process: start from nothing, as a new account would.
        httpx.post(f"{aws_url}/moto-api/reset", timeout=10).raise_for_status()
        self._set_env(
            {
                "AWS_ENDPOINT_URL": aws_url,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
            }
        )
        if options.qomon_url:
            qomon_url, token = options.qomon_url, options.qomon_token or ""
        else:
            config = options.standin or StandinConfig(token=STANDIN_TOKEN)
            if self.journal is not None:
                self.standin = local_state.DurableStandin(
                    config, self.journal, port=options.qomon_port
                ).start()
            else:
                self.standin = StandinServer(config, port=options.qomon_port).start()
            qomon_url, token = self.standin.url, config.token
        self.endpoints = self._create_resources(aws_url, qomon_url, token)
        self.aws.tables = {
            self.endpoints.idempotency_table: ("id",),
            self.endpoints.staging_table: ("pk", "sk"),
        }
        if self.journal is not None:
            self._restore(self.journal, self.endpoints)
        self._set_env(
            {
                "QOMON_BASE_URL": qomon_url,
                "QOMON_API_KEY_SECRET": self.endpoints.qomon_api_key_secret,
                "CHANGES_QUEUE_URL": self.endpoints.changes_queue_url,
                "DEAD_LETTER_QUEUE_URL": self.endpoints.dead_letter_queue_url,
                "IDEMPOTENCY_TABLE": self.endpoints.idempotency_table,
                "STAGING_TABLE": self.endpoints.staging_table,
                "MAX_RECEIVE_COUNT": str(options.max_receive_count),
                "BATCH_SIZE": str(options.batch_size),
                "UNKNOWN_FIELDS_PASSTHROUGH": options.unknown_fields_passthrough,
                "LEDGER_RETENTION_DAYS": str(options.ledger_retention_days),
                "POWERTOOLS_SERVICE_NAME": "qomon-sync",
                "POWERTOOLS_METRICS_NAMESPACE": "QomonSync",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "WEBHOOK_SECRETS_SECRET": f"{STACK}/webhook-secrets",
                "PSEUDONYM_KEY_SECRET": self.endpoints.pseudonym_key_secret,
                "SYNC_EVENT_SOURCE_MAPPING": MAPPING_UUID,
                "ALARM_TOPIC_ARN": self.endpoints.alarm_topic_arn,
                "PAUSE_PROBE_FIRST_S": str(options.pause_probe_first_s),
                "PAUSE_PROBE_MAX_S": str(options.pause_probe_max_s),
                "PAUSE_WINDOW_S": str(options.pause_window_s),
                "PAUSE_HOLD_S": str(options.pause_hold_s),
            }
        )
        if "SAFETY_MARGIN_S" not in os.environ:  # a soak or a person may set their own
            self._set_env({"SAFETY_MARGIN_S": f"{options.safety_margin_s:g}"})
        self.aws.queue_arn = self.endpoints.changes_queue_arn
        # The tools that run beside the handlers (bench, soak) key pseudonyms the same way.
        secrets_client = boto3.client(
            "secretsmanager", endpoint_url=self.endpoints.aws_endpoint_url, region_name=REGION
        )
        key = secrets_client.get_secret_value(SecretId=self.endpoints.pseudonym_key_secret)
        self.pseudonyms = Pseudonyms(str(key["SecretString"]))
        from qomon_sync.handlers.ingest import reset_ingest
        from qomon_sync.handlers.sync import reset_runtime

        reset_runtime()
        reset_ingest()
        self.metrics = local_logs.LocalCloudWatch(aws_url, REGION).start()
        self.webhooks = WebhookServer(options.webhook_port, self.metrics.watch).start()
        self.endpoints = replace(
            self.endpoints,
            webhook_url=self.webhooks.url,
            webhook_secrets=dict(LOCAL_WEBHOOK_SECRETS),
            state_dir=str(options.state_dir) if options.state_dir is not None else "",
        )
        self.poller = EventSourcePoller(
            self.endpoints, options, self.metrics.watch, self.aws.mapping_enabled.is_set
        )
        self.poller.start()
        if options.probe_every_s > 0:
            self.probe = PauseProbeRunner(options.probe_every_s, self.metrics.watch)
            self.probe.start()
        return self.endpoints

    def told(self) -> list[tuple[str, str]]:
        """(subject, message) of everything published to the alarm topic, in order."""
        from moto.sns.models import sns_backends

        assert self.endpoints is not None
        topic = sns_backends[ACCOUNT_ID][REGION].topics.get(self.endpoints.alarm_topic_arn)
        if topic is None:
            return []
        return [(str(sent[2]), str(sent[1])) for sent in topic.sent_notifications]

    def _restore(self, journal: local_state.Journal, endpoints: Endpoints) -> None:
        """Fill the new tables from the state folder (the queues are there already)."""
        assert self.aws is not None
        assert self.queues is not None
        aws = self.aws

        def put_item(table: str, item: dict[str, Any]) -> None:
            aws.dynamodb("PutItem", {"TableName": table, "Item": item})

        ledger, released = local_state.restore_items(
            journal, put_item, ledger=endpoints.idempotency_table, staging=endpoints.staging_table
        )
        self.restored = local_state.Restored(
            self.queues.count(_queue_name(endpoints.changes_queue_url)),
            self.queues.count(_queue_name(endpoints.dead_letter_queue_url)),
            ledger,
            released,
        )

    def _create_resources(self, aws_url: str, qomon_url: str, token: str) -> Endpoints:
        sqs = boto3.client("sqs", endpoint_url=aws_url, region_name=REGION)
        dlq_url = sqs.create_queue(
            QueueName=f"{STACK}-dead-letters.fifo",
            Attributes={"FifoQueue": "true", "MessageRetentionPeriod": "1209600"},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": str(self.options.max_receive_count),
        }
        queue_url = sqs.create_queue(
            QueueName=f"{STACK}-changes.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": str(self.options.visibility_timeout_s),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        table = f"{STACK}-idempotency"
        dynamodb = boto3.client("dynamodb", endpoint_url=aws_url, region_name=REGION)
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
        )
        staging = f"{STACK}-staging"
        create_staging_table(dynamodb, staging)
        secrets = boto3.client("secretsmanager", endpoint_url=aws_url, region_name=REGION)
        # moto's documented `_custom_id_` tag fixes the ARN's random suffix.
        pinned = [{"Key": "_custom_id_", "Value": SECRET_SUFFIX}]
        secret_arn = secrets.create_secret(
            Name=f"{STACK}/qomon-api-key",
            SecretString=json.dumps({"api_key": token}),
            Tags=pinned,
        )["ARN"]
        secrets.create_secret(
            Name=f"{STACK}/webhook-secrets",
            SecretString=json.dumps(LOCAL_WEBHOOK_SECRETS),
            Tags=pinned,
        )
        secrets.create_secret(
            Name=f"{STACK}/pseudonym-key", SecretString=self._pseudonym_key(), Tags=pinned
        )
        sns = boto3.client("sns", endpoint_url=aws_url, region_name=REGION)
        topic_arn = sns.create_topic(Name=f"{STACK}-alarms")["TopicArn"]
        return Endpoints(
            alarm_topic_arn=topic_arn,
            aws_endpoint_url=aws_url,
            region=REGION,
            changes_queue_url=queue_url,
            changes_queue_arn=queue_arn,
            dead_letter_queue_url=dlq_url,
            dead_letter_queue_arn=dlq_arn,
            unknown_fields_passthrough=self.options.unknown_fields_passthrough,
            idempotency_table=table,
            qomon_api_key_secret=secret_arn,
            qomon_url=qomon_url,
            staging_table=staging,
        )

    def _pseudonym_key(self) -> str:
        """Local mode's own key for e-mail pseudonyms, kept in the state folder so that a
        contact keeps its message group across restarts (AWS: the stack generates one)."""
        if self.options.state_dir is None:
            return secrets_module.token_hex(32)
        path = self.options.state_dir / "pseudonym-key"
        if not path.exists():
            path.write_text(secrets_module.token_hex(32), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def stop(self) -> None:
        # Take no more webhooks, let the batch in the handler's hands finish, then count
        # what is left before anything else goes.
        if self.webhooks is not None:
            self.webhooks.stop()
            self.webhooks = None
        self._stop_probe()
        if self.poller is not None:
            self.poller.stopping.set()
            self.poller.resume()
            self.poller.join(timeout=15)
        if self.endpoints is not None and self.queues is not None:
            self.left = self._count_left(self.endpoints)
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self.standin is not None:
            self.standin.stop()
            self.standin = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
        if self.queues is not None:
            self.queues.close()
            self.queues = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        local_logs.share_functions()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def _stop_probe(self) -> None:
        if self.probe is not None:
            self.probe.stopping.set()
            self.probe.now.set()
            self.probe.join(timeout=35)
            self.probe = None

    def _count_left(self, endpoints: Endpoints) -> Left:
        assert self.queues is not None
        return Left(
            waiting=self.queues.count(_queue_name(endpoints.changes_queue_url)),
            dead_letters=self.queues.count(_queue_name(endpoints.dead_letter_queue_url)),
            state_dir=self.options.state_dir if self.journal is not None else None,
        )


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _env_port(what: str) -> int:
    raw = os.environ.get(PORT_ENV[what], "")
    try:
        return int(raw) if raw.strip() else DEFAULT_PORTS[what]
    except ValueError:
        raise SystemExit(f"qomon-sync local: {PORT_ENV[what]}={raw!r} is not a port") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qomon-url", help="a real Qomon space instead of the stand-in")
    parser.add_argument("--qomon-token", help="the space's API key (with --qomon-url)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the queues, dead letters, ledger and stand-in are kept across stops "
        f"and kills (default: ${STATE_DIR_ENV} or {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="forget what the state folder kept, then start"
    )
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep nothing: what is waiting at stop is dropped (the old behaviour)",
    )
    for what, meaning in (
        ("webhook", "the webhook endpoint"),
        ("aws", "the local AWS (moto)"),
        ("qomon", "the Qomon stand-in"),
    ):
        parser.add_argument(
            f"--{what}-port",
            type=int,
            default=None,
            help=f"{meaning} on 127.0.0.1 (default: ${PORT_ENV[what]} or "
            f"{DEFAULT_PORTS[what]}; 0: any free port)",
        )
    parser.add_argument(
        "--endpoints-file",
        type=Path,
        default=None,
        help=f"default: {ENDPOINTS_FILE} in the state folder",
    )
    parser.add_argument("--visibility-timeout", type=int, default=10, help="seconds (AWS: 360)")
    parser.add_argument("--max-receive-count", type=int, default=5)
    parser.add_argument(
        "--function-timeout",
        type=float,
        default=10.0,
        help="seconds, at most the visibility timeout (AWS: 60)",
    )
    parser.add_argument(
        "--paused",
        action="store_true",
        help="queue a backlog first: the poller starts on SIGUSR1 (kill -USR1 PID)",
    )
    parser.add_argument(
        "--passthrough",
        default=LOCAL_PASSTHROUGH,
        help="unknown fields to send back unchanged (comma-separated)",
    )


def options_from_args(args: argparse.Namespace) -> LocalOptions:
    state_dir = args.state_dir or Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)

    def port(what: str) -> int:
        given: int | None = getattr(args, f"{what}_port")
        return given if given is not None else _env_port(what)

    return LocalOptions(
        qomon_url=args.qomon_url,
        qomon_token=args.qomon_token,
        visibility_timeout_s=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        function_timeout_s=args.function_timeout,
        unknown_fields_passthrough=args.passthrough,
        state_dir=None if args.ephemeral else state_dir,
        fresh=args.fresh,
        paused=args.paused,
        webhook_port=port("webhook"),
        aws_port=port("aws"),
        qomon_port=port("qomon"),
    )


def run_from_args(args: argparse.Namespace) -> int:
    if bool(args.qomon_url) != bool(args.qomon_token):
        print("qomon-sync local: --qomon-url and --qomon-token go together", flush=True)
        return 2
    options = options_from_args(args)
    problem = options.timeouts_problem()
    if problem is not None:
        print(f"qomon-sync local: {problem}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    undo_lines = local_logs.whole_lines()
    try:
        return _run(args, options, stop)
    except (local_state.StateInUse, PortInUse) as error:
        print(f"qomon-sync local: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        undo_lines()


def _run(args: argparse.Namespace, options: LocalOptions, stop: threading.Event) -> int:
    local = LocalMode(options)
    with local:
        assert local.endpoints is not None
        assert local.poller is not None
        if args.paused:
            poller = local.poller
            signal.signal(signal.SIGUSR1, lambda *_: poller.resume())
        path: Path = (
            args.endpoints_file or (options.state_dir or DEFAULT_STATE_DIR) / ENDPOINTS_FILE
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: whoever waits for the file never reads half of it.
        aside = path.with_name(f".{path.name}.writing")
        aside.write_text(json.dumps(asdict(local.endpoints), indent=2) + "\n", encoding="utf-8")
        aside.replace(path)
        if local.restored is not None and options.state_dir is not None:
            print(f"qomon-sync local mode: {local.restored.summary(options.state_dir)}", flush=True)
        if isinstance(local.standin, local_state.DurableStandin) and local.standin.note:
            print(f"qomon-sync local mode: {local.standin.note}", flush=True)
        print(
            f"qomon-sync local mode is running (pid {os.getpid()}); "
            f"webhooks at {local.endpoints.webhook_url}; endpoints in {path.resolve()}",
            flush=True,
        )
        # Woken twice a second, not once: the OS may hand a signal (SIGUSR1, SIGTERM) to any
        # thread, and Python runs its handler only when the main thread runs again; blocked
        # in one wait it never did, and a demo's SIGUSR1 stayed unhandled until it stopped.
        while not stop.wait(0.5):
            pass
        print("qomon-sync local mode: stopping", flush=True)
    if local.left is not None:
        print(f"qomon-sync local mode: stopped; {local.left.summary()}", flush=True)
    return 0
