"""One Redis or a Redis Cluster, for tests that must pass on both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.deployments import SHARED_CLUSTER
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

RedisStore = RedisServer | RedisCluster


@pytest.fixture(params=["redis", "redis-cluster"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    """A real redis-server, or a real three-node Redis Cluster (the session's, emptied: it takes
    seconds to form; a test that restarts or stops it takes `own_redis`)."""
    if request.param == "redis-cluster":
        yield await SHARED_CLUSTER.get(request.config)
        return
    store = RedisServer()
    await store.start()
    yield store
    await store.stop()


@pytest.fixture(params=["redis", "redis-cluster"])
async def own_redis(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    """A real redis-server, or a real three-node Redis Cluster, of this test alone."""
    store: RedisStore = RedisServer() if request.param == "redis" else RedisCluster()
    await store.start()
    yield store
    await store.stop()


@pytest.fixture
async def servers(redis: RedisStore) -> AsyncIterator[tuple[ChatServer, ChatServer]]:
    """Two servers sharing the chat through `redis`."""
    pair = (ChatServer(redis_config(redis, "a")), ChatServer(redis_config(redis, "b")))
    for server in pair:
        await server.start()
    yield pair
    for server in pair:
        await server.stop()


ConnectTo = Callable[[str, ChatServer], Awaitable[ChatClient]]


@pytest.fixture
async def connect_to() -> AsyncIterator[ConnectTo]:
    """Connect welcomed clients to a given server; they are dropped after the test."""
    clients: list[ChatClient] = []

    async def _connect(name: str, server: ChatServer) -> ChatClient:
        clients.append(await ChatClient.connect(name, *server.address))
        return clients[-1]

    yield _connect
    for client in clients:
        await client.abort()


def redis_config(redis: RedisStore, name: str, **settings: Any) -> ServerConfig:
    """A test server's settings on `redis` (no flood control)."""
    return ServerConfig(
        host="127.0.0.1", port=0, server_name=name, rate=RateLimits.unlimited(),
        redis_url=redis.url, redis_cluster=isinstance(redis, RedisCluster), **settings,
    )  # fmt: skip


async def redis_client(redis: RedisStore) -> Any:
    """A redis-py client of the test's own (to break things with)."""
    if isinstance(redis, RedisCluster):
        from redis.asyncio.cluster import RedisCluster as Client

        return Client.from_url(redis.url)
    from redis.asyncio import Redis

    return Redis.from_url(redis.url)
