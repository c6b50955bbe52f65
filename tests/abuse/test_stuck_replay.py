"""A client cannot make the server hold a resumed replay for it by not reading.

The attack: say `hello` with `positions` thousands of messages behind in several long rooms
(the epochs are public), never read, and keep sending pings so that the heartbeat never drops
the connection, while the rooms go on. Before, the server read every missed message of every
room into memory at once, waited for the client to drain forever, and held the rooms' live
messages for it without counting them. Now a replay is read a page at a time, what waits
behind it counts against the client's budget and the server's ceiling, and a client that reads
nothing for `heartbeat_timeout` while it is waited for is dropped as `slow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import expect
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.bench.servers import resident_bytes
from tuichat.client import ChatClient
from tuichat.protocol import (
    AnyMessage,
    Codec,
    Connection,
    Hello,
    Left,
    Message,
    Ping,
    Pong,
    Position,
    Role,
    Welcome,
    encode_frame,
)

ROOMS = ("#lobby", "#long1", "#long2", "#long3")
STORED = 2500
"""Messages stored in each room: 10 MB a room, 40 MB in all."""
TEXT = "x" * 4000
STALL_S = 3.0
"""The server's heartbeat timeout here: how long a client that reads nothing is waited for."""
HEARTBEAT = ("--heartbeat-interval", "1", "--heartbeat-timeout", str(STALL_S))
DROP_WITHIN_S = STALL_S + 3.0
"""The attacker is dropped this soon after its `hello`: the stall, and a busy machine's slack."""
MAX_GROWTH = 20 * 2**20
"""Server memory the attack and one full replay may add (about 7 MiB here; before, with all
40 MB read at once for each of them, about 60 MiB)."""
MAX_PING_S = 0.5
POSTS_PER_SECOND = 4
"""The rooms go on meanwhile, well within the default flood limits."""


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A history file with `STORED` messages in each room, written once for the module by a
    server without flood control; and the rooms' epochs."""
    db = tmp_path_factory.mktemp("stuck") / "h.sqlite3"
    return db, asyncio.run(fill(db))


async def fill(db: Path) -> dict[str, int]:
    server = await start_server_process(
        "--db", str(db), "--max-pending-write", str(64 * 2**20), *NO_FLOOD_CONTROL
    )  # the writer gets its 1,000 messages back from each batch: room for them, however busy
    try:
        writer = await ChatClient.connect("writer", server.host, server.port)
        for room in ROOMS[1:]:
            await writer.join(room)
        for _ in range(STORED // 250):
            await asyncio.gather(*(writer.send(room, TEXT) for room in ROOMS for _ in range(250)))
        epochs = {room: writer.positions[room].epoch for room in ROOMS}
        await writer.close()
    finally:
        server.process.terminate()
        await server.process.wait()
    return epochs


@contextlib.asynccontextmanager
async def server_on(
    stored: tuple[Path, dict[str, int]], tmp_path: Path, *flags: str
) -> AsyncIterator[ServerProcess]:
    """A server process on a copy of the stored history."""
    db = tmp_path / "h.sqlite3"
    for part in stored[0].parent.glob(stored[0].name + "*"):
        shutil.copy(part, db.with_name(part.name))
    server = await start_server_process("--db", str(db), *flags)
    try:
        yield server
    finally:
        server.process.terminate()
        await server.process.wait()


def frame(message: AnyMessage) -> bytes:
    return encode_frame(Codec.encode(message))


def from_the_start(epochs: dict[str, int], rooms: tuple[str, ...] = ROOMS) -> tuple[Position, ...]:
    return tuple(Position(room=room, epoch=epochs[room], seq=0) for room in rooms)


async def stuck(host: str, port: int, positions: tuple[Position, ...]) -> socket.socket:
    """An attacker's connection: resumed from `positions`, then it never reads again (a tiny
    receive buffer without autotuning), and it pings twice a second until it is dropped."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    await loop.sock_sendall(sock, frame(Hello(name="attacker", positions=positions, ref=0)))
    conn = Connection(Role.CLIENT)
    async with asyncio.timeout(10):
        while not any(isinstance(e, Welcome) for e in conn.receive_data(await recv(sock))):
            pass
    return sock


async def recv(sock: socket.socket) -> bytes:
    data = await asyncio.get_running_loop().sock_recv(sock, 4096)
    assert data, "the server closed the connection"
    return data


async def keep_pinging(sock: socket.socket) -> None:
    """What keeps a silent reader's heartbeat going: a ping every half second."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(OSError):  # dropped: the end
        for n in itertools.count():
            await loop.sock_sendall(sock, frame(Ping(data=n)))
            await asyncio.sleep(0.5)  # the attacker's pace, not a wait for anything


class Reader:
    """A client that resumes like the attacker but reads everything (and answers pings)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = Connection(Role.CLIENT)
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self._moved = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def resume(cls, host: str, port: int, positions: tuple[Position, ...]) -> Reader:
        reader = cls(*await asyncio.open_connection(host, port))
        reader.writer.write(frame(Hello(name="reader", positions=positions, ref=0)))
        return reader

    async def _read(self) -> None:
        while data := await self.reader.read(65536):
            for event in self.conn.receive_data(data):
                if isinstance(event, Ping):
                    self.writer.write(frame(Pong(data=event.data, ref=event.ref)))
                elif isinstance(event, Message):
                    self.seqs[event.room].append(event.seq)
            self._moved.set()

    async def reached(self, last: dict[str, int], timeout: float = 10.0) -> None:
        """Wait until every room's last message `seq` is at least `last[room]`."""
        async with asyncio.timeout(timeout):
            while any(self.seqs[room][-1:] < [seq] for room, seq in last.items()):
                assert not self._reading.done(), "the server closed the connection"
                self._moved.clear()
                await self._moved.wait()

    async def close(self) -> None:
        self.writer.close()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self._reading


class Peak:
    """The highest resident memory of a process, sampled every 10 ms while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.bytes = resident_bytes(pid)
        self._sampling = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.bytes = max(self.bytes, resident_bytes(self.pid))
            await asyncio.sleep(0.01)  # a sampling rate, not a wait for anything

    def stop(self) -> int:
        self._sampling.cancel()
        self.bytes = max(self.bytes, resident_bytes(self.pid))
        return self.bytes


async def post_until(poster: ChatClient, done: asyncio.Event) -> dict[str, int]:
    """Post short messages to the rooms in turn, at a typist's pace, until `done`; return the
    last `seq` posted in each room."""
    last: dict[str, int] = {}
    for n in itertools.count():
        room = ROOMS[n % len(ROOMS)]
        last[room] = (await poster.send(room, f"live {n}")).seq
        if done.is_set() and len(last) == len(ROOMS):
            return last
        await asyncio.sleep(1 / POSTS_PER_SECOND)  # the poster's pace
    raise AssertionError("unreachable")


async def test_a_resumed_client_that_never_reads_is_dropped_and_a_reader_gets_everything(
    stored: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    epochs = stored[1]
    loop = asyncio.get_running_loop()
    async with server_on(stored, tmp_path, *HEARTBEAT) as server:  # the default limits
        address = (server.host, server.port)
        victim = await ChatClient.connect("victim", *address)
        poster = await ChatClient.connect("poster", *address)
        for room in ROOMS[1:]:
            await poster.join(room)  # the rooms are loaded: what the attack adds comes next
        peak = Peak(server.process.pid)
        before = peak.bytes
        done = asyncio.Event()
        posting = asyncio.create_task(post_until(poster, done))
        started = loop.time()
        sock = await stuck(*address, from_the_start(epochs))
        pinging = asyncio.create_task(keep_pinging(sock))
        reader = await Reader.resume(*address, from_the_start(epochs))
        try:
            assert await victim.ping() < MAX_PING_S  # while the attacker is waited for
            line = await server.wait_for_log(b"attacker (", timeout=DROP_WITHIN_S)
            dropped_after = loop.time() - started
            assert b"read nothing for" in line and b"dropping" in line, line
            assert (await expect(victim, Left, name="attacker")).reason == "slow"
            assert await victim.ping() < MAX_PING_S
            done.set()
            last = await posting
            await reader.reached(last)
            growth = peak.stop() - before
            for room in ROOMS:  # every message once, in order: the replay, then the live ones
                assert reader.seqs[room] == list(range(1, last[room] + 1)), room
            assert all(last[room] > STORED for room in ROOMS)
            assert growth < MAX_GROWTH, f"the server grew by {growth / 2**20:.1f} MiB"
            print(f"dropped after {dropped_after:.2f} s, grew by {growth / 2**20:.1f} MiB")
        finally:
            pinging.cancel()
            sock.close()
            await reader.close()
            await victim.abort()
            await poster.abort()


HELD_LIMITS = {
    "over its own limit": (("--max-pending-write", str(64 * 1024)), b"far behind while", 200),
    "over the server's ceiling": (
        ("--max-pending-write", str(4 * 2**20), "--max-pending-total", str(6 * 2**20)),
        b"too much unsent data",
        1000,
    ),
}
"""Flags, the log line that says why, and messages of 4 KB to post: frames held behind the
replay pass the client's limit (4 x 64 KiB) or the server's (6 MiB) well before the end."""


@pytest.mark.parametrize(("flags", "why", "posts"), HELD_LIMITS.values(), ids=HELD_LIMITS)
async def test_live_messages_held_behind_a_stuck_replay_count_against_the_limits(
    stored: tuple[Path, dict[str, int]],
    tmp_path: Path,
    flags: tuple[str, ...],
    why: bytes,
    posts: int,
) -> None:
    """The heartbeat timeout is the default (30 s): the drop must come from what is held."""
    async with server_on(stored, tmp_path, *flags, *NO_FLOOD_CONTROL) as server:
        address = (server.host, server.port)
        victim = await ChatClient.connect("victim", *address)
        sock = await stuck(*address, from_the_start(stored[1], ("#lobby",)))
        pinging = asyncio.create_task(keep_pinging(sock))
        try:
            for _ in range(posts // 10):  # a few at a time: the victim reads as it can
                await asyncio.gather(*(victim.send("#lobby", TEXT) for _ in range(10)))
            line = await server.wait_for_log(why)
            assert b"attacker (" in line, line
            assert (await expect(victim, Left, name="attacker")).reason == "slow"
            assert await victim.ping() < MAX_PING_S
        finally:
            pinging.cancel()
            sock.close()
            await victim.abort()
