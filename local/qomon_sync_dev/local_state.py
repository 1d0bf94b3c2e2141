"""What `qomon-sync local` must not lose, kept in a folder (`.local-run/` by default).

moto keeps everything in memory, so a stop or a kill used to drop every event that had
been answered 202 but not yet applied, the dead letters and the idempotency ledger. Local
mode now writes ahead, in one SQLite file (`state.sqlite3`, WAL, `synchronous=FULL`: each
commit is on disk before the call returns):

- every message moto's FIFO queue or dead-letter queue takes, with its group, its
  deduplication id, its attributes and its receive count, and its removal when it is
  deleted, purged or moved by the redrive policy. The hooks sit on moto's backend, in
  this process, so the commit happens before moto answers SendMessage: the ingest
  handler's 202 comes after it. A kill at any moment leaves the file saying exactly what
  the queues held;
- every write to the idempotency table (the ledger), item by item, so an event applied
  before a stop is not applied again when its message comes back;
- the Qomon stand-in's contacts, snapshotted after every request that may write, before
  it is answered: a restart continues the same space, so a replayed event meets the
  contact it was meant for (a PATCH the sync never heard back from is already there, and
  applying it again changes nothing).

On start the queues and the table are filled again from the file, in order, with the
same message ids (the dead-letter queue deduplicates on them). Ledger claims left "in
progress" are dropped: the process that held them is gone (a lock file makes sure only
one local mode uses a folder), so they would only delay, and then dead-letter, events
that must be retried; in AWS the same claims expire with the Lambda's timeout.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import hashlib
import io
import itertools
import json
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.sqs.models import Message, Queue, SQSBackend, sqs_backends

from qomon_sync_dev.standin import store as standin_store
from qomon_sync_dev.standin.app import STATE
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

STATE_FILE = "state.sqlite3"
LOCK_FILE = "lock"
STANDIN_SNAPSHOT = "qomon-standin"

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    group_id TEXT,
    deduplication_id TEXT,
    sequence_number TEXT,
    sent_timestamp INTEGER,
    attributes TEXT NOT NULL,
    system_attributes TEXT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_timestamp INTEGER
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, seq);
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    data BLOB NOT NULL
);
"""


class StateInUse(RuntimeError):
    """Another local mode holds the state folder."""


class StateLock:
    """An exclusive lock on the state folder, released by the system when the process
    ends, however it ends (SIGKILL included)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_FILE
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise StateInUse(
                f"another qomon-sync local (pid {holder}) is using {folder}; stop it first, "
                "or give this one its own --state-dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def wipe(folder: Path) -> None:
    """Forget what a previous run kept (`--fresh`): the queues, the ledger, the stand-in."""
    for name in (STATE_FILE, f"{STATE_FILE}-wal", f"{STATE_FILE}-shm"):
        (folder / name).unlink(missing_ok=True)


@dataclass(frozen=True)
class Kept:
    """What a state folder holds: messages per queue, ledger items per table."""

    messages: dict[str, int]
    items: dict[str, int]


class Journal:
    """The SQLite file. Every method is safe from any thread; writes inside one
    `transaction()` are committed together, and the commit is durable when it returns."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.queues: set[str] = set()
        self.tables: set[str] = set()
        self._lock = threading.RLock()
        self._depth = 0
        self._open = False
        self._db = sqlite3.connect(
            folder / STATE_FILE, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        (top,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()
        self._seq = itertools.count(int(top) + 1)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                # Commit whatever was written even when moto raised half-way: the file
                # must say what moto now holds.
                if self._depth == 0 and self._open:
                    self._open = False
                    self._db.execute("COMMIT")

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> None:
        with self.transaction():
            if not self._open:
                self._db.execute("BEGIN IMMEDIATE")
                self._open = True
            self._db.execute(sql, parameters)

    # -- queues ---------------------------------------------------------------------------

    def put_message(self, queue: str, message: Message) -> None:
        self._write(
            """INSERT INTO messages (message_id, seq, queue, body, group_id, deduplication_id,
                   sequence_number, sent_timestamp, attributes, system_attributes,
                   receive_count, first_receive_timestamp)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (message_id) DO UPDATE SET queue = excluded.queue,
                   receive_count = excluded.receive_count""",
            (
                message.id,
                next(self._seq),
                queue,
                message.body,
                message.group_id,
                message.deduplication_id,
                message.sequence_number,
                message.sent_timestamp,
                _dump(message.message_attributes),
                _dump(message.system_attributes),
                message.approximate_receive_count,
                message.approximate_first_receive_timestamp,
            ),
        )

    def forget_message(self, message_id: str) -> None:
        self._write("DELETE FROM messages WHERE message_id = ?", (message_id,))

    def forget_queue(self, queue: str) -> None:
        self._write("DELETE FROM messages WHERE queue = ?", (queue,))

    def received(self, message: Message) -> None:
        self._write(
            """UPDATE messages SET receive_count = ?, first_receive_timestamp = ?
               WHERE message_id = ?""",
            (
                message.approximate_receive_count,
                message.approximate_first_receive_timestamp,
                message.id,
            ),
        )

    def messages(self, queue: str) -> list[Message]:
        with self._lock:
            rows = self._db.execute(
                """SELECT message_id, body, group_id, deduplication_id, sequence_number,
                          sent_timestamp, attributes, system_attributes, receive_count,
                          first_receive_timestamp
                   FROM messages WHERE queue = ? ORDER BY seq""",
                (queue,),
            ).fetchall()
        restored = []
        for row in rows:
            message = Message(row[0], row[1], _load(row[7]) or None)
            message.group_id = row[2]
            message.deduplication_id = row[3]
            message.sequence_number = row[4]
            message.sent_timestamp = row[5]
            message.message_attributes = _load(row[6])
            message.approximate_receive_count = row[8]
            message.approximate_first_receive_timestamp = row[9]
            restored.append(message)
        return restored

    # -- the ledger -----------------------------------------------------------------------

    def put_item(self, table: str, key: str, item: dict[str, Any] | None) -> None:
        if item is None:
            self._write("DELETE FROM items WHERE tbl = ? AND key = ?", (table, key))
        else:
            self._write(
                "INSERT OR REPLACE INTO items (tbl, key, item) VALUES (?, ?, ?)",
                (table, key, _dump(item)),
            )

    def items(self, table: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, item FROM items WHERE tbl = ? ORDER BY key", (table,)
            ).fetchall()
        return [(key, _load(item)) for key, item in rows]

    # -- snapshots (the stand-in) -----------------------------------------------------------

    def save_snapshot(self, name: str, version: str, data: bytes) -> None:
        self._write(
            "INSERT OR REPLACE INTO snapshots (name, version, data) VALUES (?, ?, ?)",
            (name, version, data),
        )

    def snapshot(self, name: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version, data FROM snapshots WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def kept(self) -> Kept:
        with self._lock:
            messages = dict(
                self._db.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue").fetchall()
            )
            items = dict(
                self._db.execute("SELECT tbl, COUNT(*) FROM items GROUP BY tbl").fetchall()
            )
        return Kept(messages=messages, items=items)


def _dump(value: Any) -> str:
    return json.dumps(value, default=_bytes_out, sort_keys=True)


def _load(text: str) -> Any:
    return json.loads(text, object_hook=_bytes_in)


def _bytes_out(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": value.hex()}
    raise TypeError(f"cannot keep a {type(value).__name__} in the local state")


def _bytes_in(value: dict[str, Any]) -> Any:
    return bytes.fromhex(value["__bytes__"]) if set(value) == {"__bytes__"} else value


# -- the hooks on moto's backends --------------------------------------------------------

_journal: Journal | None = None


def attach(journal: Journal) -> None:
    """From now on, every change to the journal's queues and tables is written ahead."""
    global _journal  # noqa: PLW0603 - moto's backends are process-wide, so is the journal
    install_hooks()
    _journal = journal


def detach() -> None:
    global _journal  # noqa: PLW0603
    _journal = None


def _queue_journal(queue_name: str) -> Journal | None:
    journal = _journal
    return journal if journal is not None and queue_name in journal.queues else None


def install_hooks() -> None:
    """Wrap moto's queue and table operations (once per process; inert until `attach`)."""
    if getattr(Queue.add_message, "_qomon_sync_journal", False):
        return
    _hook(Queue, "add_message", _add_message)
    _hook(Queue, "delete_message", _delete_message)
    _hook(SQSBackend, "receive_message", _receive_message)
    _hook(SQSBackend, "purge_queue", _purge_queue)
    for name in ("send_message_batch", "delete_message_batch"):
        _hook(SQSBackend, name, _one_commit)
    for name in ("put_item", "update_item", "delete_item"):
        _hook(DynamoDBBackend, name, _item_write)
    _hook(DynamoDBBackend, "transact_write_items", _transact_write)


def _hook(cls: type, name: str, wrapper: Callable[..., Any]) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def hooked(*args: Any, **kwargs: Any) -> Any:
        return wrapper(original, *args, **kwargs)

    hooked._qomon_sync_journal = True  # type: ignore[attr-defined]
    setattr(cls, name, hooked)


def _add_message(original: Any, queue: Queue, message: Message) -> None:
    journal = _queue_journal(queue.name)
    if journal is None:
        return original(queue, message)  # type: ignore[no-any-return]
    with journal.transaction():
        original(queue, message)
        if any(m is message for m in reversed(queue._messages)):
            journal.put_message(queue.name, message)
        else:
            # moto's FIFO deduplication dropped it; if it was being moved here by the
            # redrive policy, moto has let it go, and so does the journal.
            journal.forget_message(message.id)
    return None


def _delete_message(original: Any, queue: Queue, receipt_handle: str) -> None:
    journal = _queue_journal(queue.name)
    if journal is None:
        return original(queue, receipt_handle)  # type: ignore[no-any-return]
    with journal.transaction():
        gone = [m.id for m in queue._messages if m.had_receipt_handle(receipt_handle)]
        original(queue, receipt_handle)
        for message_id in gone:
            journal.forget_message(message_id)
    return None


def _receive_message(
    original: Any, backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any
) -> Any:
    journal = _queue_journal(queue_name)
    if journal is None:
        return original(backend, queue_name, *args, **kwargs)
    wait_s = kwargs.get("wait_seconds_timeout", args[1] if len(args) > 1 else 0)
    # A short poll holds the journal for the whole receive (moto's redrive moves messages
    # to the dead-letter queue in it); a long poll must not block senders while it waits.
    hold = journal.transaction() if not wait_s else contextlib.nullcontext()
    with hold:
        messages = original(backend, queue_name, *args, **kwargs)
        with journal.transaction():
            for message in messages:
                journal.received(message)
    return messages


def _purge_queue(original: Any, backend: SQSBackend, queue_name: str) -> None:
    journal = _queue_journal(queue_name)
    if journal is None:
        return original(backend, queue_name)  # type: ignore[no-any-return]
    with journal.transaction():
        original(backend, queue_name)
        journal.forget_queue(queue_name)
    return None


def _one_commit(original: Any, backend: SQSBackend, queue_name: str, *args: Any) -> Any:
    """A batch is written ahead as one transaction: one commit, not ten."""
    journal = _queue_journal(queue_name)
    if journal is None:
        return original(backend, queue_name, *args)
    with journal.transaction():
        return original(backend, queue_name, *args)


def _item_write(
    original: Any,
    backend: DynamoDBBackend,
    table_name: str,
    attributes: Any,
    *args: Any,
    **kwargs: Any,
) -> Any:
    journal = _journal
    if journal is None or table_name not in journal.tables:
        return original(backend, table_name, attributes, *args, **kwargs)
    with journal.transaction():
        # Held across the write and the read back, so the file ends with the last write.
        answer = original(backend, table_name, attributes, *args, **kwargs)
        _keep_item(journal, backend, table_name, attributes)
    return answer


def _keep_item(
    journal: Journal, backend: DynamoDBBackend, table_name: str, attributes: dict[str, Any]
) -> None:
    """Write the item now stored under `attributes`' key (or its absence) to the journal."""
    table = backend.get_table(table_name)
    names = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
    key = {name: attributes[name] for name in names}
    item = backend.get_item(table_name, key)
    # A one-part key is kept as before (its value alone), so older state folders still load.
    kept = key[names[0]] if len(names) == 1 else key
    journal.put_item(
        table_name,
        json.dumps(kept, sort_keys=True),
        None if item is None else item.to_json()["Attributes"],
    )


def _transact_write(original: Any, backend: DynamoDBBackend, items: list[Any]) -> Any:
    """A transaction may roll back what its puts wrote: the journal keeps what is left."""
    journal = _journal
    if journal is None:
        return original(backend, items)
    with journal.transaction():
        try:
            return original(backend, items)
        finally:
            for entry in items:
                _, operation = next(iter(entry.items()))
                name = operation.get("TableName")
                if name in journal.tables:
                    _keep_item(journal, backend, name, operation.get("Item") or operation["Key"])


# -- restoring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    waiting: int
    dead_letters: int
    ledger: int
    claims_released: int

    def summary(self, folder: Path) -> str:
        where = f"{folder}{os.sep}"
        if not (self.waiting or self.dead_letters or self.ledger or self.claims_released):
            return f"state kept in {where} (nothing from an earlier run)"
        released = (
            f" ({counted(self.claims_released, 'claim')} of the stopped run released)"
            if self.claims_released
            else ""
        )
        return (
            f"kept in {where} from the last run: {counted(self.waiting, 'event')} waiting, "
            f"{counted(self.dead_letters, 'dead letter')}, "
            f"{counted(self.ledger, 'ledger record')}{released}"
        )


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def restore(
    journal: Journal,
    *,
    account_id: str,
    region: str,
    queue: str,
    dead_letter_queue: str,
    table: str,
    staging_table: str | None = None,
) -> Restored:
    """Put back what the journal kept, before anything can send or receive."""
    sqs = sqs_backends[account_id][region]
    counts = {}
    for name in (queue, dead_letter_queue):
        target = sqs.get_queue(name)
        kept = journal.messages(name)
        with target._messages_lock:
            target._messages.extend(kept)
        counts[name] = len(kept)
    dynamodb = dynamodb_backends[account_id][region]
    now_s = time.time()
    ledger = released = 0
    for key, item in journal.items(table):
        expires = float(item.get("expiration", {}).get("N", "inf"))
        if item.get("status", {}).get("S") == "INPROGRESS" or expires < now_s:
            # In progress: its holder died with the last run. Expired: Powertools would
            # ignore it; DynamoDB's TTL would have deleted it.
            released += item.get("status", {}).get("S") == "INPROGRESS"
            journal.put_item(table, key, None)
            continue
        dynamodb.put_item(table, item)
        ledger += 1
    if staging_table is not None:
        # Staged events, flush markers' heads, the shared bucket and caches: all kept
        # (what expired, DynamoDB's TTL would have deleted).
        for key, item in journal.items(staging_table):
            if float(item.get("expires_at", {}).get("N", "inf")) < now_s:
                journal.put_item(staging_table, key, None)
                continue
            dynamodb.put_item(staging_table, item)
    return Restored(counts[queue], counts[dead_letter_queue], ledger, released)


# -- the stand-in ------------------------------------------------------------------------


def _store_version() -> str:
    """The stand-in's store code: a snapshot taken by other code is not loaded."""
    source = Path(standin_store.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]


class _StorePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # Pickling itertools.count is deprecated from Python 3.12: keep where it stands.
        if isinstance(obj, itertools.count):
            state = ast.literal_eval(repr(obj)[len("count") :])
            return itertools.count, state if isinstance(state, tuple) else (state,)
        return NotImplemented


def _pickled(value: Any) -> bytes:
    buffer = io.BytesIO()
    _StorePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


class DurableStandin(StandinServer):
    """The Qomon stand-in, its contacts kept in the journal: snapshotted after every
    request that may write, before the answer leaves, and loaded again on start."""

    def __init__(self, config: StandinConfig, journal: Journal, port: int = 0) -> None:
        super().__init__(config, port=port)
        self._journal = journal
        self._version = _store_version()
        self.restored = False
        self.note = ""
        """Why the kept contacts were not loaded, if they were not."""

    def _serve(
        self, app: web.Application, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        state = app[STATE]
        kept = self._journal.snapshot(STANDIN_SNAPSHOT)
        if kept is not None and kept[0] == self._version:
            state.store = pickle.loads(kept[1])  # noqa: S301 - our own file, our own classes
            self.restored = True
        elif kept is not None:
            self.note = (
                "the stand-in's code changed since its contacts were kept: it starts from "
                "its seed again"
            )

        @web.middleware
        async def keep_writes(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            finally:
                if request.method not in ("GET", "HEAD", "OPTIONS"):
                    self._journal.save_snapshot(
                        STANDIN_SNAPSHOT, self._version, _pickled(app[STATE].store)
                    )

        app.middlewares.append(keep_writes)
        super()._serve(app, ready, failure)
