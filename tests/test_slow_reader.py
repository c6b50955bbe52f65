"""A client that stops reading is dropped; everyone else keeps getting every message.

The server runs as a real process, so that its resident memory can be read from
/proc while 10,000 messages are broadcast past a connection that never reads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.helpers import events_until, expect
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.bench.servers import resident_bytes
from tuichat.client import ChatClient, ClientEvent, Disconnected
from tuichat.protocol import (
    Codec,
    Connection,
    Event,
    Hello,
    Joined,
    Left,
    Message,
    Position,
    Role,
    Send,
    Welcome,
    encode_frame,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

T = TypeVar("T")

MESSAGES = 10_000
TEXT = "x" * 2000
"""10,000 of these are 20 MB for the reader that never reads: far beyond any socket buffer."""
MAX_PENDING_WRITE = 64 * 1024
WINDOW = 16
"""Messages the sender may be ahead of the slowest *reading* receiver (they read as they can)."""
RSS_GROWTH_LIMIT = 10 * 1024 * 1024
"""The server's memory may grow by this much while the 20 MB pile up for the slow reader."""
SLOWDOWN_LIMIT = 3.0


class Server:
    """The server process, its log read as it comes (a full pipe would block the server)."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.pid = process.process.pid
        self.address = (process.host, process.port)
        self.log = list(process.log)
        self._new_line = asyncio.Event()
        self._reading = asyncio.create_task(self._read_log())

    async def _read_log(self) -> None:
        stderr = self.process.process.stderr
        assert stderr is not None
        while line := await stderr.readline():
            self.log.append(line)
            self._new_line.set()

    async def logged(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        """Return the first log line containing `pattern`, waiting for it if need be."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.log:
                    if pattern in line:
                        return line
                self._new_line.clear()
                await self._new_line.wait()

    async def kill(self) -> None:
        if self.process.process.returncode is None:
            self.process.process.kill()
            await self.process.process.wait()
        await self._reading


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    process = await start_server_process(
        "--db", str(tmp_path / "history.sqlite3"),
        "--max-pending-write", str(MAX_PENDING_WRITE),
        *NO_FLOOD_CONTROL,
    )  # fmt: skip
    server = Server(process)
    yield server
    await server.kill()


class SlowReader:
    """A raw connection; made by `connect`, it has tiny buffers and can stop reading."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = Connection(Role.CLIENT)
        self.events: deque[Event] = deque()

    @classmethod
    async def connect(cls, host: str, port: int) -> SlowReader:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)  # buffers 8 KiB
        return cls(reader, writer)

    async def next_event(self) -> Event:
        while not self.events:
            data = await self.reader.read(65536)
            assert data, "the server closed the connection"
            self.events.extend(self.conn.receive_data(data))
        return self.events.popleft()

    async def read_until(self, kind: type[T]) -> T:
        """Return the next event of `kind`, skipping others."""
        async with asyncio.timeout(10):
            while True:
                event = await self.next_event()
                if isinstance(event, kind):
                    return event

    async def read_to_the_end(self) -> list[Event]:
        """Whatever is still readable after the server dropped us."""
        seen = list(self.events)
        async with asyncio.timeout(10):
            while True:
                try:
                    data = await self.reader.read(65536)
                except OSError:  # reset by the server: the end
                    return seen
                if not data:
                    return seen
                seen += self.conn.receive_data(data)


async def broadcast(
    sender: ChatClient, receivers: list[ChatClient], count: int
) -> tuple[float, list[ClientEvent]]:
    """`sender` posts `count` messages; return the seconds until every receiver has them all.

    Each receiver must get them in order with consecutive `seq`. The sender stays at most
    `WINDOW` messages ahead of the slowest receiver, as flood control would keep it.
    Also return the other events the receivers got meanwhile.
    """
    others: list[ClientEvent] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    progress = [0] * len(receivers)
    moved = asyncio.Event()

    async def receive(index: int, client: ChatClient) -> None:
        first = None
        while progress[index] < count:
            event = await client.next_event()
            assert not isinstance(event, Disconnected), f"{client.name} was dropped: {event}"
            if isinstance(event, Message) and event.sender == sender.name:
                first = event.seq if first is None else first
                assert event.seq == first + progress[index] and event.text == TEXT
                progress[index] += 1
                moved.set()
            else:
                others.append(event)

    async def send() -> None:
        acks = []
        for sent in range(count):
            while sent - min(progress) >= WINDOW:
                moved.clear()
                await moved.wait()
            acks.append(asyncio.create_task(sender.send("#lobby", TEXT)))
        await asyncio.gather(*acks)

    async with asyncio.timeout(60):
        await asyncio.gather(send(), *(receive(i, c) for i, c in enumerate(receivers)))
    return loop.time() - started, others


async def test_a_reader_that_stops_is_dropped_and_the_others_get_everything_in_time(
    server: Server,
) -> None:
    address = server.address
    ali = await ChatClient.connect("ali", *address)
    bob = await ChatClient.connect("bob", *address)
    carol = await ChatClient.connect("carol", *address)
    clients = [ali, bob, carol]
    try:
        # the same broadcast with everyone reading: the time to beat, and the memory it uses
        unhindered, _ = await broadcast(ali, [bob, carol], MESSAGES)
        before = resident_bytes(server.pid)

        slow = await SlowReader.connect(*address)
        slow.writer.write(encode_frame(Codec.encode(Hello(name="slow", ref=1))))
        welcome = await slow.read_until(Welcome)
        await slow.read_until(Joined)
        (lobby,) = welcome.positions
        # from here on, `slow` reads nothing while 20 MB are broadcast in its room
        hindered, meanwhile = await broadcast(ali, [bob, carol], MESSAGES)
        left = [e for e in meanwhile if isinstance(e, Left)]
        assert [(e.name, e.reason) for e in left] == [("slow", "slow")] * 2, meanwhile
        assert (await expect(ali, Left, name="slow")).reason == "slow"
        after = resident_bytes(server.pid)
        growth = after - before
        assert growth < RSS_GROWTH_LIMIT, f"the server grew by {growth / 2**20:.1f} MiB"
        assert hindered < SLOWDOWN_LIMIT * unhindered + 1.0, (hindered, unhindered)
        assert b"slow (127.0.0.1:" in await server.logged(b"reads too slowly, dropping")

        # the slow client comes back from where it was and loses nothing
        got = [e.seq for e in await slow.read_to_the_end() if isinstance(e, Message)]
        last = got[-1] if got else lobby.seq
        slow.writer.close()
        final = lobby.seq + MESSAGES
        back = SlowReader(*await asyncio.open_connection(*address))
        position = Position(room="#lobby", epoch=lobby.epoch, seq=last)
        hello = Hello(name="slow", positions=(position,), token=welcome.token, ref=1)
        back.writer.write(encode_frame(Codec.encode(hello)))
        assert (await back.read_until(Welcome)).name == "slow"
        replayed: list[int] = []
        while not replayed or replayed[-1] < final:
            replayed.append((await back.read_until(Message)).seq)
        assert got + replayed == list(range(lobby.seq + 1, final + 1))
        back.writer.close()
        await ali.send("#lobby", "everyone still here?")
        await expect(bob, Message, text="everyone still here?")
    finally:
        for client in clients:
            await client.abort()


async def test_dropping_a_slow_reader_logs_one_line_not_one_per_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Frames broadcast after the drop (before the connection is gone) are not written."""
    config = ServerConfig(
        host="127.0.0.1", port=0, max_pending_write=MAX_PENDING_WRITE, rate=RateLimits.unlimited()
    )
    server = ChatServer(config)
    await server.start()
    ali = await ChatClient.connect("ali", *server.address)
    slow = await SlowReader.connect(*server.address)
    try:
        slow.writer.write(encode_frame(Codec.encode(Hello(name="slow", ref=1))))
        await slow.read_until(Joined)
        (session,) = [s for s in server.sessions if s.user and s.user.name == "slow"]
        assert session.transport is not None
        # fill the kernel's buffers and most of the server's allowance, one message at a time
        while session.transport.get_write_buffer_size() < MAX_PENDING_WRITE - 8 * 1024:
            await ali.send("#lobby", "p" * 4000)
        # then a burst that ends the allowance early on, with hundreds of messages to go
        burst = b"".join(
            encode_frame(Codec.encode(Send(room="#lobby", text=f"burst {i}"))) for i in range(300)
        )
        with caplog.at_level(logging.INFO):
            sender = SlowReader(*await asyncio.open_connection(*server.address))
            sender.writer.write(encode_frame(Codec.encode(Hello(name="burst"))))
            await sender.read_until(Welcome)
            sender.writer.write(burst)
            seen = await events_until(ali, Message, text="burst 299")
            if not [e for e in seen if isinstance(e, Left) and e.name == "slow"]:
                await expect(ali, Left, name="slow")
            sender.writer.close()
        assert not [r for r in caplog.records if "socket.send() raised" in r.getMessage()]
    finally:
        slow.writer.close()
        await ali.abort()
        await server.stop()
