"""History in real SQLite files: durable acknowledgements, pages, resume, retries, heartbeats."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.helpers import TIMEOUT, collect, expect
from tests.proxy import Proxy
from tuichat.client import Backoff, ChatClient, Reconnected, Reconnecting
from tuichat.protocol import (
    Challenge,
    Codec,
    Connection,
    Hello,
    Joined,
    Left,
    Message,
    Position,
    PrivateMessage,
    Role,
    RoomReset,
    Welcome,
    encode_frame,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits
from tuichat.server.history import SQLiteHistory
from tuichat.server.history.sqlite import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew

Start = Callable[..., Awaitable[ChatServer]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start servers on one SQLite file; each is stopped after the test."""
    servers: list[ChatServer] = []

    async def _start(port: int = 0, **config: object) -> ChatServer:
        settings = ServerConfig(
            host="127.0.0.1", port=port, server_name="hist", db=str(tmp_path / "h.sqlite3"),
            rate=RateLimits.unlimited(),
            **config,  # type: ignore[arg-type]
        )  # fmt: skip
        server = ChatServer(settings)
        await server.start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop()


async def connect(server: ChatServer, name: str, **options: object) -> ChatClient:
    return await ChatClient.connect(name, *server.address, **options)  # type: ignore[arg-type]


async def test_acknowledged_messages_survive_a_restart_and_numbering_continues(
    start: Start,
) -> None:
    server = await start()
    ali = await connect(server, "ali")
    acks = [await ali.send("#lobby", f"message {i}") for i in range(5)]
    assert [a.seq for a in acks] == [1, 2, 3, 4, 5]
    epoch = ali.positions["#lobby"].epoch
    await ali.close()
    port = server.address[1]
    await server.stop()

    again = await start(port)
    bob = await connect(again, "bob")
    page = await bob.history("#lobby")
    assert [(m.seq, m.sender, m.text) for m in page.messages] == [
        (i + 1, "ali", f"message {i}") for i in range(5)
    ]
    assert page.complete and page.epoch == epoch
    assert (await bob.send("#lobby", "after the restart")).seq == 6
    await bob.close()


async def test_history_pages_walk_back_to_the_start_of_the_room(start: Start) -> None:
    server = await start()
    ali = await connect(server, "ali")
    for i in range(120):
        await ali.send("#lobby", f"m{i}")
    newest = await ali.history("#lobby", limit=50)
    assert [m.seq for m in newest.messages] == list(range(71, 121)) and not newest.complete
    older = await ali.history("#lobby", before=71, limit=50)
    assert [m.seq for m in older.messages] == list(range(21, 71)) and not older.complete
    oldest = await ali.history("#lobby", before=21, limit=50)
    assert [m.seq for m in oldest.messages] == list(range(1, 21)) and oldest.complete
    await ali.close()


async def test_a_retried_send_is_stored_once_and_answered_with_its_first_position(
    start: Start, tmp_path: Path
) -> None:
    server = await start()
    ali = await connect(server, "ali")
    bob = await connect(server, "bob")
    first = await ali.send("#lobby", "only once", id="fixed-id-1")
    retry = await ali.send("#lobby", "only once", id="fixed-id-1")
    await ali.send("#lobby", "next")
    assert (retry.seq, retry.ts) == (first.seq, first.ts)
    seen = await collect(bob, Message, 2)
    assert [m.text for m in seen] == ["only once", "next"]
    await ali.close()
    await bob.close()
    port = server.address[1]
    await server.stop()
    again = await start(port)  # the id is still known after a restart
    ali = await connect(again, "ali")
    assert (await ali.send("#lobby", "only once", id="fixed-id-1")).seq == first.seq
    await ali.close()
    rows = sqlite3.connect(tmp_path / "h.sqlite3").execute(
        "SELECT COUNT(*) FROM messages WHERE client_id = 'fixed-id-1'"
    )
    assert rows.fetchone() == (1,)


async def test_a_cut_connection_resumes_with_every_message_once_and_queued_sends_delivered(
    start: Start,
) -> None:
    server = await start()
    proxy = Proxy(server.address)
    host, port = await proxy.start()
    reader = await ChatClient.connect("reader", host, port, reconnect=True)
    writer = await connect(server, "writer")
    total = 300

    async def write() -> None:
        for i in range(total):
            await writer.send("#lobby", f"live {i}")

    flow = asyncio.create_task(write())
    seen: list[Message] = []
    async with asyncio.timeout(20):
        while len(seen) < 50:  # messages are flowing
            event = await reader.next_event()
            if isinstance(event, Message):
                seen.append(event)
        proxy.cut()
        queued = [asyncio.create_task(reader.send("#lobby", f"queued {i}")) for i in range(5)]
        await expect(reader, Reconnecting)
        await expect(reader, Reconnected)
        acks = await asyncio.gather(*queued)
        await flow
        while seen[-1].seq < total + 5:  # the last message of all
            event = await reader.next_event()
            if isinstance(event, Message):
                seen.append(event)
    assert proxy.connections == 2  # it really was cut and came back
    assert seen[49].seq == 50 and len(seen) == total + 5
    assert [m.seq for m in seen] == list(range(1, total + 6))  # no gap, no duplicate
    texts = [m.text for m in seen]
    assert sorted(t for t in texts if t.startswith("queued")) == [f"queued {i}" for i in range(5)]
    assert sorted(a.seq for a in acks) == sorted(m.seq for m in seen if m.text.startswith("queued"))
    await reader.close()
    await writer.close()
    await proxy.stop()


async def test_a_client_with_a_position_from_another_history_is_told_to_reload(
    start: Start,
) -> None:
    server = await start()
    ali = await connect(server, "ali")
    await ali.send("#lobby", "hello")
    epoch = ali.positions["#lobby"].epoch
    await ali.close()
    reader, writer = await asyncio.open_connection(*server.address)
    stale = Position("#lobby", epoch + 1, 1)  # as if the server had lost its history
    writer.write(encode_frame(Codec.encode(Hello(name="ali", positions=(stale,), ref=1))))
    receiver = Connection(Role.CLIENT)
    events: list[object] = []
    async with asyncio.timeout(5):
        while not any(isinstance(e, RoomReset) for e in events):
            events += receiver.receive_data(await reader.read(65536))
    assert isinstance(events[0], Challenge) and isinstance(events[1], Welcome)
    reset = next(e for e in events if isinstance(e, RoomReset))
    assert (reset.room, reset.epoch, reset.seq) == ("#lobby", epoch, 1)
    writer.close()


async def test_private_messages_missed_during_a_drop_are_replayed_to_their_owner(
    start: Start,
) -> None:
    server = await start()
    proxy = Proxy(server.address)
    host, port = await proxy.start()
    bob = await ChatClient.connect("bob", host, port, reconnect=True)
    ali = await connect(server, "ali")
    await ali.private("bob", "before")
    await expect(bob, PrivateMessage, text="before")
    proxy.cut()
    await expect(bob, Reconnecting)
    await expect(bob, Reconnected)
    await ali.private("bob", "after")
    received = await expect(bob, PrivateMessage, text="after")
    assert received.sender == "ali"
    await ali.close()
    await bob.close()
    await proxy.stop()


async def test_a_silent_peer_is_dropped_within_the_heartbeat_timeout(start: Start) -> None:
    server = await start(heartbeat_interval=0.2, heartbeat_timeout=0.8)
    ali = await connect(server, "ali", heartbeat=0.2)
    _, writer = await asyncio.open_connection(*server.address)
    writer.write(encode_frame(Codec.encode(Hello(name="silent", ref=1))))  # then never a word
    await expect(ali, Joined, name="silent")
    loop = asyncio.get_running_loop()
    silent_since = loop.time()
    left = await expect(ali, Left, name="silent", timeout=5)
    elapsed = loop.time() - silent_since
    assert left.reason == "timeout"
    assert 0.6 < elapsed < 0.8 + 0.5  # the timeout, plus a check period and scheduling slack
    assert await ali.who() == ("ali",)  # ali answers the server's pings and stays
    assert ali.connected
    await ali.close()
    writer.close()


async def test_the_database_has_a_schema_version_and_refuses_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteHistory(path)
    await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    SQLiteHistory(path)  # opening again migrates nothing and works
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    with pytest.raises(SchemaTooNew):
        SQLiteHistory(path)


async def test_a_client_notices_a_silent_server_and_reconnects(start: Start) -> None:
    server = await start()
    proxy = Proxy(server.address)
    host, port = await proxy.start()
    ali = await ChatClient.connect(
        "ali", host, port, reconnect=True, heartbeat=0.2, backoff=Backoff(first=0.05, cap=0.2)
    )
    bob = await connect(server, "bob")
    proxy.freeze()  # the connection stays open, but nothing gets through any more
    loop = asyncio.get_running_loop()
    frozen_at = loop.time()
    await expect(ali, Reconnecting, timeout=5)
    assert loop.time() - frozen_at < 3 * 0.2 + 0.5  # three heartbeats of silence, and slack
    await expect(ali, Reconnected, timeout=5)
    await bob.send("#lobby", "can you hear me now")
    await expect(ali, Message, text="can you hear me now")
    await ali.close()
    await bob.close()
    await proxy.stop()


async def test_resume_puts_the_user_back_in_every_room_with_nothing_missed(start: Start) -> None:
    server = await start()
    proxy = Proxy(server.address)
    host, port = await proxy.start()
    ali = await ChatClient.connect(
        "ali", host, port, reconnect=True, backoff=Backoff(first=0.05, cap=0.2)
    )
    bob = await connect(server, "bob")
    await ali.join("#dev")
    await bob.join("#dev")
    await bob.send("#dev", "dev 1")
    await expect(ali, Message, text="dev 1")
    proxy.cut()
    await expect(ali, Reconnecting)
    await bob.send("#dev", "dev 2")  # while ali is away
    await expect(ali, Reconnected)
    await bob.send("#dev", "dev 3")
    seen = await collect(ali, Message, 2)
    assert [(m.room, m.seq, m.text) for m in seen] == [("#dev", 2, "dev 2"), ("#dev", 3, "dev 3")]
    assert await ali.who("#dev") == ("ali", "bob")
    await ali.close()
    await bob.close()
    await proxy.stop()


async def test_an_older_database_is_migrated_forward_and_keeps_its_history(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")  # as the first release left it
    conn.execute("INSERT INTO rooms VALUES ('#lobby', 42)")
    conn.execute(
        "INSERT INTO messages VALUES ('#lobby', 1, 'ali', 'ali', 'from long ago', 1000, 0, NULL)"
    )
    conn.commit()
    server = ChatServer(ServerConfig(port=0, db=str(path)))
    await server.start()
    bob = await connect(server, "bob")
    page = await bob.history("#lobby")
    assert [(m.seq, m.text) for m in page.messages] == [(1, "from long ago")]
    assert page.epoch == 42
    await bob.close()
    await server.stop()
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT COUNT(*) FROM identities").fetchone() == (0,)


async def test_a_large_backlog_is_replayed_at_the_readers_pace_not_dropped_as_slow(
    start: Start,
) -> None:
    server = await start(max_pending_write=256 * 1024)
    proxy = Proxy(server.address)
    host, port = await proxy.start()
    ali = await ChatClient.connect(
        "ali", host, port, reconnect=True, backoff=Backoff(first=0.05, cap=0.2)
    )
    bob = await connect(server, "bob")
    await proxy.refuse()
    await expect(ali, Reconnecting)
    missed = 3000
    text = "y" * 4000  # 12 MB of backlog: far more than socket buffers and the write budget
    for i in range(missed):
        await bob.send("#lobby", f"{i} {text}")
    await proxy.accept()
    await expect(ali, Reconnected, timeout=10)
    seen: list[Message] = []
    async with asyncio.timeout(20):
        while len(seen) < missed:
            event = await ali.next_event()
            assert not isinstance(event, Reconnecting), "dropped as a slow reader"
            if isinstance(event, Message):
                seen.append(event)
    assert [m.seq for m in seen] == list(range(1, missed + 1))
    await ali.close()
    await bob.close()
    await proxy.stop()


async def test_a_page_cut_short_by_its_size_is_not_called_complete(start: Start) -> None:
    server = await start()
    ali = await connect(server, "ali")
    for i in range(100):
        await ali.send("#lobby", f"{i:03d} " + "z" * 4000)
    seqs: list[int] = []
    before = 0
    async with asyncio.timeout(10):
        while True:
            page = await ali.history("#lobby", before=before, limit=100)
            seqs[:0] = [m.seq for m in page.messages]
            if page.complete:
                break
            before = page.messages[0].seq
    assert seqs == list(range(1, 101))  # the byte budget split the pages, nothing was skipped
    await ali.close()


async def test_reconnection_attempts_do_not_multiply_when_the_server_hangs_up(
    start: Start,
) -> None:
    server = await start()
    proxy = Proxy(server.address)
    host, port = await proxy.start()
    ali = await ChatClient.connect(
        "ali", host, port, reconnect=True, backoff=Backoff(first=0.01, cap=0.02)
    )
    proxy.target = ("127.0.0.1", 1)  # from now on the proxy accepts and hangs up at once
    proxy.cut()
    attempts: list[int] = []
    async with asyncio.timeout(10):
        while len(attempts) < 20:
            event = await ali.next_event()
            if isinstance(event, Reconnecting):
                attempts.append(event.attempt)
    assert attempts == list(range(1, 21))  # one loop, counting up; not one loop per failed link
    await ali.abort()
    await proxy.stop()


async def test_a_client_that_falls_behind_drops_the_connection_and_resumes_losing_nothing(
    start: Start,
) -> None:
    server = await start()
    reader = await ChatClient.connect(
        "reader", *server.address, reconnect=True, max_unread=200, backoff=Backoff(first=0.01)
    )
    writer = await connect(server, "writer")
    sent = [(await writer.send("#lobby", f"line {i}")).seq for i in range(500)]  # not read yet
    seen: list[int] = []
    reasons: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while len(seen) < len(sent):
            event = await reader.next_event()
            if isinstance(event, Message) and event.sender == "writer":
                seen.append(event.seq)
            elif isinstance(event, Reconnecting):
                reasons.append(event.reason)
    assert seen == sent  # every message once, in order
    assert reasons and all("more than 200 events" in r for r in reasons)
    await reader.close()
