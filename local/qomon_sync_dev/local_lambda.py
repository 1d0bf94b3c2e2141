"""What local mode plays of Lambda and API Gateway: the Lambda context, the SQS event
source mapping (a poller handing real-shaped batches to the sync handler, with partial
batch responses and visibility timeouts) and the HTTP API in front of the ingest handler
(payload format 2.0). The handlers themselves are the ones AWS runs, unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from aiohttp import web

if TYPE_CHECKING:
    from qomon_sync_dev.local_mode import Endpoints, LocalOptions

REGION = "eu-west-3"
STACK = "qomon-sync-local"
SYNC_FUNCTION = f"{STACK}-SyncFunction"
INGEST_FUNCTION = f"{STACK}-IngestFunction"
PROBE_FUNCTION = f"{STACK}-PauseProbeFunction"


class LocalContext:
    """The parts of the Lambda context the handler and Powertools use."""

    def __init__(self, timeout_s: float, function_name: str = SYNC_FUNCTION) -> None:
        self._deadline = time.monotonic() + timeout_s
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"
        )
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """SQS messages as the event source mapping hands them to Lambda."""
    records = []
    for message in messages:
        attributes = {
            key: message.get("Attributes", {}).get(key)
            for key in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "SequenceNumber",
                "MessageGroupId",
                "MessageDeduplicationId",
            )
            if message.get("Attributes", {}).get(key) is not None
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def _nothing() -> None:
    pass


class EventSourcePoller(threading.Thread):
    """Plays the Lambda event source mapping for the changes queue (concurrency 1)."""

    def __init__(
        self,
        endpoints: Endpoints,
        options: LocalOptions,
        watch: Callable[[], None] = _nothing,
        enabled: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(name="event-source-mapping", daemon=True)
        self.endpoints = endpoints
        self.options = options
        self.watch = watch
        self.enabled = enabled
        """The mapping's Enabled flag (local_aws serves it to the pause probe): while it is
        off, nothing is received, as Lambda's poller stops for a disabled mapping."""
        """Called as each invocation starts (local mode's CloudWatch reads its output)."""
        self.stopping = threading.Event()
        self.running = threading.Event()
        if not options.paused:
            self.running.set()
        self.paused = threading.Event()
        self.idle = threading.Event()
        """Set while no batch is in the handler's hands (received, not yet settled)."""
        self.idle.set()
        self.invocations = 0
        self.returned = 0
        """Messages an invocation left on the queue (failed items, or all of a crash)."""
        self.errors: list[str] = []
        self.before_invoke: Callable[[list[dict[str, Any]]], None] | None = None
        """Dev hook (the soak): sees each batch just before the handler does."""
        self._sqs = boto3.client("sqs", endpoint_url=endpoints.aws_endpoint_url, region_name=REGION)

    def pause(self) -> None:
        """Stop taking batches after the current one (tests use it to build one batch)."""
        self.running.clear()
        self.paused.wait(timeout=30)

    def resume(self) -> None:
        self.running.set()

    def run(self) -> None:
        from qomon_sync.handlers.sync import handler

        while not self.stopping.is_set():
            if not self.running.is_set() or not self.enabled():
                self.paused.set()
                if self.running.is_set():
                    self.stopping.wait(0.2)  # the mapping is disabled (a pause)
                else:
                    self.running.wait(timeout=0.2)
                continue
            self.paused.clear()
            try:
                answer = self._sqs.receive_message(
                    QueueUrl=self.endpoints.changes_queue_url,
                    MaxNumberOfMessages=self.options.batch_size,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    WaitTimeSeconds=0,
                )
            except Exception as exc:  # an event source mapping keeps polling through errors
                self.errors.append(f"receive: {type(exc).__name__}: {exc}")
                self.stopping.wait(1)
                continue
            messages = answer.get("Messages", [])
            if not messages:
                self.stopping.wait(0.1)
            else:
                self.idle.clear()
                try:
                    self._invoke(handler, messages)
                finally:
                    self.idle.set()

    def _invoke(self, handler: Any, messages: list[dict[str, Any]]) -> None:
        event = lambda_event(messages, self.endpoints.changes_queue_arn)
        self.invocations += 1
        self.watch()
        try:
            if self.before_invoke is not None:
                self.before_invoke(messages)
            response = handler(event, LocalContext(self.options.function_timeout_s))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except (KeyboardInterrupt, SystemExit):
            raise
        except (
            BaseException
        ) as exc:  # a crashed or killed invocation: nothing is deleted, as on AWS
            self.errors.append(f"{type(exc).__name__}: {exc}")
            failed = {m["MessageId"] for m in messages}
        self.returned += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.endpoints.changes_queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        # Failed messages stay in flight until their visibility timeout, as on AWS.


class PauseProbeRunner(threading.Thread):
    """Plays the pause probe's schedule (AWS: every minute) at local mode's scale."""

    def __init__(self, every_s: float, watch: Callable[[], None] = _nothing) -> None:
        super().__init__(name="pause-probe-schedule", daemon=True)
        self.every_s = every_s
        self.watch = watch
        self.stopping = threading.Event()
        self.runs = 0
        self.results: list[str] = []
        """What each run said (the last few), for tests and the soak."""
        self.errors: list[str] = []
        self.failed_probes = 0
        """Runs whose probe found Qomon still failing."""
        self.resumed: list[str] = []
        """What each run that ended a pause said ("resumed after 42 s (5 probes)")."""
        self.now = threading.Event()
        """Set to run at once (`qomon-sync resume` in local mode)."""

    def run(self) -> None:
        from qomon_sync.handlers.pause_probe import handler

        while not self.stopping.is_set():
            self.now.wait(self.every_s)
            self.now.clear()
            if self.stopping.is_set():
                return
            self.runs += 1
            self.watch()
            try:
                context: Any = LocalContext(30, PROBE_FUNCTION)  # what Powertools reads of one
                answer = handler({}, context)
                said = str(answer.get("result"))
                self.results = [*self.results[-20:], said]
                self.failed_probes += said.startswith("still paused")
                if said.startswith("resumed"):
                    self.resumed.append(said)
            except Exception as exc:  # a failed run is retried by the next one, as in AWS
                self.errors.append(f"{type(exc).__name__}: {exc}")


TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")


def http_api_event(
    method: str, path: str, *, query: str, headers: dict[str, str], body: bytes, source: str | None
) -> dict[str, Any]:
    """A request as API Gateway's HTTP API hands it to Lambda (payload format 2.0)."""
    content_type = headers.get("content-type", "")
    try:
        text = body.decode("utf-8") if any(t in content_type for t in TEXT_TYPES) else None
    except UnicodeDecodeError:
        text = None
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": dict(urllib.parse.parse_qsl(query)) or None,
        "pathParameters": {"source": source} if source else None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "POST /webhooks/{source}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


class WebhookServer:
    """The HTTP API in front of the ingest handler, on 127.0.0.1."""

    def __init__(self, port: int = 0, watch: Callable[[], None] = _nothing) -> None:
        self.port = port
        self.watch = watch
        """Called as each invocation starts (local mode's CloudWatch reads its output)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/{{source}}"

    async def _answer(self, request: web.Request) -> web.Response:
        from qomon_sync.handlers.ingest import handler

        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        event = http_api_event(
            request.method,
            request.path,
            query=request.query_string,
            headers=headers,
            body=body,
            source=request.match_info.get("source"),
        )
        # The handler is synchronous, as in Lambda: run it off the event loop.
        self.watch()
        answer = await asyncio.to_thread(handler, event, LocalContext(10, INGEST_FUNCTION))
        return web.Response(
            status=answer["statusCode"],
            headers=answer.get("headers") or {},
            body=base64.b64decode(answer["body"])
            if answer.get("isBase64Encoded")
            else answer["body"],
        )

    def start(self) -> WebhookServer:
        ready = threading.Event()

        async def serve() -> None:
            # API Gateway takes up to 10 MB; the handler itself answers 413 above SQS's limit.
            app = web.Application(client_max_size=10 * 1024 * 1024)
            app.router.add_route("*", "/webhooks/{source}", self._answer)
            app.router.add_route("*", "/{tail:.*}", self._answer)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="webhook-api", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        if not ready.wait(timeout=15):
            raise RuntimeError("the local webhook endpoint did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)


def wait_until_drained(sqs: Any, url: str, local: Any, deadline: float) -> bool:
    """Whether the queue emptied and the poller went idle (five checks in a row, 0.2 s
    apart) before `deadline` (a time.monotonic() value)."""
    quiet = 0
    while time.monotonic() < deadline:
        assert local.poller is not None
        quiet = quiet + 1 if queue_is_empty(sqs, url) and local.poller.idle.is_set() else 0
        if quiet >= 5:
            return True
        time.sleep(0.2)
    return False


def queue_is_empty(sqs: Any, queue_url: str) -> bool:
    """No message waiting and none in flight."""
    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(value == "0" for value in counts.values())


def take_dead_letters(sqs: Any, queue_url: str) -> list[dict[str, str]]:
    """Receive and delete every message of a dead-letter queue: its body and attributes."""
    letters: list[dict[str, str]] = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        if not answer.get("Messages"):
            return letters
        for message in answer["Messages"]:
            attributes = message.get("MessageAttributes", {})
            letters.append(
                {"body": message["Body"], **{k: v["StringValue"] for k, v in attributes.items()}}
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
