"""A history with many dead rooms costs the server nothing until someone joins one.

The attack: make a great many rooms with one message each (or simply run a chat for years).
The server used to read every room and its recent client ids at start and keep them all in
memory: 200,000 rooms took 4.4 s and about 400 MiB before it listened. A room's numbering
is now read when the room is first followed and forgotten once nobody follows it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import tracemalloc
from pathlib import Path

from tests.server_process import ServerProcess, start_server_process
from tuichat.bench.servers import resident_bytes
from tuichat.chat.names import name_key
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.broker.local import LocalBroker
from tuichat.server.config import RateLimits
from tuichat.server.history.sqlite import MIGRATIONS

ROOMS = 50_000
TS = 1_767_269_400_000
MAX_EXTRA_START = 0.25
"""Seconds the dead rooms may add to the start (they added 0.7 s)."""
MAX_EXTRA_MEMORY = 8 * 2**20
"""Bytes the dead rooms may add to the started server (they added 61 MiB)."""
VISITED = 600
MAX_BYTES_PER_VISITED_ROOM = 200
"""Memory a room may keep once its last member left (its numbering and client ids took about
850 bytes, kept forever)."""


def dead_rooms(path: Path, count: int) -> None:
    """A history of `count` rooms, each with one message from ali (client id `id<n>`)."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS:
        conn.executescript(migration)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    conn.executemany(
        "INSERT INTO rooms VALUES (?, ?)", ((f"#dead{n}", 1000 + n) for n in range(count))
    )
    ali = name_key("ali")
    conn.executemany(
        "INSERT INTO messages (room, seq, sender, sender_key, text, ts, action, client_id)"
        " VALUES (?, 1, 'ali', ?, ?, ?, 0, ?)",
        ((f"#dead{n}", ali, f"hello {n}", TS, f"id{n}") for n in range(count)),
    )
    conn.commit()
    conn.close()


async def started(db: Path) -> tuple[float, int, ServerProcess]:
    """Start a server on `db`: the seconds until it listens, its resident memory then."""
    began = time.monotonic()
    server = await start_server_process("--db", str(db))
    return time.monotonic() - began, resident_bytes(server.process.pid), server


async def stopped(server: ServerProcess) -> None:
    server.process.terminate()  # (right after it listens, before its handler: not always 0)
    await server.process.wait()


async def test_dead_rooms_cost_nothing_at_start(tmp_path: Path) -> None:
    empty, dead = tmp_path / "empty.sqlite3", tmp_path / "dead.sqlite3"
    dead_rooms(empty, 0)
    dead_rooms(dead, ROOMS)
    runs: dict[Path, list[tuple[float, int]]] = {empty: [], dead: []}
    for _ in range(2):  # alternately, so that noise hits both alike
        for db, seen in runs.items():
            seconds, memory, server = await started(db)
            seen.append((seconds, memory))
            await stopped(server)
    extra_start = min(s for s, _ in runs[dead]) - min(s for s, _ in runs[empty])
    extra_memory = min(m for _, m in runs[dead]) - min(m for _, m in runs[empty])
    print(f"\n{ROOMS} dead rooms add {extra_start * 1000:.0f} ms to the start and "
          f"{extra_memory / 2**20:.1f} MiB of memory")  # fmt: skip
    assert extra_start < MAX_EXTRA_START
    assert extra_memory < MAX_EXTRA_MEMORY


async def test_a_dead_room_comes_back_whole_when_someone_joins(tmp_path: Path) -> None:
    db = tmp_path / "dead.sqlite3"
    dead_rooms(db, ROOMS)
    server = await start_server_process("--db", str(db))
    try:
        bob = await ChatClient.connect("bob", server.host, server.port)
        assert await bob.who("#dead123") == ()  # a room with history, nobody in it
        page = await bob.history("#dead777")  # read without joining
        assert ([m.text for m in page.messages], page.epoch) == (["hello 777"], 1777)
        ali = await ChatClient.connect("ali", server.host, server.port)
        state = await ali.join("#dead123")
        assert (state.epoch, state.seq) == (1123, 1)  # its numbering, as stored
        page = await ali.history("#dead123")
        assert [(m.seq, m.text) for m in page.messages] == [(1, "hello 123")]
        retry = await ali.send("#dead123", "hello 123", id="id123")
        assert (retry.seq, retry.ts) == (1, TS)  # its retry window: a retry is not stored again
        assert (await ali.send("#dead123", "and again")).seq == 2
        await ali.close()
        await bob.close()
    finally:
        await stopped(server)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE room = '#dead123'").fetchone()
        rows = conn.execute("SELECT seq FROM messages WHERE room = '#dead123' ORDER BY seq")
        assert rows.fetchall() == [(1,), (2,)]


async def test_a_room_is_forgotten_once_its_last_member_leaves(tmp_path: Path) -> None:
    config = ServerConfig(
        port=0, db=str(tmp_path / "h.sqlite3"), rate=RateLimits.unlimited(), server_name="t"
    )
    server = ChatServer(config)
    await server.start()
    broker = server.broker
    assert isinstance(broker, LocalBroker)
    ali = await ChatClient.connect("ali", *server.address)

    async def read_events() -> None:  # what the client is told is not kept in its queue
        while True:
            await ali.next_event()

    reading = asyncio.create_task(read_events())

    async def visit(first: int, count: int) -> None:
        for n in range(first, first + count):
            room = f"#room{n}"
            await ali.join(room)
            await ali.send(room, "passing through")
            await ali.part(room)

    try:
        await visit(0, 100)  # warm up: caches, the free lists of the allocator
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await visit(100, VISITED)
        await ali.who()  # a round trip: everything before it is done
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_room = (after - before) / VISITED
        print(f"\n{per_room:.0f} bytes kept per room visited and left")
        assert broker.rooms_in_memory() == 1  # the lobby
        assert per_room < MAX_BYTES_PER_VISITED_ROOM
        state = await ali.join("#room7")  # and back from the store when joined again
        assert state.seq == 1
        assert (await ali.send("#room7", "back")).seq == 2
    finally:
        reading.cancel()
        await ali.close()
        await server.stop()
