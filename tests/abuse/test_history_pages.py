"""History pages are cheap to ask for and costly to serve: each is priced by its size.

The attack: many connections (each from an address of its own, all in one network) ask for
the largest history pages, again and again. A page of 500 messages takes 6 request tokens, so
a connection gets a few pages at once and under two a second after that; the server's CPU
and a normal user's ping stay low.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.raw import Raw, open_raw
from tests.server_process import NO_FLOOD_CONTROL, start_server_process
from tuichat.bench.servers import cpu_seconds
from tuichat.client import ChatClient
from tuichat.protocol import Error, History, HistoryPage
from tuichat.server.config import RateLimits

ATTACKERS = 40
PAGES = 30
"""Pages of 500 each attacker asks for at once (before: all of them were served)."""
STORED = 600
TEXT = "x" * 400
COST = 1 + 500 // 100
"""Request tokens a page of 500 takes."""
MAX_CPU_S = 3.0
"""Server CPU the whole attack may take (before: every page, about 8 s here)."""
MAX_PING_S = 0.5


async def fill(db: Path) -> None:
    """A room with `STORED` messages, written by a server without flood control."""
    server = await start_server_process("--db", str(db), *NO_FLOOD_CONTROL)
    writer = await ChatClient.connect("writer", server.host, server.port)
    for _ in range(STORED):
        await writer.send("#lobby", TEXT)
    await writer.close()
    server.process.terminate()
    await server.process.wait()


async def test_history_pages_cost_by_their_size(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    await fill(db)
    server = await start_server_process("--db", str(db))  # the default limits
    try:
        victim = await ChatClient.connect("victim", server.host, server.port)
        raws: list[Raw] = []
        for n in range(ATTACKERS):
            raw = await open_raw(server.host, server.port, source=f"127.0.7.{n + 1}")
            await raw.hello(f"reader{n}")
            raws.append(raw)
        before = cpu_seconds(server.process.pid)
        start = asyncio.get_running_loop().time()
        for raw in raws:
            raw.send(*(History(room="#lobby", limit=500, ref=i + 1) for i in range(PAGES)))
        served = 0
        for raw in raws:  # every request is answered: with its page, or refused
            answered: set[int] = set()
            async with asyncio.timeout(30):
                while len(answered) < PAGES:
                    event = await raw.next()
                    assert event is not None, "the server closed the connection"
                    if isinstance(event, HistoryPage | Error) and event.ref:
                        answered.add(event.ref)
                        served += isinstance(event, HistoryPage)
        elapsed = asyncio.get_running_loop().time() - start
        spent = cpu_seconds(server.process.pid) - before
        rate = RateLimits()
        per_connection = (rate.message_burst + rate.messages_per_second * elapsed) / COST
        assert served <= ATTACKERS * (per_connection + 1), (served, elapsed)
        assert spent < MAX_CPU_S, f"the pages took {spent:.2f} s of server CPU"
        assert await victim.ping() < MAX_PING_S
        await victim.close()
    finally:
        server.process.terminate()
        await server.process.wait()
