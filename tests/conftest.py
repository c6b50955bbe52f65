"""Fixtures: a real server on 127.0.0.1 with an ephemeral port, and real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.redis_kinds import connect_to, own_redis, redis, servers  # noqa: F401  (fixtures: Redis, a Cluster)
from tests.server_process import kill_leftovers
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

Connect = Callable[[str], Awaitable[ChatClient]]


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    """A running server in the test's event loop."""
    config = ServerConfig(
        host="127.0.0.1", port=0, server_name="testserver", rate=RateLimits.unlimited()
    )
    srv = ChatServer(config)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def connect(server: ChatServer) -> AsyncIterator[Connect]:
    """Connect welcomed clients to `server`; they are dropped after the test."""
    clients: list[ChatClient] = []

    async def _connect(name: str) -> ChatClient:
        host, port = server.address
        client = await ChatClient.connect(name, host, port)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.abort()


@pytest.fixture(autouse=True)
def _steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The input cursor does not blink in tests, so that screenshots are deterministic."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture(autouse=True)
async def _no_leftover_server_processes() -> AsyncIterator[None]:
    """A test that fails half-way still leaves no server process behind."""
    yield
    await kill_leftovers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The minute-long soak (tests/test_devices_soak.py) runs beside the other tests: start it
    now, and check it last."""
    soaks = [item for item in items if item.nodeid.startswith("tests/test_devices_soak.py")]
    if soaks:
        from tests.test_devices_soak import RUN

        items[:] = [item for item in items if item not in soaks] + soaks
        RUN.start()
