"""Idle bots from many addresses of few networks cannot take every connection slot.

The attack, scaled down: "10,000 idle bots from 100 addresses of 127/8 took every slot" (the
default 10,000 connections, 100 per address). Here the server has 60 slots and 10 per address,
and the bots come from 10 addresses of one /24: 100 bots, enough to fill it when only the limit
per address stands (the first test shows they do). With a limit per network (20 here) they get
20 slots, the other 80 get a fatal `too_many_connections` and are closed, and a normal user
from another network connects, chats and has its ping under a bound while it happens. A network
that opens connection after connection is held to its rate (a burst, then a refill per second).
Real server processes on 127.0.0.1; Linux lets a client bind any 127.x.y.z as its source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.helpers import expect
from tests.raw import Raw, open_raw
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.client import ChatClient
from tuichat.protocol import Error, Event, Hello, Message, Welcome

SLOTS = 60
PER_ADDRESS = 10
PER_NETWORK = 20
BURST = 20
PER_SECOND = 2.0
BOT_NETWORK = "127.66.0"
BOT_ADDRESSES = [f"{BOT_NETWORK}.{n}" for n in range(1, 11)]
"""Ten addresses of one /24; ten bots each. The normal user comes from 127.0.0.1."""
MAX_PING_S = 0.5
"""The bound on the normal user's round trip while the bots connect."""
LIMITS = (
    "--max-connections", str(SLOTS), "--max-connections-per-ip", str(PER_ADDRESS),
    "--max-connections-per-prefix", str(PER_NETWORK), "--connection-burst", str(BURST),
    "--connections-per-second", str(PER_SECOND),
)  # fmt: skip
Start = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[ServerProcess] = []

    async def _start(*args: str) -> ServerProcess:  # the user pings flat out
        server = await start_server_process("--no-history", *NO_FLOOD_CONTROL, *args)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.process.terminate()
        await server.process.wait()


async def bot(server: ServerProcess, source: str, name: str) -> tuple[Raw, Event | None]:
    """Connect from `source` and say hello: the server's first frame is the welcome or the
    refusal. A welcomed bot then idles (the kernel keeps its connection)."""
    raw = await open_raw(server.host, server.port, source=source)
    raw.send(Hello(name=name, ref=0))
    return raw, await raw.next()


def refusal(first: Event | None) -> tuple[str, str]:
    assert isinstance(first, Error) and first.fatal, first
    return first.code, first.message


async def pinging(user: ChatClient, until: asyncio.Event) -> list[float]:
    """The user's round trips, one after the other, until `until` is set."""
    times = [await user.ping()]
    while not until.is_set():
        times.append(await user.ping())
    return times


async def attack(server: ServerProcess, user: ChatClient) -> tuple[list[Raw], list[Event | None]]:
    """100 bots connect at once while the user pings; return their connections, first frames."""
    done = asyncio.Event()
    pings = asyncio.create_task(pinging(user, done))
    bots = await asyncio.gather(
        *(
            bot(server, address, f"bot{n}-{i}")
            for n, address in enumerate(BOT_ADDRESSES)
            for i in range(PER_ADDRESS)
        )
    )
    done.set()
    assert max(await pings) < MAX_PING_S
    return [raw for raw, _ in bots], [first for _, first in bots]


async def test_the_attack_is_real_with_a_limit_per_address_alone(start: Start) -> None:
    server = await start(*LIMITS, "--max-connections-per-prefix", "1000",
                         "--connection-burst", "1000")  # fmt: skip
    user = await ChatClient.connect("user", server.host, server.port)
    raws, firsts = await attack(server, user)
    try:
        welcomed = [f for f in firsts if isinstance(f, Welcome)]
        assert len(welcomed) == SLOTS - 1  # every slot but the user's
        latecomer = await open_raw(server.host, server.port)
        assert refusal(await latecomer.next())[0] == "server_full"
    finally:
        for raw in raws:
            raw.writer.close()
        await user.abort()


async def test_idle_bots_of_one_network_get_its_share_and_no_more(start: Start) -> None:
    server = await start(*LIMITS)
    user = await ChatClient.connect("user", server.host, server.port)
    raws, firsts = await attack(server, user)
    try:
        welcomed = [f for f in firsts if isinstance(f, Welcome)]
        refused = [refusal(f) for f in firsts if not isinstance(f, Welcome)]
        assert len(welcomed) == PER_NETWORK
        assert set(refused) == {
            (
                "too_many_connections",
                f"at most {PER_NETWORK} connections from one network ({BOT_NETWORK}.0/24)",
            )
        }
        assert len(refused) == len(BOT_ADDRESSES) * PER_ADDRESS - PER_NETWORK
        for raw, first in zip(raws, firsts, strict=True):
            if not isinstance(first, Welcome):
                assert await raw.next() is None  # one frame, then the server closed it
        # the user chats, and another user (of another network) still gets in
        ack = await user.send("#lobby", "still here")
        assert (await expect(user, Message, seq=ack.seq)).text == "still here"
        newcomer = await ChatClient.connect("newcomer", server.host, server.port)
        assert len(await newcomer.who()) == 2 + PER_NETWORK
        assert await user.ping() < MAX_PING_S
        log = await server.wait_for_log(b"refused: at most")  # one line for the 80, not 80
        assert f"({BOT_NETWORK}.0/24)".encode() in log
        await newcomer.close()
    finally:
        for raw in raws:
            raw.writer.close()
        await user.abort()


async def test_a_network_that_keeps_connecting_is_held_to_its_rate(start: Start) -> None:
    """Each connection closes at once, so only the rate limits: a burst, then 2 a second."""
    server = await start(*LIMITS)
    user = await ChatClient.connect("user", server.host, server.port)
    loop = asyncio.get_running_loop()
    attempts = 0

    async def churn(seconds: float) -> tuple[int, list[tuple[str, str]]]:
        """Connect and close, one after the other, for `seconds`; count who got in."""
        nonlocal attempts
        admitted, refused = 0, []
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            attempts += 1
            address = BOT_ADDRESSES[attempts % len(BOT_ADDRESSES)]
            raw, first = await bot(server, address, f"churn{attempts}")
            raw.writer.close()
            if isinstance(first, Welcome):
                admitted += 1
            else:
                refused.append(refusal(first))
        return admitted, refused

    started = loop.time()
    done = asyncio.Event()
    pings = asyncio.create_task(pinging(user, done))
    burst, refused = await churn(0.3)
    elapsed = loop.time() - started
    assert BURST <= burst <= BURST + PER_SECOND * elapsed + 1, (burst, elapsed)
    assert refused and {code for code, _ in refused} == {"too_many_connections"}
    assert any(f"new connections from one network ({BOT_NETWORK}.0/24)" in m for _, m in refused)
    window = 1.0
    kept_up, _ = await churn(window)  # the refill: 2 a second, whatever the attempts
    done.set()
    assert 1 <= kept_up <= PER_SECOND * window + 1, kept_up
    assert max(await pings) < MAX_PING_S
    assert attempts > 100, attempts  # many attempts, few admissions
    newcomer = await ChatClient.connect("newcomer", server.host, server.port)  # another network
    await newcomer.close()
    await user.abort()


async def test_an_exempt_network_has_no_share(start: Start) -> None:
    server = await start(*LIMITS, "--exempt", "127.88.0.0/16")
    count = PER_NETWORK + 5  # past the limits per address, per network and the burst
    bots = await asyncio.gather(*(bot(server, "127.88.0.1", f"ok{n}") for n in range(count)))
    try:
        assert all(isinstance(first, Welcome) for _, first in bots)
    finally:
        for raw, _ in bots:
            raw.writer.close()
