"""What `qomon-sync local` must not lose, kept in a folder (`.local-run/` by default).

moto keeps everything in memory, so a stop or a kill used to drop every event that had
been answered 202 but not yet applied, the dead letters and the idempotency ledger. Local
mode writes ahead, in one SQLite file (`state.sqlite3`, WAL, `synchronous=FULL`: each
commit is on disk before the call returns), all of it at its own boundaries:

- the changes queue and the dead-letter queue are local mode's own (local_sqs): a message
  is in the file before SendMessage is answered, so before the ingest's 202, and gone from
  it when it is deleted or moved by the redrive policy;
- every item written to the idempotency table (the ledger) and the staging table, read
  back after each write by local mode's AWS endpoint (local_aws) and kept here before the
  write is answered, so an event applied before a stop is not applied again when its
  message comes back, and a staged event survives the message it came in;
- the Qomon stand-in's contacts, snapshotted after every request that may write, before
  it is answered: a restart continues the same space, so a replayed event meets the
  contact it was meant for (a PATCH the sync never heard back from is already there, and
  applying it again changes nothing).

On start the queues are there as they were (what was in flight is visible again), and
the tables are filled again through DynamoDB's own PutItem. Ledger claims left "in
progress" are dropped: the process that held them is gone (a lock file makes sure only
one local mode uses a folder), so they would only delay, and then dead-letter, events
that must be retried; in AWS the same claims expire with the Lambda's timeout.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from qomon_sync_dev.standin import store as standin_store
from qomon_sync_dev.standin.app import STATE
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.server import StandinServer

STATE_FILE = "state.sqlite3"
LOCK_FILE = "lock"
STANDIN_SNAPSHOT = "qomon-standin"

SCHEMA = """
CREATE TABLE IF NOT EXISTS table_items (
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


class Journal:
    """The items of local mode's tables and the stand-in's snapshot, in the state file.
    Safe from any thread; each write is durable when it returns."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STATE_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def keep_items(self, changes: list[tuple[str, str, dict[str, Any] | None]]) -> None:
        """Items as they now are (None: gone), in one commit."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for table, key, item in changes:
                if item is None:
                    self._db.execute(
                        "DELETE FROM table_items WHERE tbl = ? AND key = ?", (table, key)
                    )
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO table_items (tbl, key, item) VALUES (?, ?, ?)",
                        (table, key, json.dumps(item, sort_keys=True)),
                    )
            self._db.execute("COMMIT")

    def items(self, table: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, item FROM table_items WHERE tbl = ? ORDER BY key", (table,)
            ).fetchall()
        return [(key, json.loads(item)) for key, item in rows]

    def save_snapshot(self, name: str, version: str, data: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots (name, version, data) VALUES (?, ?, ?)",
                (name, version, data),
            )

    def snapshot(self, name: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version, data FROM snapshots WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))


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


def restore_items(
    journal: Journal, put_item: Callable[[str, dict[str, Any]], None], *, ledger: str, staging: str
) -> tuple[int, int]:
    """Put the kept items back through PutItem, before anything runs: (ledger records put
    back, claims of the stopped run released)."""
    now_s = time.time()
    kept = released = 0
    gone: list[tuple[str, str, dict[str, Any] | None]] = []
    for table, expiry in ((ledger, "expiration"), (staging, "expires_at")):
        for key, item in journal.items(table):
            claimed = item.get("status", {}).get("S") == "INPROGRESS"
            if claimed or float(item.get(expiry, {}).get("N", "inf")) < now_s:
                # In progress: its holder died with the last run. Expired: Powertools would
                # ignore it; DynamoDB's TTL would have deleted it.
                released += claimed
                gone.append((table, key, None))
                continue
            put_item(table, item)
            kept += table == ledger
    journal.keep_items(gone)
    return kept, released


@dataclass(frozen=True)
class Left:
    """What a stop left behind: events not yet applied, dead letters, and where they are."""

    waiting: int
    dead_letters: int
    state_dir: Path | None

    def summary(self) -> str:
        """The stop's last words: how many events wait, where, and what to do next."""
        where = f"{self.state_dir}{os.sep}" if self.state_dir is not None else ""
        if self.state_dir is None:
            if not (self.waiting or self.dead_letters):
                return "no event is waiting: every accepted event was applied or dead-lettered"
            return (
                f"{counted(self.waiting, 'event')} still waiting and "
                f"{counted(self.dead_letters, 'dead letter')} are dropped: this run kept "
                "nothing (--ephemeral)"
            )
        if self.waiting:
            head = (
                f"{counted(self.waiting, 'event')} still waiting; they are kept in {where} and "
                "will be applied when you start `qomon-sync local` again"
            )
        else:
            head = "no event is waiting: every accepted event was applied or dead-lettered"
        if self.dead_letters:
            head += (
                f". {counted(self.dead_letters, 'dead letter')} kept in {where}: once local "
                "mode runs again, `qomon-sync dlq list --local` shows them and why"
            )
        return head


# -- the stand-in ------------------------------------------------------------------------


def _store_version() -> str:
    """The stand-in's store code: a snapshot taken by other code is not loaded."""
    source = Path(standin_store.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]


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
                        STANDIN_SNAPSHOT, self._version, pickle.dumps(app[STATE].store)
                    )

        app.middlewares.append(keep_writes)
        super()._serve(app, ready, failure)
