"""Every way to deploy the server, behind one fixture: the contract suite runs on each of them.

`deployment` is parametrized over the storage and scale-out modes (`memory`, `sqlite`, `redis`,
`redis-cluster`). Each gives two servers: two real `ChatServer`s sharing the Redis for the Redis
kinds, and the same server twice for the single-server kinds (a single server is a cluster of
one), so a test that connects "to the other server" runs unchanged on every kind.

Import the fixture into a test module with `from tests.deployments import deployment_fixture`
(it is registered under the name `deployment`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.helpers import TIMEOUT
from tests.raw import Raw, open_raw
from tests.redis_server import RedisServer
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

if TYPE_CHECKING:
    from tests.redis_cluster import RedisCluster

T = TypeVar("T")

KINDS = ("memory", "sqlite", "redis", "redis-cluster")
"""The deployments, as the test ids name them."""
SHARED = frozenset({"redis", "redis-cluster"})
"""The kinds with two real servers (sharing one store); the others run one server twice."""


class Deployment:
    """Two servers of one chat (or one server twice) and the clients a test connected to them."""

    def __init__(self, kind: str, configs: tuple[ServerConfig, ServerConfig]) -> None:
        self.kind = kind
        self.durable = kind != "memory"
        """Whether history, numbering and registrations survive `restart()`."""
        self._configs = configs
        self._started: list[ChatServer] = []
        self._clients: list[ChatClient] = []
        self._raws: list[Raw] = []

    @property
    def servers(self) -> tuple[ChatServer, ChatServer]:
        """The two servers (the same one twice for a single-server kind)."""
        assert self._started, "the deployment is not started"
        first = self._started[0]
        return first, self._started[-1]

    async def start(self) -> None:
        assert not self._started, "already started"
        single = self.kind not in SHARED
        for config in self._configs[:1] if single else self._configs:
            server = ChatServer(config)
            self._started.append(server)
            await server.start()

    async def stop(self) -> None:
        started, self._started = self._started, []
        for server in started:
            await server.stop()

    async def restart(self) -> None:
        """Stop the servers and start them again on the same storage (on new ports)."""
        await self.stop()
        await self.start()

    async def connect(self, name: str, on: int = 0, **kwargs: Any) -> ChatClient:
        """A welcomed client on server `on` (0 or 1); aborted when the test ends."""
        client = await ChatClient.connect(name, *self.servers[on].address, **kwargs)
        self._clients.append(client)
        return client

    async def raw(self, on: int = 0) -> Raw:
        """A connection to server `on` driven by hand (tests/raw.py); closed when the test ends."""
        connection = await open_raw(*self.servers[on].address)
        self._raws.append(connection)
        return connection

    async def close(self) -> None:
        """Drop every client and connection, then stop the servers."""
        for client in self._clients:
            await client.abort()
        for connection in self._raws:
            connection.writer.close()
        for connection in self._raws:
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
        await self.stop()


class SharedCluster:
    """One Redis Cluster for the whole session: it takes seconds to form, a flush takes
    milliseconds.

    Its processes belong to an event loop of its own, on a thread of its own, so that it outlives
    the loop of each test (pytest-asyncio gives every test a new one).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cluster: RedisCluster | None = None
        self._failure: BaseException | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="redis-cluster", daemon=True
            )
            self._thread.start()
            self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def get(self, config: pytest.Config) -> RedisCluster:
        """The running cluster, emptied (started on first use, stopped when pytest ends)."""
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
        if self._failure is not None:
            raise self._failure  # it failed to start once: say so again, at once
        if self._cluster is None:
            from tests.redis_cluster import RedisCluster

            cluster = RedisCluster()
            config.add_cleanup(self.close)
            try:
                await asyncio.wrap_future(self._run(cluster.start()))
            except BaseException as exc:
                self._failure = exc
                raise
            self._cluster = cluster
        await self._cluster.flushall()
        return self._cluster

    def close(self) -> None:
        loop, cluster = self._loop, self._cluster
        if loop is None:
            return
        if cluster is not None:
            self._run(cluster.stop()).result(timeout=TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT)
        loop.close()
        self._loop = None
        self._thread = None
        self._cluster = None


SHARED_CLUSTER = SharedCluster()
"""The session's Redis Cluster, stopped when pytest ends."""


def _config(name: str, **storage: Any) -> ServerConfig:
    return ServerConfig(
        host="127.0.0.1", port=0, server_name=name, rate=RateLimits.unlimited(), **storage
    )


@contextlib.asynccontextmanager
async def opened(
    kind: str,
    config: pytest.Config | None,
    tmp_path: Path,
    cluster: RedisCluster | None = None,
    **settings: Any,
) -> AsyncIterator[Deployment]:
    """A started deployment of `kind`, torn down when the block ends (`redis-cluster`: on
    `cluster`, or else on the session's shared one, emptied); `settings` are the servers'
    (`ServerConfig` fields)."""
    redis: RedisServer | None = None
    storage: dict[str, Any]
    if kind == "memory":
        storage = {"db": None}
    elif kind == "sqlite":
        storage = {"db": str(tmp_path / "history.sqlite3")}
    elif kind == "redis":
        redis = RedisServer()
        await redis.start()
        storage = {"redis_url": redis.url}
    else:
        if cluster is None:
            assert config is not None
            cluster = await SHARED_CLUSTER.get(config)
        storage = {"redis_url": cluster.url, "redis_cluster": True}
    deployment: Deployment | None = None
    try:
        configs = (_config("a", **storage, **settings), _config("b", **storage, **settings))
        deployment = Deployment(kind, configs)
        await deployment.start()
        yield deployment
    finally:
        if deployment is not None:
            await deployment.close()
        if redis is not None:
            await redis.stop()


@pytest.fixture(name="deployment", params=KINDS, ids=KINDS)
async def deployment_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """A started deployment of kind `request.param`, torn down after the test."""
    async with opened(request.param, request.config, tmp_path) as deployment:
        yield deployment
