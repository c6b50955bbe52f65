"""History in SQLite, the embedded default: one file, group commits off the event loop.

A writer thread takes whatever has been appended since its last commit and stores
it in one transaction (group commit), then tells the event loop which appends are
durable. Reads run on a second thread with their own connection (WAL mode lets
them proceed while the writer commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuichat.protocol import Message, PrivateMessage
from tuichat.protocol.auth import new_server_id
from tuichat.server.history.base import (
    HistoryStore,
    LoadedState,
    Record,
    RoomRecord,
    StoredMessage,
)

log = logging.getLogger("tuichat.server")

MAX_BATCH = 10_000
"""Most appends committed in one transaction."""

MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE rooms (
        room TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL
    );
    CREATE TABLE messages (
        room TEXT NOT NULL,
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        text TEXT NOT NULL,
        ts INTEGER NOT NULL,
        action INTEGER NOT NULL,
        client_id TEXT,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID;
    CREATE TABLE privates (
        pid INTEGER PRIMARY KEY,
        sender TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        target TEXT NOT NULL,
        target_key TEXT NOT NULL,
        text TEXT NOT NULL,
        ts INTEGER NOT NULL,
        action INTEGER NOT NULL,
        client_id TEXT
    );
    CREATE INDEX privates_by_sender ON privates (sender_key, pid);
    CREATE INDEX privates_by_target ON privates (target_key, pid);
    CREATE TABLE tokens (
        user_key TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL
    );
    """,
    # version 2: names that belong to the holder of a key
    """
    CREATE TABLE identities (
        name_key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    """,
    # version 3: names belong to public keys (`ed25519:<key>`); a version-2 registration is
    # kept as `sha256:<hash of its secret>` until its owner moves it to a key pair
    """
    ALTER TABLE identities RENAME COLUMN key_hash TO owner;
    UPDATE identities SET owner = 'sha256:' || owner;
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)
"""Forward migrations: entry N brings a database from `user_version` N to N + 1."""

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer tuichat."""


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open the database with the settings every connection uses."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations the database has not had yet; return the schema version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the database has schema version {version}; this tuichat knows up to {SCHEMA_VERSION}"
        )
    for number in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


@dataclass
class _Append:
    records: Sequence[Record]
    tokens: Sequence[tuple[str, str]]
    durable: Callable[[], None] | None
    loop: asyncio.AbstractEventLoop | None
    identities: Sequence[tuple[str, str, str, int]] = ()


_STOP = object()


class SQLiteHistory(HistoryStore):
    """History in one SQLite file; see the module docstring."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_conn = connect(self.path, synchronous)
        migrate(self._write_conn)
        self._read_conn = connect(self.path, synchronous) if self.path != ":memory:" else None
        self._queue: queue.SimpleQueue[_Append | object] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="history-writer", daemon=True)
        self._writer.start()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="history-reader")
        self.commits = 0
        self.appends = 0

    # --- loading -----------------------------------------------------------

    def load(self, recent_ids: int) -> LoadedState:
        conn = self._write_conn
        rooms: dict[str, RoomRecord] = {}
        seqs = dict(conn.execute("SELECT room, MAX(seq) FROM messages GROUP BY room").fetchall())
        for room, epoch in conn.execute("SELECT room, epoch FROM rooms").fetchall():
            recent: dict[tuple[str, str], tuple[int, int]] = {}
            rows = conn.execute(
                "SELECT sender_key, client_id, seq, ts FROM messages"
                " WHERE room = ? AND client_id IS NOT NULL ORDER BY seq DESC LIMIT ?",
                (room, recent_ids),
            ).fetchall()
            for sender_key, client_id, seq, ts in reversed(rows):
                recent[(sender_key, client_id)] = (seq, ts)
            rooms[room] = RoomRecord(epoch=epoch, seq=seqs.get(room, 0), recent_ids=recent)
        (last_private,) = conn.execute("SELECT COALESCE(MAX(pid), 0) FROM privates").fetchone()
        tokens = dict(conn.execute("SELECT user_key, token_hash FROM tokens").fetchall())
        identities = dict(conn.execute("SELECT name_key, owner FROM identities").fetchall())
        conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('server_id', ?)", (new_server_id(),)
        )  # the first start of a new database gives the chat its identity
        (server_id,) = conn.execute("SELECT value FROM meta WHERE name = 'server_id'").fetchone()
        recent_privates = {
            (sender_key, client_id): PrivateMessage(
                sender=sender, to=target, text=text, ts=ts, action=bool(action), pid=pid
            )
            for pid, sender, sender_key, target, text, ts, action, client_id in reversed(
                conn.execute(
                    "SELECT pid, sender, sender_key, target, text, ts, action, client_id"
                    " FROM privates WHERE client_id IS NOT NULL ORDER BY pid DESC LIMIT ?",
                    (recent_ids,),
                ).fetchall()
            )
        }
        return LoadedState(
            rooms=rooms,
            last_private_id=last_private,
            tokens=tokens,
            identities=identities,
            recent_privates=recent_privates,
            server_id=server_id,
        )

    # --- writing -----------------------------------------------------------

    def append(self, records: Sequence[Record], durable: Callable[[], None]) -> None:
        self._queue.put(_Append(records, (), durable, asyncio.get_running_loop()))

    def save_token(self, user_key: str, token_hash: str) -> None:
        self._queue.put(_Append((), ((user_key, token_hash),), None, None))

    def save_identity(self, name_key: str, name: str, owner: str, now: int) -> None:
        self._queue.put(_Append((), (), None, None, ((name_key, name, owner, now),)))

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            appends = [item for item in batch if isinstance(item, _Append)]
            try:
                stored = self._commit(appends)
            except Exception:  # the writer must outlive any one batch
                log.exception("history batch failed in %s; not acknowledged", self.path)
                stored = False
            if stored:
                self._report(appends)
            if stop:
                return

    def _commit(self, appends: list[_Append]) -> bool:
        rooms: list[tuple[str, int]] = []
        messages: list[tuple[Any, ...]] = []
        privates: list[tuple[Any, ...]] = []
        tokens: list[tuple[str, str]] = []
        identities: list[tuple[str, str, str, int]] = []
        for append in appends:
            tokens.extend(append.tokens)
            identities.extend(append.identities)
            for record in append.records:
                if isinstance(record, StoredMessage):
                    m = record.message
                    if m.seq == 1:
                        rooms.append((m.room, record.epoch))
                    messages.append(
                        (m.room, m.seq, m.sender, record.sender_key, m.text, m.ts, m.action,
                         record.client_id or None)
                    )  # fmt: skip
                else:
                    p = record.message
                    privates.append(
                        (p.pid, p.sender, record.sender_key, p.to, record.target_key, p.text,
                         p.ts, p.action, record.client_id or None)
                    )  # fmt: skip
        delay = 0.1
        while True:
            try:
                conn = self._write_conn
                conn.execute("BEGIN")
                for statement, rows in (
                    ("INSERT OR IGNORE INTO rooms VALUES (?, ?)", rooms),
                    (f"INSERT INTO messages VALUES ({_marks(8)})", messages),
                    (f"INSERT INTO privates VALUES ({_marks(9)})", privates),
                    ("INSERT OR REPLACE INTO tokens VALUES (?, ?)", tokens),
                    ("INSERT OR REPLACE INTO identities VALUES (?, ?, ?, ?)", identities),
                ):
                    if rows:  # each call hands the interpreter lock back and forth: skip empties
                        conn.executemany(statement, rows)
                conn.execute("COMMIT")
                break
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError):
                # a bug, and retrying cannot help: never acknowledge what was not stored
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.exception("history batch refused by %s; not acknowledged", self.path)
                return False
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.exception("cannot write history to %s; retrying in %.1f s", self.path, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.commits += 1
        self.appends += len(appends)
        return True

    @staticmethod
    def _report(appends: list[_Append]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
        for append in appends:
            if append.durable is not None and append.loop is not None:
                by_loop.setdefault(append.loop, []).append(append.durable)
        for loop, callbacks in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_call_all, callbacks)

    # --- reading -----------------------------------------------------------

    async def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._read_conn or self._write_conn
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, lambda: conn.execute(sql, args).fetchall())

    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        rows = await self._read(
            "SELECT room, seq, sender, text, ts, action FROM messages"
            " WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (room, before if before > 0 else 2**62, limit),
        )
        return [_message(row) for row in reversed(rows)]

    async def after(self, room: str, after: int, upto: int) -> list[Message]:
        rows = await self._read(
            "SELECT room, seq, sender, text, ts, action FROM messages"
            " WHERE room = ? AND seq > ? AND seq <= ? ORDER BY seq",
            (room, after, upto),
        )
        return [_message(row) for row in rows]

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        rows = await self._read(
            "SELECT sender, target, text, ts, action, pid FROM privates"
            " WHERE pid > ? AND (sender_key = ? OR target_key = ?) ORDER BY pid LIMIT ?",
            (after, user_key, user_key, limit),
        )
        return [
            PrivateMessage(sender=s, to=t, text=x, ts=ts, action=bool(a), pid=pid)
            for s, t, x, ts, a, pid in rows
        ]

    # --- closing -----------------------------------------------------------

    async def close(self) -> None:
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._reader.shutdown(wait=True)
        if self._read_conn is not None:
            self._read_conn.close()
        self._write_conn.close()


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _call_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # one failing callback must not cost the others their acks
            log.exception("acknowledging stored history failed")


def _message(row: tuple[Any, ...]) -> Message:
    room, seq, sender, text, ts, action = row
    return Message(room=room, seq=seq, sender=sender, text=text, ts=ts, action=bool(action))
