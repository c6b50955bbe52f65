"""Chaos on a two-server chat: Redis restarted and a server killed while messages flow."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.helpers import collect, expect
from tests.proxy import Proxy
from tests.redis_cluster import RedisCluster
from tests.redis_kinds import RedisStore
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.client import Backoff, ChatClient
from tuichat.protocol import Joined, Left, Message

EACH = 300
"""Messages each of the two senders sends."""
WINDOW = 8
"""Sends each sender keeps in flight."""


@contextlib.asynccontextmanager
async def two_servers(
    redis: RedisStore, *flags: str
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes sharing the chat through a real Redis (or Redis Cluster)."""
    if isinstance(redis, RedisCluster):
        flags = ("--redis-cluster", *flags)
    servers = [await start_server_process("--redis", redis.url, *flags) for _ in range(2)]
    drains = [asyncio.create_task(drain(s)) for s in servers]
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            if server.process.returncode is None:
                server.process.terminate()
                async with asyncio.timeout(10):  # a server must stop on SIGTERM, even after chaos
                    await server.process.wait()
        for task in drains:
            task.cancel()


async def drain(server: ServerProcess) -> None:
    """Read the server's log as it comes, so that it never waits on a full pipe."""
    assert server.process.stderr is not None
    with contextlib.suppress(Exception):
        while line := await server.process.stderr.readline():
            server.log.append(line)


async def test_redis_restarted_and_a_server_killed_mid_stream_lose_nothing(
    own_redis: RedisStore,
) -> None:
    async with two_servers(own_redis, *NO_FLOOD_CONTROL) as (a, b):
        await redis_restarts_and_a_dies(own_redis, a, b)


async def redis_restarts_and_a_dies(redis: RedisStore, a: ServerProcess, b: ServerProcess) -> None:
    balancer = Proxy((a.host, a.port))  # a's clients come through it, as through a load balancer
    host, port = await balancer.start()
    options = {"reconnect": True, "backoff": Backoff(first=0.05, cap=0.2), "heartbeat": 0.5}
    clients: list[ChatClient] = []
    try:
        ali = await ChatClient.connect("ali", host, port, **options)  # type: ignore[arg-type]
        carol = await ChatClient.connect("carol", host, port, **options)  # type: ignore[arg-type]
        bob = await ChatClient.connect("bob", b.host, b.port, **options)  # type: ignore[arg-type]
        dave = await ChatClient.connect("dave", b.host, b.port, **options)  # type: ignore[arg-type]
        clients = [ali, carol, bob, dave]
        progress = {"ali": 0, "bob": 0}
        third, two_thirds = asyncio.Event(), asyncio.Event()

        async def sender(client: ChatClient, name: str) -> None:
            window = asyncio.Semaphore(WINDOW)

            async def one(i: int) -> None:
                async with window:
                    await client.send("#lobby", f"{name} {i}")
                progress[name] += 1
                done = min(progress.values())
                if done >= EACH // 3:
                    third.set()
                if done >= 2 * EACH // 3:
                    two_thirds.set()

            await asyncio.gather(*(one(i) for i in range(EACH)))

        sending = asyncio.gather(sender(ali, "ali"), sender(bob, "bob"))
        async with asyncio.timeout(60):
            await third.wait()
            await redis.restart()  # SIGKILL (every node): what was acknowledged is in the AOF
            await two_thirds.wait()
            balancer.target = (b.host, b.port)  # the balancer sends a's clients to b from now on
            a.process.kill()  # and a dies mid-stream
            try:
                await sending  # every send acknowledged, some after a retry through b
            except Exception as exc:  # what the servers said is the only way to tell why
                logs = b"".join(a.log + b.log).decode(errors="replace")
                raise AssertionError(f"a send failed: {exc}\n{logs}") from exc
        total = 2 * EACH
        orders = []
        for client in clients:
            messages = await collect(client, Message, total, timeout=30)
            assert [m.seq for m in messages] == list(range(1, total + 1))  # no gap, no repeat
            assert sorted(m.text for m in messages) == sorted(
                f"{name} {i}" for name in ("ali", "bob") for i in range(EACH)
            )  # every message stored exactly once
            orders.append([m.text for m in messages])
        assert all(order == orders[0] for order in orders)
        log = b"".join(b.log)
        assert b"ali is back from another server" in log, (
            log.decode()
        )  # a's sessions really moved to b
    finally:
        for client in clients:
            await client.abort()
        await balancer.stop()


async def test_the_users_of_a_killed_server_are_gone_once_its_presence_expires(
    redis: RedisStore,
) -> None:
    async with two_servers(redis, "--presence-ttl", "1") as (a, b):
        await a_server_dies(a, b)


async def a_server_dies(a: ServerProcess, b: ServerProcess) -> None:
    clients: list[ChatClient] = []
    try:
        zed = await ChatClient.connect("zed", a.host, a.port)
        ali = await ChatClient.connect("ali", b.host, b.port)
        clients = [zed, ali]
        await ali.join("#dev")
        await zed.join("#dev")
        await expect(ali, Joined, room="#dev", name="zed")
        a.process.kill()  # no goodbye, no logout: only its presence entry can tell
        left = [await expect(ali, Left, name="zed", timeout=10) for _ in range(2)]
        assert {(e.room, e.reason) for e in left} == {("#lobby", "timeout"), ("#dev", "timeout")}
        assert await ali.who() == ("ali",)
        again = await ChatClient.connect("zed", b.host, b.port)  # the name is free again
        clients.append(again)
    finally:
        for client in clients:
            await client.abort()
