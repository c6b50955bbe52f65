"""No client can make the server hold much memory for it by not reading.

The attack: say `hello` with `positions` from the start of a long room (the epoch is public),
which starts a replay paced to the reader; then, never reading, ask for history pages, again
and again. Every byte queued for a connection counts against its budget, replies during a
replay included, so each attacker is dropped once a few MiB wait for it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import until
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.bench.servers import resident_bytes
from tuichat.client import ChatClient
from tuichat.protocol import (
    Codec,
    Connection,
    Hello,
    History,
    Message,
    Position,
    Role,
    Welcome,
    encode_frame,
)

ATTACKERS = 16
PAGES = 60
"""History requests each attacker sends (each page is up to 256 KiB)."""
STORED = 2500
TEXT = "x" * 4000
MAX_GROWTH = 120 * 2**20
"""Server memory the attack may add: each attacker may hold four times the 1 MiB budget while
its replay is paced, and is dropped past it (without the bound, 16 x 15 MB)."""
MAX_PING_S = 0.5


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:  # type: ignore[override]
    process = await start_server_process("--db", str(tmp_path / "h.sqlite3"), *NO_FLOOD_CONTROL)
    yield process
    process.process.terminate()
    await process.process.wait()


async def silent_connection(host: str, port: int) -> socket.socket:
    """A connection that will never read: tiny receive buffer, no autotuning."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return sock


async def welcomed(sock: socket.socket) -> None:
    """Read until the `welcome` (after the server's challenge); from then on, nothing is read."""
    conn = Connection(Role.CLIENT)
    async with asyncio.timeout(10):
        while not any(isinstance(e, Welcome) for e in conn.receive_data(await recv(sock))):
            pass


async def recv(sock: socket.socket) -> bytes:
    data = await asyncio.get_running_loop().sock_recv(sock, 4096)
    assert data, "the server closed the connection"
    return data


async def test_a_client_that_never_reads_cannot_pile_up_replies(server: ServerProcess) -> None:
    address = (server.host, server.port)
    filler = await ChatClient.connect("filler", *address)
    victim = await ChatClient.connect("victim", *address)
    sockets: list[socket.socket] = []
    try:
        for _ in range(STORED):
            await filler.send("#lobby", TEXT)
        epoch = filler.positions["#lobby"].epoch
        before = resident_bytes(server.process.pid)
        loop = asyncio.get_running_loop()
        for n in range(ATTACKERS):
            sock = await silent_connection(*address)
            sockets.append(sock)
            start = Position(room="#lobby", epoch=epoch, seq=0)  # a replay of all of it
            hello = Hello(name=f"attacker{n}", positions=(start,), ref=0)
            await loop.sock_sendall(sock, encode_frame(Codec.encode(hello)))
            await welcomed(sock)  # from here on, nothing is read
            pages = [History(room="#lobby", limit=500, ref=i + 1) for i in range(PAGES)]
            await loop.sock_sendall(sock, b"".join(encode_frame(Codec.encode(p)) for p in pages))
        await until(victim.who, ("filler", "victim"))  # every attacker was dropped
        growth = resident_bytes(server.process.pid) - before
        assert growth < MAX_GROWTH, f"the server grew by {growth / 2**20:.0f} MiB"
        assert await victim.ping() < MAX_PING_S
        await filler.send("#lobby", "still fine")
        assert b"attacker" in await server.wait_for_log(b", dropping")  # and the log says why
    finally:
        for sock in sockets:
            sock.close()
        await filler.abort()
        await victim.abort()


async def test_the_server_drops_the_clients_furthest_behind_past_its_ceiling() -> None:
    """With a large budget per client, many slow readers together meet the server's ceiling."""
    server = await start_server_process(
        "--no-history", "--max-pending-write", str(64 * 2**20),
        "--max-pending-total", str(4 * 2**20), *NO_FLOOD_CONTROL,
    )  # fmt: skip
    sender = await ChatClient.connect("sender", server.host, server.port)
    reader = await ChatClient.connect("reader", server.host, server.port)
    loop = asyncio.get_running_loop()
    sockets = []
    try:
        for n in range(8):
            sock = await silent_connection(server.host, server.port)
            sockets.append(sock)
            await loop.sock_sendall(sock, encode_frame(Codec.encode(Hello(name=f"slow{n}"))))
            await welcomed(sock)  # then nothing is read
        await until(
            reader.who, tuple(sorted(["reader", "sender", *(f"slow{n}" for n in range(8))]))
        )
        for number in range(3000):  # 12 MB to each member
            await sender.send("#lobby", f"{number} {TEXT}")
        await until(reader.who, ("reader", "sender"))
        assert b"furthest behind" in await server.wait_for_log(b"too much unsent data")
        count = 0
        async with asyncio.timeout(30):  # and the readers who read got everything
            while count < 3000:
                event = await reader.next_event()
                count += isinstance(event, Message) and event.sender == "sender"
    finally:
        for sock in sockets:
            sock.close()
        await sender.abort()
        await reader.abort()
        server.process.terminate()
        await server.process.wait()
