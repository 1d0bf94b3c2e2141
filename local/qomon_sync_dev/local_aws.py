"""Local mode's AWS endpoint on 127.0.0.1: SQS answered by local_sqs, the rest by moto.

One WSGI application in front, served by werkzeug's threaded server (as moto's own
ThreadedMotoServer serves moto):

- SQS (`X-Amz-Target: AmazonSQS.*`): local_sqs.LocalQueues, FIFO as SQS is, kept in the
  state folder;
- DynamoDB: moto's DynamoDB application (`create_backend_app("dynamodb")`, what
  `moto_server dynamodb` serves), with TransactWriteItems played through its single-item
  calls (local_transactions: moto's own copies every table it touches first), one
  request at a time: moto takes no lock, and two conditional updates of one item could
  both read it before either wrote (two consumers booking on the shared token bucket
  once both won on the same `tat`, and Qomon answered 429). With a state folder, after
  every write to local mode's own tables the items it touched are read back
  (BatchGetItem, in this process) and written to the journal before the answer leaves:
  a kill loses no staged event and no ledger record;
- Lambda's GetEventSourceMapping and UpdateEventSourceMapping for the one mapping local
  mode plays (local_lambda.EventSourcePoller honours its Enabled flag), so that the pause
  probe switches it with the very code it runs in AWS;
- anything else (Secrets Manager, SNS, CloudWatch, `/moto-api`): moto's dispatcher, as
  `moto_server` runs it.

Nothing of moto is patched: this is moto's server application behind our own door.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

from qomon_sync_dev.local_sqs import LocalQueues, SqsError
from qomon_sync_dev.local_transactions import Transaction, key_of

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
JSON_TYPE = "application/x-amz-json-1.0"
MAPPINGS_PATH = "/2015-03-31/event-source-mappings/"
MAPPING_UUID = "10ca1000-0000-4000-8000-00000000e5a1"
"""The UUID of local mode's one event source mapping (the sync's, on the changes queue)."""
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
TableKeys = dict[str, tuple[str, ...]]
"""Local mode's tables and their key attributes: what the journal keeps."""
ItemChange = tuple[str, str, dict[str, Any] | None]
"""(table, key as JSON, the item now stored, or None when it is gone)."""


def _auth(region: str, service: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=local/20250101/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=local"
    )


class LocalAws:
    def __init__(
        self,
        queues: LocalQueues,
        region: str,
        keep_items: Callable[[list[ItemChange]], None] | None = None,
    ) -> None:
        self.queues = queues
        self.region = region
        self.tables: TableKeys = {}
        self._keep_items = keep_items
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._dynamodb = create_backend_app("dynamodb")
        self._dynamodb_lock = threading.Lock()
        self._key_schemas: dict[str, tuple[str, ...]] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.mapping_enabled = threading.Event()
        """Local mode's event source mapping: set while Enabled (the poller receives)."""
        self.mapping_enabled.set()
        self.mapping_switches: list[bool] = []
        """Every UpdateEventSourceMapping's Enabled, in order (tests and the soak read it)."""
        self.queue_arn = ""

    # -- the server ----------------------------------------------------------------------------

    def start(self, port: int) -> str:
        self._server = make_server("127.0.0.1", port, self, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-aws", daemon=True
        )
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        service, _, action = target.partition(".")
        if service == "AmazonSQS":
            return self._sqs(action, environ, start_response)
        if str(environ.get("PATH_INFO", "")).startswith(MAPPINGS_PATH):
            return self._mapping(environ, start_response)
        if service.startswith("DynamoDB_"):
            with self._dynamodb_lock:
                if action == "TransactWriteItems":
                    body, status, headers = self._transaction(environ)
                else:
                    body, status, headers = self._call(self._dynamodb, environ)
                if action in WRITES and self._keep_items is not None and status.startswith("200"):
                    self._journal(action, environ["qomon.request"])
            start_response(status, headers.to_wsgi_list())
            return [body]
        return self._moto(environ, start_response)  # type: ignore[no-any-return]

    # -- SQS -----------------------------------------------------------------------------------

    def _sqs(self, action: str, environ: Environ, start_response: StartResponse) -> list[bytes]:
        status, answer = "200 OK", {}
        try:
            request = json.loads(_read(environ) or b"{}")
            if action == "ReceiveMessage":
                answer = self.queues.receive(request)
            else:
                answer = self.queues.call(action, request)
        except SqsError as error:
            status = f"{error.status} Bad Request"
            answer = {"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message}
        except (ValueError, KeyError, TypeError) as error:
            status = "400 Bad Request"
            answer = {"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": str(error)}
        payload = json.dumps(answer).encode()
        start_response(status, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))])
        return [payload]

    # -- Lambda's event source mapping ---------------------------------------------------------

    def _mapping(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        uuid = str(environ["PATH_INFO"])[len(MAPPINGS_PATH) :].strip("/")
        method = str(environ.get("REQUEST_METHOD", "GET"))
        status = "200 OK"
        if uuid != MAPPING_UUID:
            status = "404 Not Found"
            answer: dict[str, Any] = {
                "Type": "User",
                "message": f"The resource you requested does not exist. (UUID {uuid})",
            }
            headers = [("x-amzn-ErrorType", "ResourceNotFoundException")]
        else:
            if method == "PUT":
                request = json.loads(_read(environ) or b"{}")
                if "Enabled" in request:
                    on = bool(request["Enabled"])
                    self.mapping_switches.append(on)
                    if on:
                        self.mapping_enabled.set()
                    else:
                        self.mapping_enabled.clear()
                status = "202 Accepted"
            answer = {
                "UUID": MAPPING_UUID,
                "State": "Enabled" if self.mapping_enabled.is_set() else "Disabled",
                "BatchSize": 10,
                "EventSourceArn": self.queue_arn,
                "FunctionArn": f"arn:aws:lambda:{self.region}:123456789012:function:sync",
                "LastModified": time.time(),
            }
            headers = []
        payload = json.dumps(answer).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                *headers,
            ],
        )
        return [payload]

    # -- DynamoDB ------------------------------------------------------------------------------

    def _call(self, app: Any, environ: Environ) -> tuple[bytes, str, Any]:
        body = _read(environ)
        environ["qomon.request"] = body
        iterable, status, headers = run_wsgi_app(app, environ, buffered=True)
        return b"".join(iterable), str(status), headers

    def _transaction(self, environ: Environ) -> tuple[bytes, str, Any]:
        """TransactWriteItems, played item by item (local_transactions: moto's own would
        copy every table it touches first)."""
        body = _read(environ)
        environ["qomon.request"] = body
        status, answer = Transaction(self._moto_call, self._key_names).play(json.loads(body))
        payload = json.dumps(answer).encode()
        headers = Headers([("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))])
        if not status.startswith("200"):
            headers.add("x-amzn-ErrorType", str(answer.get("__type", "")).rpartition("#")[2])
        return payload, status, headers

    def _key_names(self, table: str) -> tuple[str, ...]:
        if table not in self._key_schemas:
            status, answer = self._moto_call("DescribeTable", {"TableName": table})
            if not status.startswith("2"):
                return ()  # no such table: each item's call says so, nothing is kept
            schema = answer.get("Table", {}).get("KeySchema", [])
            self._key_schemas[table] = tuple(k["AttributeName"] for k in schema)
        return self._key_schemas[table]

    def _moto_call(self, action: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """One DynamoDB call to moto in this process: its status line and its answer."""
        headers: dict[str, str] = {
            "X-Amz-Target": f"DynamoDB_20120810.{action}",
            "Content-Type": JSON_TYPE,
            "Authorization": _auth(self.region, "dynamodb"),
        }
        environ = EnvironBuilder(
            method="POST", path="/", data=json.dumps(payload), headers=list(headers.items())
        ).get_environ()
        body, status, _ = self._call(self._dynamodb, environ)
        return status, json.loads(body or b"{}")

    def dynamodb(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One DynamoDB call to moto in this process (the caller holds no lock, or ours)."""
        status, answer = self._moto_call(action, payload)
        if not status.startswith("200"):
            raise RuntimeError(f"local DynamoDB refused {action}: {answer}")
        return answer

    def _journal(self, action: str, body: bytes) -> None:
        """Read back the items a write touched, and keep them (or their absence)."""
        keys = [k for k in _written_keys(action, json.loads(body or b"{}"), self.tables)]
        unique = {(table, json.dumps(key, sort_keys=True)): (table, key) for table, key in keys}
        if not unique:
            return
        found: dict[tuple[str, str], dict[str, Any]] = {}
        pending = list(unique.values())
        while pending:
            chunk, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {}
            for table, key in chunk:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            answer = self.dynamodb("BatchGetItem", {"RequestItems": request})
            for table, items in answer.get("Responses", {}).items():
                for item in items:
                    key = {name: item[name] for name in self.tables[table]}
                    found[(table, json.dumps(key, sort_keys=True))] = item
        assert self._keep_items is not None
        self._keep_items([(table, key, found.get((table, key))) for table, key in unique])


def _read(environ: Environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _written_keys(
    action: str, request: dict[str, Any], tables: TableKeys
) -> Iterable[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a write request may have changed, in local mode's tables."""
    operations: list[dict[str, Any]] = []
    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        operations.append(request)
    elif action == "BatchWriteItem":
        for table, writes in (request.get("RequestItems") or {}).items():
            for write in writes:
                for inner in write.values():
                    operations.append({"TableName": table, **inner})
    elif action == "TransactWriteItems":
        for entry in request.get("TransactItems") or []:
            operations.extend(entry.values())
    for operation in operations:
        table = operation.get("TableName")
        if table not in tables:
            continue
        yield table, key_of(operation, tables[table])


def create_staging_table(dynamodb: Any, name: str) -> None:
    """template.yaml's StagingTable: keys `pk` and `sk`, expiry `expires_at`."""
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
