"""A `pong` is a request like any other for flood control, though it is never answered.

The attack: 21-byte pongs as fast as one connection can send them, before any `hello` and
after one, again from new connections. Before, pongs were never limited: each was parsed and
ignored, and one connection kept a server core busy. Now each takes a request token of its
connection; a refused one gets no reply but takes a strike, and the connection gets the fatal
`flood` error once the strikes run out. A client that answers the server's pings is never
refused: the server pings only after a heartbeat interval of silence, when the bucket is full.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.raw import Raw, open_raw
from tests.server_process import start_server_process
from tuichat.bench.servers import cpu_seconds
from tuichat.client import ChatClient
from tuichat.protocol import Codec, Error, Ping, Pong, encode_frame
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

PONG = encode_frame(Codec.encode(Pong(data=0)))
CHUNK = PONG * 3000
"""63 KB of pongs, written at once."""
FLOOD_BYTES = 8 * 2**20
"""The most one connection sends (before: all of it was read and parsed, about 3 s of server
CPU here for each connection)."""
ROUNDS = 10
"""Connections that flood, one after the other, as an attacker reconnects."""
MAX_DROP_S = 2.0
"""How soon after its flood begins a connection gets `flood`."""
MAX_CPU_S = 1.0
"""Server CPU all the rounds together may take (about 35 ms a connection here, most of it
decoding the first read, up to 256 KiB of pongs, before the strikes run out)."""
MAX_PING_S = 0.5
LIMITS = RateLimits()


async def flood(raw: Raw) -> None:
    """Write pongs as fast as the connection takes them, until `FLOOD_BYTES` or the drop."""
    with contextlib.suppress(OSError):  # reset by the server: the end
        for _ in range(FLOOD_BYTES // len(CHUNK)):
            raw.write(CHUNK)
            await raw.writer.drain()


@pytest.mark.parametrize("welcomed", [False, True], ids=["before hello", "after hello"])
async def test_a_pong_flood_ends_in_a_fatal_flood_error_at_little_cost(welcomed: bool) -> None:
    server = await start_server_process("--no-history")  # the default limits
    victim = await ChatClient.connect("victim", server.host, server.port)
    loop = asyncio.get_running_loop()
    try:
        before = cpu_seconds(server.process.pid)
        slowest_drop = 0.0
        for n in range(ROUNDS):
            raw = await open_raw(server.host, server.port)
            if welcomed:
                await raw.hello(f"flooder{n}")
            pinging = asyncio.ensure_future(victim.ping())
            started = loop.time()
            flooding = asyncio.create_task(flood(raw))
            error = await raw.next_error(timeout=MAX_DROP_S)  # refused pongs get no reply
            slowest_drop = max(slowest_drop, loop.time() - started)
            assert (error.code, error.fatal) == ("flood", True), error
            await flooding
            raw.writer.close()
            assert await pinging < MAX_PING_S
        spent = cpu_seconds(server.process.pid) - before
        assert spent < MAX_CPU_S, f"the pong floods took {spent:.2f} s of server CPU"
        assert await victim.ping() < MAX_PING_S
        print(f"slowest drop {slowest_drop * 1000:.0f} ms, server CPU {spent * 1000:.0f} ms")
    finally:
        await victim.abort()
        server.process.terminate()
        await server.process.wait()


async def test_a_client_that_answers_pings_is_never_refused_even_with_no_strike_left() -> None:
    """Refused requests took every strike, so one refused pong would be fatal; the server's
    pings, each after a heartbeat interval of silence, are answered without harm."""
    config = ServerConfig(
        host="127.0.0.1", port=0, heartbeat_interval=0.2, heartbeat_timeout=2.0
    )  # the default flood limits
    server = ChatServer(config)
    await server.start()
    raw = await open_raw(*server.address)
    try:
        await raw.hello("steady")
        burst = LIMITS.message_burst - 1 + LIMITS.strikes  # the hello took a request token
        raw.send(*(Ping(data=ref, ref=ref) for ref in range(1, burst + 1)))
        answers = [await raw.reply(ref) for ref in range(1, burst + 1)]
        refused = [a for a in answers if isinstance(a, Error)]
        assert [(e.code, e.fatal) for e in refused] == [("rate_limited", False)] * LIMITS.strikes
        pings = 0
        async with asyncio.timeout(10):
            while pings < 5:  # the server's pings, one a heartbeat interval
                event = await raw.next()
                assert event is not None, "the server closed the connection"
                assert not isinstance(event, Error), event
                if isinstance(event, Ping):
                    raw.send(Pong(data=event.data, ref=event.ref))
                    pings += 1
        raw.send(Ping(data=0, ref=999))
        assert await raw.reply(999) == Pong(data=0, ref=999)
    finally:
        raw.writer.close()
        await server.stop()
