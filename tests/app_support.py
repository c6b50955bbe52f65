"""Support for app tests: apps wired to a real server, with a fixed clock and time zone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC

from textual.pilot import Pilot

from tuichat.app.app import ChatApp
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.client import Backoff, ChatClient

FIXED_MS = 1_767_269_400_000  # 2026-01-01 12:10 UTC
TIMEOUT = 10.0


def fixed_clock() -> int:
    return FIXED_MS


def make_app(address: tuple[str, int], name: str, *, reconnect: bool = False) -> ChatApp:
    """An app for `name` connected to the server at `address`, with time frozen."""
    host, port = address

    async def connector(user: str) -> ChatClient:
        return await ChatClient.connect(
            user, host, port, reconnect=reconnect, backoff=Backoff(first=0.05, cap=0.2)
        )

    return ChatApp(
        connector,
        name,
        server_label=host,
        tz=UTC,
        ping_interval=None,
        clock=fixed_clock,
    )


async def until(
    pilot: Pilot[object], condition: Callable[[], bool], timeout: float = TIMEOUT
) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause()
            await asyncio.sleep(0)


def log_texts(app: ChatApp) -> list[str]:
    """The texts of the log entries shown."""
    return [entry.text for entry in app.query_one(ChatLog).entries]


def sidebar_users(app: ChatApp) -> tuple[str, ...]:
    return app.query_one(Sidebar).users


def connected(app: ChatApp) -> bool:
    """Connected, and the first page of history of every room is in."""
    return (
        app.client is not None
        and app.client.connected
        and bool(app.rooms)
        and all(view.pages_loaded for view in app.rooms.values())
    )
