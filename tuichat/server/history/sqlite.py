"""History in SQLite, the embedded default: one file, group commits off the event loop.

A writer thread takes whatever has been appended since its last commit and stores
it in one transaction (group commit), then tells the event loop which appends are
durable; read markers go the same way, in order with the messages. Reads run on a
second thread with their own connection (WAL mode lets them proceed while the
writer commits).

The file belongs to one process: it is opened with SQLite's `unix-excl` VFS, which
takes a lock no other process can share for as long as the server runs (a second
server is refused at start) and keeps the WAL index in this process's memory, so
nothing outside can break it (there is no `-shm` file). A write that fails (a full
disk, a deleted file) fails its appends and every one behind it, and the store
refuses appends for a few seconds before it tries again: nobody waits for a write
that cannot happen, and nothing is acknowledged that is not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tuichat.chat import verbs
from tuichat.chat.names import name_key, name_keys, rekey, room_key
from tuichat.chat.rules import ModEvent, Rule
from tuichat.chat.search import SearchQuery
from tuichat.protocol import Message, ModEntry, PrivateMessage, RoomEvent, SearchHit, Update
from tuichat.protocol.auth import new_server_id
from tuichat.server.broker.base import MAX_MARKERS, Held, ReadMarker, Sees
from tuichat.server.history import search_index
from tuichat.server.history.base import (
    HistoryFailing,
    HistoryRefused,
    HistoryStore,
    LoadedState,
    Record,
    RoomRecord,
    StoredMessage,
    StoredRead,
    merged,
)
from tuichat.server.history.search_index import SearchIndex
from tuichat.server.ownership import MAX_TOKENS
from tuichat.server.rekey import STRANDED, Registration, plan, split_user_key

log = logging.getLogger("tuichat.server")

T = TypeVar("T")

CHECKPOINT_TRIES = 50
"""Tries (10 ms apart) to truncate the WAL after a delete, while reads hold it."""
EDITED = 1
"""A message's `state`: its text was edited."""
DELETED = 2
"""A message's `state`: deleted (its text is "")."""
MOD_LOG_KEPT = 100_000
"""Entries of the moderation log kept (the newest)."""
MAX_BATCH = 10_000
"""Most appends committed in one transaction."""
TOKEN_LINGER = 0.005
"""Seconds a resume token waits for others to share its commit."""
LOCK_WAIT = 1.0
"""Seconds to wait, at start, for another process to let go of the file."""
FIRST_PAUSE = 0.5
"""Seconds appends are refused after a failed write, before the next try (doubling)..."""
LAST_PAUSE = 5.0
"""...up to this."""
CLOSE_TIMEOUT = 5.0
"""Seconds `close` waits for the writer to finish what it has."""
REPEAT_LOG = 60.0
"""Seconds before the same write failure is logged again."""

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
    # version 4: a sender's newest client ids in a room, read back when they post there
    """
    CREATE INDEX messages_by_sender ON messages (room, sender_key, seq)
        WHERE client_id IS NOT NULL;
    """,
    # version 5: read markers (each user's most recently moved), and the private messages
    # between two users, read by either of them
    """
    CREATE TABLE reads (
        user_key TEXT NOT NULL,
        conversation TEXT NOT NULL,
        label TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        moved_at INTEGER NOT NULL,
        PRIMARY KEY (user_key, conversation)
    ) WITHOUT ROWID;
    CREATE INDEX reads_by_time ON reads (user_key, moved_at);
    CREATE INDEX privates_between ON privates (target_key, sender_key, pid);
    """,
    # version 6: names compared with Persian and Arabic folding (every key made anew from the
    # names, by `_fold_persian`), and the comparison key each room holds (NULL: a room whose
    # name looks like an older room's, which holds the key)
    """
    CREATE TABLE room_keys (
        room TEXT PRIMARY KEY,
        key TEXT UNIQUE
    );
    """,
    # version 7: rooms' owners, ops, topics, invitations, bans and mutes, server-wide bans and
    # each user's ignored names (`tuichat.chat.rules`), the moderation log, and private
    # messages hidden from their target (who ignores the sender)
    """
    CREATE TABLE rules (
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (scope, kind, subject)
    ) WITHOUT ROWID;
    CREATE TABLE modlog (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        room TEXT NOT NULL,
        action TEXT NOT NULL,
        name TEXT NOT NULL,
        by TEXT NOT NULL,
        reason TEXT NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE INDEX modlog_by_room ON modlog (room, id);
    ALTER TABLE privates ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
    """,
    # version 8: verbs on messages (a row of their own in the room's order: `verb`, its
    # `target`; a react's `state` 1 given, 0 taken back), replies (`target` of a message), a
    # message's `state` (1 edited, 2 deleted), reactions as they are now, and the search index
    # (`tuichat.server.history.search_index`: every message indexed by `_index_history`)
    """
    ALTER TABLE messages ADD COLUMN verb TEXT;
    ALTER TABLE messages ADD COLUMN target INTEGER;
    ALTER TABLE messages ADD COLUMN state INTEGER;
    ALTER TABLE messages ADD COLUMN sid INTEGER;
    ALTER TABLE privates ADD COLUMN sid INTEGER;
    CREATE INDEX verbs_by_target ON messages (room, target) WHERE verb IS NOT NULL;
    CREATE TABLE reactions (
        room TEXT NOT NULL,
        seq INTEGER NOT NULL,
        text TEXT NOT NULL,
        user_key TEXT NOT NULL,
        name TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (room, seq, text, user_key)
    ) WITHOUT ROWID;
    CREATE TABLE found (
        sid INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
    """,
)
"""Forward migrations: entry N brings a database from `user_version` N to N + 1 (with the step
of `STEPS` N after it, in the same transaction)."""

SCHEMA_VERSION = len(MIGRATIONS)

HELD = (
    "another process holds it (a tuichat-server already running on it?); stop that one, "
    "or give this server another --db"
)


class SchemaTooNew(HistoryRefused):
    """The database was written by a newer tuichat."""


def connect(
    path: str | Path, synchronous: str = "FULL", *, timeout: float = 5.0
) -> sqlite3.Connection:
    """Open the database with the settings every connection uses (see the module docstring)."""
    if str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    else:
        uri = Path(path).absolute().as_uri() + "?vfs=unix-excl"
        conn = sqlite3.connect(
            uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
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
            step = STEPS.get(number)
            if step is not None:
                step(conn)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def _fold_persian(conn: sqlite3.Connection) -> None:
    """Version 6: every comparison key made anew from the names stored with it (see
    `tuichat.server.rekey`), and a comparison key for each stored room (the oldest of rooms
    whose names look alike holds it)."""
    registrations: dict[tuple[str, str], Registration] = {}
    for key, name, owner, created, rowid in conn.execute(
        "SELECT name_key, name, owner, created, rowid FROM identities ORDER BY created, rowid"
    ).fetchall():
        registration = registrations.get((name, owner))
        if registration is None:
            new_keys = tuple(dict.fromkeys(name_keys(name)))
            order = (created, f"{rowid:020d}")
            registration = registrations[(name, owner)] = Registration(
                name, owner, [], new_keys, order
            )
        registration.old_keys.append(key)
    named: dict[str, set[str]] = {}
    """Old user key → the names stored with it."""
    for query in (
        "SELECT DISTINCT sender_key, sender FROM messages",
        "SELECT DISTINCT sender_key, sender FROM privates",
        "SELECT DISTINCT target_key, target FROM privates",
        "SELECT DISTINCT substr(conversation, 2), substr(label, 2) FROM reads"
        " WHERE conversation LIKE '@%'",
    ):
        for key, name in conn.execute(query).fetchall():
            named.setdefault(key, set()).add(name)
    for registration in registrations.values():
        for key in registration.old_keys:
            named.setdefault(key, set()).add(registration.name)
    recent: dict[str, int] = {}
    for rowid, key in conn.execute("SELECT rowid, user_key FROM tokens").fetchall():
        named.setdefault(key, set())
        recent[key] = rowid
    for (user_key,) in conn.execute("SELECT DISTINCT user_key FROM reads").fetchall():
        named.setdefault(split_user_key(user_key)[0], set())
    user_keys: dict[str, str] = {}
    for old, names in named.items():
        news = {name_key(name) for name in names}
        user_keys[old] = old if old in news else min(news) if news else rekey(old)
    spelled = {old: min(names) for old, names in named.items() if names}
    decided = plan(
        registrations.values(), user_keys, recent=lambda key: recent.get(key, 0), names=spelled
    )
    conn.execute("DELETE FROM identities")
    conn.executemany(
        "INSERT OR IGNORE INTO identities VALUES (?, ?, ?, ?)",
        [(key, r.name, r.owner, r.order[0]) for key, r in decided.identities.items()],
    )
    moves = decided.moves
    if moves:
        conn.execute("CREATE TEMP TABLE moves (old TEXT PRIMARY KEY, new TEXT NOT NULL)")
        conn.executemany("INSERT INTO moves VALUES (?, ?)", moves.items())
        for table, column in (
            ("messages", "sender_key"), ("privates", "sender_key"), ("privates", "target_key"),
        ):  # fmt: skip
            conn.execute(
                f"UPDATE {table} SET {column} = (SELECT new FROM moves WHERE old = {column})"
                f" WHERE {column} IN (SELECT old FROM moves)"
            )
        tokens = conn.execute(
            "SELECT user_key, token_hash FROM tokens WHERE user_key IN (SELECT old FROM moves)"
            " ORDER BY rowid"
        ).fetchall()
        conn.execute("DELETE FROM tokens WHERE user_key IN (SELECT old FROM moves)")
        conn.executemany(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?)",
            [(moves[key], hashed) for key, hashed in tokens],
        )
        _move_reads(conn, moves)
        conn.execute("DROP TABLE moves")
    holders: dict[str, str] = {}
    rows: list[tuple[str, str | None]] = []
    for (room,) in conn.execute(
        "SELECT room FROM rooms ORDER BY"
        " (SELECT ts FROM messages WHERE messages.room = rooms.room AND seq = 1), rowid"
    ).fetchall():
        key = room_key(room)
        holder = holders.setdefault(key, room)
        if holder != room:
            log.warning(
                "room %s keeps its name, but joins of names that look like it go to %s, which "
                "is older (the comparison of room names folds Persian and Arabic letters)",
                room,
                holder,
            )
        rows.append((room, key if holder == room else None))
    conn.executemany("INSERT OR IGNORE INTO room_keys VALUES (?, ?)", rows)


def _move_reads(conn: sqlite3.Connection, moves: dict[str, str]) -> None:
    """Move the read markers of the users whose keys move, and those of every user about a
    private conversation with one of them (of two markers that meet, the later one stays)."""
    rows = conn.execute(
        "SELECT user_key, conversation, label, epoch, seq, moved_at FROM reads"
        " WHERE substr(user_key, 1, instr(user_key || '#', '#') - 1) IN (SELECT old FROM moves)"
        " OR (conversation LIKE '@%' AND substr(conversation, 2) IN (SELECT old FROM moves))"
    ).fetchall()  # (anyone's marker of a conversation with someone who moves moves too)

    def kept_apart(row: tuple[Any, ...]) -> bool:
        user_key, conversation = row[0], row[1]
        targets = (moves.get(split_user_key(user_key)[0], ""), moves.get(conversation[1:], ""))
        return any(target.startswith(STRANDED) for target in targets)

    rows.sort(key=kept_apart, reverse=True)  # what is kept apart first: its place is taken next
    for user_key, conversation, label, epoch, seq, moved_at in rows:
        key, rest = split_user_key(user_key)
        moved_user = moves.get(key, key) + rest
        moved_conversation = conversation
        if conversation.startswith("@"):
            moved_conversation = "@" + moves.get(conversation[1:], conversation[1:])
        if (moved_user, moved_conversation) == (user_key, conversation):
            continue
        conn.execute(
            "DELETE FROM reads WHERE user_key = ? AND conversation = ?", (user_key, conversation)
        )
        conn.execute(
            "INSERT INTO reads VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_key, conversation)"
            " DO UPDATE SET label = excluded.label, epoch = excluded.epoch, seq = excluded.seq,"
            " moved_at = excluded.moved_at WHERE excluded.moved_at > reads.moved_at",
            (moved_user, moved_conversation, label, epoch, seq, moved_at),
        )


def _index_history(conn: sqlite3.Connection) -> None:
    """Index every message stored before there was a search index."""
    index = SearchIndex(conn)
    rooms = conn.execute("SELECT room, seq, text, sender_key FROM messages").fetchall()
    rows = []
    for sid, (room, seq, text, sender_key) in enumerate(rooms, start=index.next_sid):
        rows.append((sid, room, seq, text, search_index.room_tags(room, sender_key)))
    conn.executemany(
        "UPDATE messages SET sid = ? WHERE room = ? AND seq = ?", [(r[0], r[1], r[2]) for r in rows]
    )
    first = index.next_sid + len(rows)
    privates = conn.execute("SELECT pid, text, sender_key, target_key, hidden FROM privates")
    private_rows = [
        (sid, "", pid, text, search_index.private_tags(sender_key, target_key, bool(hidden)))
        for sid, (pid, text, sender_key, target_key, hidden) in enumerate(privates, start=first)
    ]
    conn.executemany(
        "UPDATE privates SET sid = ? WHERE pid = ?", [(r[0], r[2]) for r in private_rows]
    )
    index.add(conn, rows + private_rows)


STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {5: _fold_persian, 7: _index_history}
"""Migration steps in Python, by the index of the migration (in `MIGRATIONS`) they complete."""


@dataclass(slots=True)
class _Append:
    records: Sequence[Record] = ()
    durable: Callable[[], None] | None = None
    failed: Callable[[Exception], None] | None = None
    tokens: Sequence[tuple[str, str]] = ()
    identities: Sequence[tuple[str, str, str, int]] = ()
    room_keys: Sequence[tuple[str, str]] = ()
    reads: Sequence[StoredRead] = ()
    moderation: ModEvent | None = None
    kept: list[ReadMarker] | None = None
    """The read markers as stored (set by the writer before `durable` runs)."""


def _waits(item: object) -> bool:
    """Whether a queued item may wait a moment for company: nobody waits for it."""
    return isinstance(item, _Append) and item.durable is None and item.failed is None


_STOP = object()
"""`close`: store what is queued, then end."""
_MARK = object()
"""From here on the event loop refuses appends (it heard of a failed write)."""


class SQLiteHistory(HistoryStore):
    """History in one SQLite file; see the module docstring."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", search_index: bool = True
    ) -> None:
        """`search_index` False stores no message in the search index (for measuring what
        the index costs: a search then finds only what was indexed before)."""
        self.path = str(path)
        self._indexing = search_index
        in_memory = self.path == ":memory:"
        if not in_memory:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryRefused(f"its folder cannot be made ({exc.strerror})") from None
        try:
            self._write_conn = connect(self.path, synchronous, timeout=LOCK_WAIT)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise HistoryRefused(HELD) from None
            raise HistoryRefused(_unwritable(exc)) from None
        try:
            self._write_conn.execute("PRAGMA busy_timeout = 5000")  # the lock is ours now
            self._write_conn.execute("PRAGMA secure_delete = ON")  # a deleted text is zeroed
            migrate(self._write_conn)
            self._index = SearchIndex(self._write_conn)
            _try_writing(self._write_conn)
            self._read_conn = None if in_memory else connect(self.path, synchronous)
        except BaseException:
            self._write_conn.close()
            raise
        self._files: dict[str, tuple[int, int]] = {}
        """The files in use (the database and its WAL) and what they were when opened."""
        for name in () if in_memory else (self.path, self.path + "-wal"):
            identity = _identity(name)
            if identity is not None:
                self._files[name] = identity
        self._queue: queue.SimpleQueue[_Append | object] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: HistoryFailing | None = None
        """Why appends are refused now; set and cleared on the event loop only."""
        self._last_reason: str | None = None
        self._logged_at = 0.0
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._on_finish: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self.commits = 0
        self.appends = 0
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="history-reader")
        self._writer = threading.Thread(target=self._write_loop, name="history-writer", daemon=True)
        self._writer.start()

    # --- loading -----------------------------------------------------------

    def load(self) -> LoadedState:
        conn = self._write_conn
        (last_private,) = conn.execute("SELECT COALESCE(MAX(pid), 0) FROM privates").fetchone()
        conn.execute(  # the newest tokens only (a token renewed is a row rewritten, last)
            "DELETE FROM tokens WHERE rowid <= (SELECT MAX(rowid) FROM tokens) - ?", (MAX_TOKENS,)
        )
        tokens = dict(
            conn.execute("SELECT user_key, token_hash FROM tokens ORDER BY rowid").fetchall()
        )
        identities = dict(conn.execute("SELECT name_key, owner FROM identities").fetchall())
        conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('server_id', ?)", (new_server_id(),)
        )  # the first start of a new database gives the chat its identity
        (server_id,) = conn.execute("SELECT value FROM meta WHERE name = 'server_id'").fetchone()
        unkeyed = conn.execute("SELECT room FROM room_keys WHERE key IS NULL").fetchall()
        rules = tuple(_rules(conn.execute("SELECT * FROM rules")))
        return LoadedState(
            rules=rules,
            last_private_id=last_private,
            tokens=tokens,
            identities=identities,
            server_id=server_id,
            unkeyed_rooms=frozenset(room for (room,) in unkeyed),
        )

    # --- writing -----------------------------------------------------------

    def append(
        self,
        records: Sequence[Record],
        durable: Callable[[], None],
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        self._put(_Append(records, durable, failed))

    def _put(self, append: _Append) -> None:
        """Queue an append that is acknowledged, or fail it at once while writes are refused."""
        loop = self._loop = asyncio.get_running_loop()
        if self._failure is not None:
            if append.failed is not None:
                loop.call_soon(append.failed, self._failure)
            return
        self._queue.put(append)

    def failure(self) -> Exception | None:
        return self._failure

    def save_token(self, user_key: str, token_hash: str) -> None:
        self._note_loop()
        self._queue.put(_Append(tokens=((user_key, token_hash),)))

    def save_identity(
        self,
        name_keys: Sequence[str],
        name: str,
        owner: str,
        now: int,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        rows = tuple((key, name, owner, now) for key in name_keys)  # in one transaction
        self._put(_Append(durable=durable, failed=failed, identities=rows))

    def save_room_key(
        self,
        room: str,
        key: str,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        self._put(_Append(durable=durable, failed=failed, room_keys=((room, key),)))

    def save_moderation(
        self,
        event: ModEvent,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        self._put(_Append(durable=durable, failed=failed, moderation=event))

    def save_reads(
        self,
        reads: Sequence[StoredRead],
        durable: Callable[[list[ReadMarker]], None],
        failed: Callable[[Exception], None],
    ) -> None:
        append = _Append(failed=failed, reads=reads)
        append.durable = lambda: durable(append.kept or [])
        self._put(append)

    def _note_loop(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop: nobody to tell of a failure
            self._loop = asyncio.get_running_loop()

    def _write_loop(self) -> None:
        kept: list[_Append] = []
        """Tokens of failed batches (nobody waits for them): stored with the next."""
        draining: HistoryFailing | None = None
        """A write failed: what is taken up to the loop's `_MARK` fails unwritten."""
        pause = FIRST_PAUSE
        try:
            while True:
                items = self._take()
                stop = any(item is _STOP for item in items)
                appends = [item for item in items if isinstance(item, _Append)]
                if draining is not None:
                    self._fail([a for a in appends if a.durable], draining, first=False)
                    kept += [a for a in appends if not a.durable]
                    if any(item is _MARK for item in items):
                        draining = None
                        self._pause(pause)
                        pause = min(pause * 2, LAST_PAUSE)
                    if stop:
                        break
                    continue
                batch = kept + appends
                if batch:
                    try:
                        self._store(batch)
                    except Exception as exc:  # the writer must outlive any one batch
                        error = self._failing(exc)
                        kept = [a for a in batch if not a.durable]
                        if self._fail([a for a in batch if a.durable], error, first=True):
                            draining = error
                        else:  # no event loop appended yet: no mark will come
                            self._pause(pause)
                            pause = min(pause * 2, LAST_PAUSE)
                    else:
                        kept = []
                        pause = FIRST_PAUSE
                        self._report(appends)
                if stop:
                    break
            if kept:
                lost = sum(len(a.tokens) for a in kept)
                log.error("%d resume token(s) could not be stored in %s", lost, self.path)
        finally:
            self._finished.set()
            if self._on_finish is not None:
                loop, finished = self._on_finish
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                    loop.call_soon_threadsafe(_resolve, finished)

    def _take(self) -> list[_Append | object]:
        """Wait for an item; return it with those queued behind it (up to `MAX_BATCH`).

        Items nobody waits for (the resume tokens of logins) wait `TOKEN_LINGER` for more to
        share their commit: a crowd logging in costs a few commits, not one each.
        """
        items = [self._queue.get()]
        until = time.monotonic() + TOKEN_LINGER
        waits = _waits(items[0])
        while len(items) < MAX_BATCH and items[-1] is not _STOP:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                left = until - time.monotonic()
                if not waits or left <= 0:
                    break
                try:
                    items.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            waits = waits and _waits(items[-1])
        return items

    def _pause(self, seconds: float) -> None:
        """Refuse appends for `seconds` (unless closing), then take them again."""
        if self._stopping.wait(seconds):
            return
        self._post(self._allow)

    def _allow(self) -> None:
        self._failure = None

    def _post(self, callback: Callable[[], None]) -> bool:
        """Run `callback` on the event loop; return whether it will run."""
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # a closed loop: nobody waits
            return False
        return True

    def _fail(self, appends: list[_Append], error: HistoryFailing, *, first: bool) -> bool:
        """Tell the event loop that `appends` failed; the `first` failure also makes it refuse
        appends and mark the queue where its refusals begin. Return whether it was told."""
        callbacks = [a.failed for a in appends if a.failed is not None]

        def on_loop() -> None:
            if first:
                self._failure = error
                self._queue.put(_MARK)
            for callback in callbacks:
                try:
                    callback(error)
                except Exception:  # one failing callback must not cost the others theirs
                    log.exception("reporting a failed history write failed")

        return (first or bool(callbacks)) and self._post(on_loop)

    def _failing(self, exc: Exception) -> HistoryFailing:
        """Log why a write failed (once, not for every batch); return the error for appends."""
        expected = isinstance(exc, (sqlite3.Error, HistoryFailing))
        reason = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if reason != self._last_reason or now - self._logged_at > REPEAT_LOG:
            self._last_reason, self._logged_at = reason, now
            if expected:
                log.error("cannot write the history to %s: %s; sends get 'unavailable' until it "
                          "can be written", self.path, reason)  # fmt: skip
            else:
                log.exception("history batch failed in %s; not acknowledged", self.path)
        return exc if isinstance(exc, HistoryFailing) else HistoryFailing(reason)

    def _store(self, appends: list[_Append]) -> None:
        """Commit `appends` in one transaction to the files the store opened, or raise."""
        self._check_files()
        self._commit(appends)
        self._check_files()  # committed to a deleted file is not stored
        if self._last_reason is not None:
            self._last_reason = None
            log.warning("the history %s can be written again", self.path)

    def _check_files(self) -> None:
        for name, identity in self._files.items():
            if _identity(name) != identity:
                raise HistoryFailing(
                    f"the file {name} was deleted or replaced while in use; restore it, or "
                    "restart the server to begin a new history"
                )

    def _commit(self, appends: list[_Append]) -> None:
        rooms: list[tuple[str, int]] = []
        messages: list[tuple[Any, ...]] = []
        privates: list[tuple[Any, ...]] = []
        tokens: list[tuple[str, str]] = []
        identities: list[tuple[str, str, str, int]] = []
        room_keys: list[tuple[str, str]] = []
        indexed: list[tuple[int, str, int, str, str]] = []
        updates: list[tuple[Update, str]] = []
        sid = self._index.next_sid
        for append in appends:
            tokens.extend(append.tokens)
            identities.extend(append.identities)
            room_keys.extend(append.room_keys)
            for record in append.records:
                if isinstance(record, StoredMessage):
                    m = record.message
                    if m.seq == 1:
                        rooms.append((m.room, record.epoch))
                    if isinstance(m, Update):
                        messages.append(
                            (m.room, m.seq, m.sender, record.sender_key, m.text, m.ts, False,
                             record.client_id or None, m.verb, m.target,
                             None if m.on is None else int(m.on), None)
                        )  # fmt: skip
                        updates.append((m, record.sender_key))
                        continue
                    messages.append(
                        (m.room, m.seq, m.sender, record.sender_key, m.text, m.ts, m.action,
                         record.client_id or None, None, m.reply, None, sid)
                    )  # fmt: skip
                    tags = search_index.room_tags(m.room, record.sender_key)
                    indexed.append((sid, m.room, m.seq, m.text, tags))
                else:
                    p = record.message
                    privates.append(
                        (p.pid, p.sender, record.sender_key, p.to, record.target_key, p.text,
                         p.ts, p.action, record.client_id or None, record.hidden, sid)
                    )  # fmt: skip
                    tags = search_index.private_tags(
                        record.sender_key, record.target_key, record.hidden
                    )
                    indexed.append((sid, "", p.pid, p.text, tags))
                sid += 1
        conn = self._write_conn
        shards = set(self._index.shards)
        deleted: set[int] = set()
        try:
            conn.execute("BEGIN")
            for statement, rows in (
                ("INSERT OR IGNORE INTO rooms VALUES (?, ?)", rooms),
                (f"INSERT INTO messages VALUES ({_marks(12)})", messages),
                (f"INSERT INTO privates VALUES ({_marks(11)})", privates),
                ("INSERT OR REPLACE INTO tokens VALUES (?, ?)", tokens),
                ("INSERT OR REPLACE INTO identities VALUES (?, ?, ?, ?)", identities),
                ("INSERT OR IGNORE INTO room_keys VALUES (?, ?)", room_keys),
            ):
                if rows:  # each call hands the interpreter lock back and forth: skip empties
                    conn.executemany(statement, rows)
            if indexed and self._indexing:
                self._index.add(conn, indexed)
            for update, sender_key in updates:
                shard = self._apply(conn, update, sender_key)
                if shard is not None:
                    deleted.add(shard)
            self._index.purge(conn, deleted)
            for append in appends:
                if append.reads:
                    append.kept = [_store_read(conn, read) for read in append.reads]
                if append.moderation is not None:
                    _store_moderation(conn, append.moderation)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._index.shards = shards
            raise
        self._index.next_sid = sid
        if deleted:  # the pages that held the text, still in the WAL, go too
            for _ in range(CHECKPOINT_TRIES):  # (busy while a read holds an older snapshot)
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    break
                time.sleep(0.01)
            else:
                log.warning("the WAL of %s could not be truncated after a delete", self.path)
        self.commits += 1
        self.appends += len(appends)

    def _apply(self, conn: sqlite3.Connection, update: Update, sender_key: str) -> int | None:
        """Carry out a verb on its message; return the index shard a delete changed."""
        row = conn.execute(
            "SELECT text, sender_key, state, sid FROM messages"
            " WHERE room = ? AND seq = ? AND verb IS NULL",
            (update.room, update.target),
        ).fetchone()
        if row is None or row[2] == DELETED:
            if update.verb == "edit":  # (made as its message was deleted: its text goes too)
                conn.execute(
                    "UPDATE messages SET text = '' WHERE room = ? AND seq = ?",
                    (update.room, update.seq),
                )
            return None
        text, author_key, _, sid = row
        where = (update.room, update.target)
        tags = search_index.room_tags(update.room, author_key)
        if update.verb == "react":
            if update.on:
                conn.execute(
                    "INSERT OR IGNORE INTO reactions VALUES (?, ?, ?, ?, ?, ?)",
                    (*where, update.text, sender_key, update.sender, update.seq),
                )
            else:
                conn.execute(
                    "DELETE FROM reactions"
                    " WHERE room = ? AND seq = ? AND text = ? AND user_key = ?",
                    (*where, update.text, sender_key),
                )
            return None
        if update.verb == "edit":
            conn.execute(
                "UPDATE messages SET text = ?, state = ? WHERE room = ? AND seq = ?",
                (update.text, EDITED, *where),
            )
            if sid is not None and self._indexing:
                self._index.replace(conn, sid, text, update.text, tags)
            return None
        conn.execute(
            "UPDATE messages SET text = '', state = ?, action = 0 WHERE room = ? AND seq = ?",
            (DELETED, *where),
        )
        conn.execute(
            "UPDATE messages SET text = '' WHERE room = ? AND target = ? AND verb = 'edit'", where
        )
        conn.execute("DELETE FROM reactions WHERE room = ? AND seq = ?", where)
        return None if sid is None else self._index.remove(conn, sid, text, tags)

    def _report(self, appends: list[_Append]) -> None:
        callbacks = [a.durable for a in appends if a.durable is not None]
        if callbacks:
            self._post(lambda: _call_all(callbacks))

    # --- reading -----------------------------------------------------------

    async def _read(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self._read_with(lambda conn: conn.execute(sql, args).fetchall())

    async def room(self, name: str) -> RoomRecord | None:
        rows = await self._read(
            "SELECT epoch, (SELECT MAX(seq) FROM messages WHERE room = ?1) FROM rooms"
            " WHERE room = ?1",
            (name,),
        )
        if not rows or rows[0][1] is None:
            return None
        epoch, seq = rows[0]
        return RoomRecord(epoch, seq)

    async def room_claim(self, room: str, key: str) -> tuple[str | None, bool]:
        ((holder, known),) = await self._read(
            "SELECT (SELECT room FROM room_keys WHERE key = ?2),"
            " EXISTS (SELECT 1 FROM room_keys WHERE room = ?1)"
            " OR EXISTS (SELECT 1 FROM rooms WHERE room = ?1)",
            (room, key),
        )
        return holder, bool(known)

    async def sent(self, room: str, sender_key: str, limit: int) -> dict[str, tuple[int, int]]:
        rows = await self._read(
            "SELECT client_id, seq, ts FROM messages INDEXED BY messages_by_sender"
            " WHERE room = ? AND sender_key = ? AND client_id IS NOT NULL"
            " ORDER BY seq DESC LIMIT ?",
            (room, sender_key, limit),
        )
        return {client_id: (seq, ts) for client_id, seq, ts in reversed(rows)}

    async def read_markers(self, user_key: str) -> list[ReadMarker]:
        rows = await self._read(
            "SELECT conversation, label, epoch, seq FROM reads INDEXED BY reads_by_time"
            " WHERE user_key = ? ORDER BY moved_at DESC LIMIT ?",
            (user_key, MAX_MARKERS),
        )
        return [ReadMarker(*row) for row in rows]

    async def unread_privates(self, user_key: str, limit: int) -> list[PrivateMessage]:
        # each sender to the user in turn (one index seek each), then only what is past the
        # user's marker of that conversation: what was read is never walked through
        rows = await self._read(
            """
            WITH RECURSIVE senders(key) AS (
                SELECT MIN(sender_key) FROM privates WHERE target_key = ?1
                UNION ALL
                SELECT (SELECT MIN(sender_key) FROM privates
                        WHERE target_key = ?1 AND sender_key > key)
                FROM senders WHERE key IS NOT NULL
            )
            SELECT p.sender, p.target, p.text, p.ts, p.action, p.pid
            FROM senders JOIN privates AS p INDEXED BY privates_between
                ON p.target_key = ?1 AND p.sender_key = senders.key AND NOT p.hidden
                AND p.pid > COALESCE((SELECT seq FROM reads
                                      WHERE user_key = ?1 AND conversation = '@' || senders.key),
                                     0)
            WHERE senders.key != ?1
            ORDER BY p.pid DESC LIMIT ?2
            """,
            (user_key, limit),
        )
        return _privates(reversed(rows))

    async def conversation(
        self, user_key: str, other_key: str, before: int, limit: int
    ) -> list[PrivateMessage]:
        one_way = (
            "SELECT * FROM (SELECT sender, target, text, ts, action, pid"
            " FROM privates INDEXED BY privates_between"
            " WHERE target_key = {} AND sender_key = {} AND pid < ?3{} ORDER BY pid DESC LIMIT ?4)"
        )  # a message to oneself is in both halves, and once in their UNION
        to_me, from_me = (
            one_way.format("?1", "?2", " AND NOT hidden"),
            one_way.format("?2", "?1", ""),
        )
        rows = await self._read(
            f"{to_me} UNION {from_me} ORDER BY pid DESC LIMIT ?4",
            (user_key, other_key, before if before > 0 else 2**62, limit),
        )
        return _privates(reversed(rows))

    async def sent_privates(self, sender_key: str, limit: int) -> dict[str, int]:
        rows = await self._read(
            "SELECT client_id, pid FROM privates INDEXED BY privates_by_sender"
            " WHERE sender_key = ? AND client_id IS NOT NULL ORDER BY pid DESC LIMIT ?",
            (sender_key, limit),
        )
        return dict(reversed(rows))

    async def private(self, pid: int) -> PrivateMessage | None:
        rows = await self._read(
            "SELECT sender, target, text, ts, action FROM privates WHERE pid = ?", (pid,)
        )
        if not rows:
            return None
        sender, target, text, ts, action = rows[0]
        return PrivateMessage(
            sender=sender, to=target, text=text, ts=ts, action=bool(action), pid=pid
        )

    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        def read(conn: sqlite3.Connection) -> list[RoomEvent]:
            rows = conn.execute(
                f"SELECT {_STATE} WHERE m.room = ? AND m.seq < ? AND m.verb IS NULL"
                " ORDER BY m.seq DESC LIMIT ?",
                (room, before if before > 0 else 2**62, limit),
            ).fetchall()
            rows.reverse()
            return _with_reactions(conn, room, rows)

        return [m for m in await self._read_with(read) if isinstance(m, Message)]

    async def after(self, room: str, after: int, upto: int) -> list[RoomEvent]:
        def read(conn: sqlite3.Connection) -> list[RoomEvent]:
            rows = conn.execute(
                f"SELECT {_STATE} WHERE m.room = ? AND m.seq > ? AND m.seq <= ? ORDER BY m.seq",
                (room, after, upto),
            ).fetchall()
            return _with_reactions(conn, room, rows)

        return await self._read_with(read)

    async def _read_with(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run `read` on the reader's thread and connection (one hop for several queries)."""
        conn = self._read_conn or self._write_conn
        return await asyncio.get_running_loop().run_in_executor(self._reader, read, conn)

    async def held(self, room: str, seq: int, user_key: str) -> Held | None:
        def read(conn: sqlite3.Connection) -> Held | None:
            rows = conn.execute(
                f"SELECT {_STATE} WHERE m.room = ? AND m.seq = ?", (room, seq)
            ).fetchall()
            if not rows or rows[0][8] is not None:
                return None
            given = conn.execute(
                "SELECT text, name, user_key FROM reactions WHERE room = ? AND seq = ? ORDER BY at",
                (room, seq),
            ).fetchall()
            message = _event(rows[0], [(text, name) for text, name, _ in given])
            assert isinstance(message, Message)
            reacted = frozenset(text for text, _, key in given if key == user_key)
            return Held(message, rows[0][-1], reacted)

        return await self._read_with(read)

    async def search(self, query: SearchQuery, sees: Sees) -> tuple[list[SearchHit], str]:
        expression = search_index.match(query)
        cursor = query.before
        before = min(int(cursor), 2**62) if cursor.isascii() and cursor.isdigit() else 0
        hits: list[tuple[int, SearchHit]] = []
        size = query.limit + 1  # enough unless some are not the user's to read: then more
        examined = 0
        while True:
            shards = list(self._index.shards)

            def read(
                conn: sqlite3.Connection,
                before: int = before, shards: list[int] = shards, size: int = size,
            ) -> list[tuple[int, SearchHit | None]]:  # fmt: skip
                found = search_index.candidates(conn, shards, expression, before, size)
                user, since = query.user_key, query.private_since
                return [(sid, _hit(conn, room, seq, user, since)) for sid, room, seq in found]

            batch = await self._read_with(read)
            for sid, hit in batch:
                if hit is not None and (hit.room.startswith("@") or sees(hit.room)):
                    hits.append((sid, hit))
            examined += len(batch)
            if len(hits) > query.limit or len(batch) < size:
                break
            before = batch[-1][0]
            left = search_index.MAX_EXAMINED - examined
            if left <= 0:  # the rest on the next page
                return [hit for _, hit in hits], str(before)
            size = min(size * 4, search_index.BATCH, left)
        page = hits[: query.limit]
        more = len(hits) > query.limit
        return [hit for _, hit in page], str(page[-1][0]) if more and page else ""

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        rows = await self._read(
            "SELECT sender, target, text, ts, action, pid FROM privates"
            " WHERE pid > ? AND (sender_key = ? OR (target_key = ? AND NOT hidden))"
            " ORDER BY pid LIMIT ?",
            (after, user_key, user_key, limit),
        )
        return _privates(rows)

    async def mod_log(self, room: str | None, before: int, limit: int) -> list[ModEntry]:
        where = "id < ?1 AND ?3 IS NULL" if room is None else "room = ?3 AND id < ?1"
        rows = await self._read(
            f"SELECT id, ts, room, action, name, by, reason, until FROM modlog WHERE {where}"
            " ORDER BY id DESC LIMIT ?2",
            (before if before > 0 else 2**62, limit, room),
        )
        return [ModEntry(*row) for row in rows]

    # --- closing -----------------------------------------------------------

    async def close(self) -> None:
        """Store what was appended (or fail it), then let go of the file; within
        `CLOSE_TIMEOUT` even if the disk does not answer."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        self._on_finish = (loop, finished)
        self._stopping.set()
        self._queue.put(_STOP)
        if not self._finished.is_set():
            try:
                await asyncio.wait_for(finished, CLOSE_TIMEOUT)
            except TimeoutError:
                log.error(
                    "the history writer of %s did not finish within %.0f s; what it had not "
                    "stored is not acknowledged",
                    self.path,
                    CLOSE_TIMEOUT,
                )
                self._reader.shutdown(wait=False)
                return
        self._reader.shutdown(wait=True)
        with contextlib.suppress(sqlite3.Error):  # a full disk may refuse the last checkpoint
            if self._read_conn is not None:
                self._read_conn.close()
            self._write_conn.close()


def _try_writing(conn: sqlite3.Connection) -> None:
    """Refuse a database that cannot be written now (rather than fail every send later)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('opened', ?)", (str(time.time_ns()),))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise HistoryRefused(_unwritable(exc)) from None


def _unwritable(exc: sqlite3.Error) -> str:
    return (
        f"it cannot be written ({exc}); check the permissions of the file, of its -wal file "
        "and of their folder, and the free space"
    )


def _identity(path: str) -> tuple[int, int] | None:
    """The device and inode of a file (None: there is none)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _call_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # one failing callback must not cost the others their acks
            log.exception("acknowledging stored history failed")


_STATE = (
    "m.room, m.seq, m.sender, m.text, m.ts, m.action, m.target, m.state, m.verb, o.sender,"
    " o.text, o.state, m.sender_key FROM messages m LEFT JOIN messages o"
    " ON m.verb IS NULL AND m.target IS NOT NULL AND o.room = m.room AND o.seq = m.target"
    " AND o.verb IS NULL"
)
"""A message or verb as it is now, with the message a reply answers (`_event`)."""


def _with_reactions(
    conn: sqlite3.Connection, room: str, rows: list[tuple[Any, ...]]
) -> list[RoomEvent]:
    """The messages and verbs of `rows` (`_STATE`), the messages with their reactions."""
    seqs = [row[1] for row in rows if row[8] is None]
    given: dict[int, list[tuple[str, str]]] = {}
    if seqs:
        found = conn.execute(
            "SELECT seq, text, name FROM reactions WHERE room = ? AND seq >= ? AND seq <= ?"
            " ORDER BY seq, at",
            (room, seqs[0], seqs[-1]),
        )
        for seq, text, name in found:
            given.setdefault(seq, []).append((text, name))
    return [_event(row, given.get(row[1], ())) for row in rows]


def _event(row: tuple[Any, ...], given: Iterable[tuple[str, str]]) -> RoomEvent:
    room, seq, sender, text, ts, action, target, state, verb, q_sender, q_text, q_state = row[:12]
    if verb is None and target is None and state is None and not given:  # (most messages)
        return Message(room, seq, sender, text, ts, bool(action))
    if verb is not None:
        on = None if state is None else bool(state)
        return Update(room, seq, sender, ts, verb, target, text, on)
    quote = None
    if q_sender is not None:
        quote = verbs.quote_of(
            Message(room, target, q_sender, q_text, 0, deleted=q_state == DELETED or None)
        )
    return Message(
        room, seq, sender, text, ts, bool(action), target, quote,
        edited=state == EDITED or None, deleted=state == DELETED or None,
        reactions=verbs.gathered(given),
    )  # fmt: skip


def _hit(
    conn: sqlite3.Connection, room: str, seq: int, user_key: str, since: int
) -> SearchHit | None:
    """The search hit of indexed message `seq` of `room` ("": private message `seq`, if it
    is the user's: after `since`)."""
    if room:
        row = conn.execute(
            "SELECT sender, text, ts, action FROM messages WHERE room = ? AND seq = ?",
            (room, seq),
        ).fetchone()
        return None if row is None else SearchHit(room, seq, row[0], row[1], row[2], bool(row[3]))
    if seq <= since:
        return None
    row = conn.execute(
        "SELECT sender, sender_key, target, text, ts, action FROM privates WHERE pid = ?", (seq,)
    ).fetchone()
    if row is None:
        return None
    sender, sender_key, target, text, ts, action = row
    other = target if sender_key == user_key else sender
    return SearchHit("@" + other, seq, sender, text, ts, bool(action))


def _privates(rows: Iterable[tuple[Any, ...]]) -> list[PrivateMessage]:
    return [
        PrivateMessage(sender=s, to=t, text=x, ts=ts, action=bool(a), pid=pid)
        for s, t, x, ts, a, pid in rows
    ]


def _store_moderation(conn: sqlite3.Connection, event: ModEvent) -> None:
    """Store a moderation step's rules and its log entry (in the writer's transaction)."""
    for rule in event.rules:
        if rule.value is None:
            conn.execute(
                "DELETE FROM rules WHERE scope = ? AND kind = ? AND subject = ?",
                (rule.scope, rule.kind, rule.subject),
            )
        else:
            conn.execute(
                "INSERT OR REPLACE INTO rules VALUES (?, ?, ?, ?)",
                (rule.scope, rule.kind, rule.subject, json.dumps(dict(rule.value))),
            )
    if event.logged:
        cursor = conn.execute(
            "INSERT INTO modlog (ts, room, action, name, by, reason, until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.ts, event.room, event.action, event.name, event.by, event.reason, event.until),
        )
        if cursor.lastrowid is not None and cursor.lastrowid % 1000 == 0:  # now and then
            conn.execute("DELETE FROM modlog WHERE id <= ?", (cursor.lastrowid - MOD_LOG_KEPT,))


def _rules(rows: Iterable[tuple[Any, ...]]) -> Iterator[Rule]:
    """The stored rules (a value that is not a JSON map is passed over, with a warning)."""
    for scope, kind, subject, value in rows:
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            yield Rule(scope, kind, subject, decoded)
        else:
            log.warning("passing over a damaged rule (%s %s %s)", scope, kind, subject)


def _store_read(conn: sqlite3.Connection, read: StoredRead) -> ReadMarker:
    """Store a read marker (in the writer's transaction); return it as stored.

    One that moves is the user's newest (its `moved_at` above all of theirs, so that markers
    set in the same millisecond keep their order), and pushes out the least recently moved
    beyond `MAX_MARKERS`.
    """
    user_key, marker = read.user_key, read.marker
    row = conn.execute(
        "SELECT conversation, label, epoch, seq FROM reads WHERE user_key = ? AND conversation = ?",
        (user_key, marker.conversation),
    ).fetchone()
    kept, moved = merged(None if row is None else ReadMarker(*row), marker)
    if not moved:
        conn.execute(
            "UPDATE reads SET label = ? WHERE user_key = ? AND conversation = ?",
            (kept.label, user_key, kept.conversation),
        )
        return kept
    (newest,) = conn.execute(
        "SELECT MAX(moved_at) FROM reads WHERE user_key = ?", (user_key,)
    ).fetchone()
    moved_at = read.moved_at if newest is None else max(read.moved_at, newest + 1)
    conn.execute(
        "INSERT OR REPLACE INTO reads VALUES (?, ?, ?, ?, ?, ?)",
        (user_key, kept.conversation, kept.label, kept.epoch, kept.seq, moved_at),
    )
    if row is None:
        conn.execute(
            "DELETE FROM reads WHERE user_key = ?1 AND conversation IN (SELECT conversation"
            " FROM reads INDEXED BY reads_by_time WHERE user_key = ?1"
            " ORDER BY moved_at DESC LIMIT -1 OFFSET ?2)",
            (user_key, MAX_MARKERS),
        )
    return kept
