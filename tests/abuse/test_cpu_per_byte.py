"""No request costs the server much CPU per byte received, however it is built.

Each request type is sent at its most expensive: fields as long as a frame allows, text
that needs cleaning, names that need look-alike keys, rooms that need folding. A real server
process is measured by the kernel's account of its CPU time; a normal user's ping is taken
while the flood goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.raw import Raw, open_raw
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.bench.servers import cpu_seconds
from tuichat.client import ChatClient, SigningKey
from tuichat.protocol import (
    Codec,
    Hello,
    History,
    Ignore,
    Join,
    ListRooms,
    Moderate,
    ModLog,
    Part,
    Ping,
    Private,
    Send,
    SetTopic,
    Who,
    encode_frame,
)

FIELD = 60_000
"""Characters in the long field of each request (a frame holds 64 KiB)."""
FRAMES = 40
"""Requests of each kind per connection."""
CONNECTIONS = 4
MAX_NS_PER_BYTE = 50
"""The bound: server CPU per received byte, for the worst request of every kind..."""
MAX_US_PER_REQUEST = 100
"""...beyond what any request costs however short it is (a ping, a room list)."""
MAX_US_PER_SIGNATURE = 250
"""...and beyond one Ed25519 verification (about 120 µs here) for a hello with a well-formed
key and signature: the one check that cannot be cheap (the request and strike buckets, and
the connection rate per address, bound how often it can be asked for)."""
MAX_PING_S = 0.5
"""The bound on a normal user's round trip while the others flood."""

LONG_NAME = "a" * FIELD
LONG_ROOM = "#" + "Ä" * (FIELD // 2)  # folding is needed before the length check can say no
DIRTY = "x\x01" * (FIELD // 2)  # control characters: the text must be cleaned
LOOK_ALIKES = "\u0430" * (FIELD // 2)  # Cyrillic a: every character has a skeleton
PUBLIC_KEY = SigningKey.generate().public
WRONG_SIGNATURE = SigningKey.generate().sign(b"something else")  # well-formed: it is checked

REQUESTS: dict[str, Callable[[int], Any]] = {
    "hello (long name)": lambda i: Hello(name=LONG_NAME, ref=i),
    "hello (long public key)": lambda i: Hello(
        name=f"k{i}", public_key="k" * FIELD, signature="s" * 86, ref=i
    ),
    "hello (long legacy proof)": lambda i: Hello(
        name=f"l{i}", public_key=PUBLIC_KEY, signature="s" * 86, legacy_proof="l" * FIELD, ref=i
    ),
    "hello (wrong signature)": lambda i: Hello(
        name=f"w{i}", public_key=PUBLIC_KEY, signature=WRONG_SIGNATURE, ref=i
    ),
    "hello (long token)": lambda i: Hello(name=f"t{i}", token="t" * FIELD, ref=i),
    "send (long dirty text)": lambda i: Send(room="#lobby", text=DIRTY, id=str(i), ref=i),
    "send (long room)": lambda i: Send(room=LONG_ROOM, text="hi", ref=i),
    "private (long look-alike target)": lambda i: Private(to=LOOK_ALIKES, text="hi", ref=i),
    "private (long dirty text)": lambda i: Private(to="victim", text=DIRTY, ref=i),
    "private (long id)": lambda i: Private(to="victim", text="hi", id="i" * FIELD, ref=i),
    "join (long room)": lambda i: Join(room=LONG_ROOM, ref=i),
    "part (long room)": lambda i: Part(room=LONG_ROOM, ref=i),
    "who (long room)": lambda i: Who(room=LONG_ROOM, ref=i),
    "history (long room)": lambda i: History(room=LONG_ROOM, ref=i),
    "list_rooms": lambda i: ListRooms(ref=i),
    "moderate (long look-alike name)": lambda i: Moderate(
        room="#lobby", action="mute", name=LOOK_ALIKES, ref=i
    ),
    "moderate (long dirty reason)": lambda i: Moderate(
        room="#lobby", action="mute", name="victim", reason=DIRTY, ref=i
    ),
    "set_topic (long dirty topic)": lambda i: SetTopic(room="#lobby", topic=DIRTY, ref=i),
    "ignore (long look-alike name)": lambda i: Ignore(name=LOOK_ALIKES, ref=i),
    "mod_log (long room)": lambda i: ModLog(room=LONG_ROOM, ref=i),
    "ping": lambda i: Ping(data=i, ref=i),
}


@pytest.fixture
async def server() -> AsyncIterator[ServerProcess]:  # type: ignore[override]
    process = await start_server_process("--no-history", *NO_FLOOD_CONTROL)
    yield process
    process.process.terminate()
    await process.process.wait()


async def flood(server: ServerProcess, kind: str) -> int:
    """Send `FRAMES` requests of `kind` on each of `CONNECTIONS` connections; wait for every
    answer; return the bytes sent."""
    make = REQUESTS[kind]
    raws: list[Raw] = []
    for n in range(CONNECTIONS):
        raw = await open_raw(server.host, server.port)
        if not kind.startswith("hello"):
            await raw.hello(f"flooder{n}")
        raws.append(raw)
    sent = 0
    for raw in raws:
        data = b"".join(encode_frame(Codec.encode(make(i + 1))) for i in range(FRAMES))
        raw.write(data)
        sent += len(data)
    for raw in raws:
        if kind.startswith("hello"):  # refused (or welcomed once): the first answer tells
            await raw.reply(1, timeout=30)
        else:
            await raw.reply(FRAMES, timeout=30)
        raw.writer.close()
    return sent


async def test_no_request_costs_much_cpu_per_byte_and_a_normal_user_stays_responsive(
    server: ServerProcess,
) -> None:
    victim = await ChatClient.connect("victim", server.host, server.port)
    worst: dict[str, float] = {}
    try:
        for kind in REQUESTS:
            before = cpu_seconds(server.process.pid)
            pinging = asyncio.ensure_future(victim.ping())
            sent = await flood(server, kind)
            rtt = await asyncio.wait_for(pinging, 30)
            spent_ns = (cpu_seconds(server.process.pid) - before) * 1e9
            requests = FRAMES * CONNECTIONS
            allowance = MAX_US_PER_REQUEST + (MAX_US_PER_SIGNATURE if "signature" in kind else 0)
            worst[kind] = max(0.0, spent_ns - requests * allowance * 1000) / sent
            assert rtt < MAX_PING_S, f"{kind}: a normal user's ping took {rtt:.2f} s"
        print("server CPU per byte beyond the per-request allowance:", worst)
        too_costly = {k: round(v) for k, v in worst.items() if v > MAX_NS_PER_BYTE}
        assert not too_costly, f"ns of server CPU per byte received: {too_costly}"
        assert await victim.ping() < MAX_PING_S
    finally:
        await victim.abort()
