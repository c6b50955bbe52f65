"""Fixtures of the attack tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.server_process import ServerProcess


@pytest.fixture
async def servers() -> AsyncIterator[list[ServerProcess]]:
    """Servers a test started (its `start` results go here); killed if still running."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
