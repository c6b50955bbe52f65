"""The app with history: pages on join and on scrolling up, and riding out a lost connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.app_support import connected, log_texts, make_app, send_line, until
from tests.proxy import Proxy
from tuichat.app.app import ChatApp
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits


@pytest.fixture
async def history_server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    server = ChatServer(
        ServerConfig(
            port=0,
            server_name="hist",
            db=str(tmp_path / "history.sqlite3"),
            rate=RateLimits.unlimited(),
        )
    )
    await server.start()
    yield server
    await server.stop()


async def test_history_on_join_is_marked_and_older_pages_load_when_scrolling_up(
    history_server: ChatServer,
) -> None:
    bob = await ChatClient.connect("bob", *history_server.address)
    for i in range(120):
        await bob.send("#lobby", f"old {i}")
    app = make_app(history_server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        log = app.query_one(ChatLog)
        history = [e for e in log.entries if e.history]
        assert [e.text for e in history] == [f"old {i}" for i in range(70, 120)]
        assert "── earlier messages above ──" in log_texts(app)
        await bob.send("#lobby", "live one")
        await until(pilot, lambda: "live one" in log_texts(app))
        assert not next(e for e in log.entries if e.text == "live one").history
        for expected in (100, 120):  # scroll to the top: the next page comes in above
            log.scroll_to(y=0, animate=False)
            await until(pilot, lambda n=expected: sum(e.history for e in log.entries) == n)  # type: ignore[misc]
            assert log.scroll_y > 0  # the view stayed on what was shown, the new page is above
        texts = log_texts(app)
        assert texts[0] == "start of the room"
        old = [t for t in texts if t.startswith("old ")]
        assert old == [f"old {i}" for i in range(120)]  # in order, each once
    await bob.close()


@contextlib.asynccontextmanager
async def behind_a_proxy(server: ChatServer) -> AsyncIterator[tuple[Proxy, ChatClient, ChatApp]]:
    """Bob on the server; ali's app (not started), reconnecting, through a proxy to cut."""
    proxy = Proxy(server.address)
    await proxy.start()
    bob = await ChatClient.connect("bob", *server.address)
    try:
        yield proxy, bob, make_app(("127.0.0.1", proxy.port), "ali", reconnect=True)
    finally:
        await bob.close()
        await proxy.stop()


async def test_a_lost_connection_shows_a_banner_and_the_app_carries_on_with_its_log(
    history_server: ChatServer,
) -> None:
    async with (
        behind_a_proxy(history_server) as (proxy, bob, app),
        app.run_test(size=(100, 30)) as pilot,
    ):
        await until(pilot, lambda: connected(app))
        await bob.send("#lobby", "before the cut")
        await until(pilot, lambda: "before the cut" in log_texts(app))
        await proxy.refuse()
        banner = app.query_one("#banner")
        await until(pilot, lambda: banner.has_class("-visible"))
        assert "reconnecting" in str(banner.render())
        await send_line(pilot, "typed while away")
        await bob.send("#lobby", "said while ali was away")
        await proxy.accept()
        await until(pilot, lambda: not banner.has_class("-visible"))
        await until(pilot, lambda: "typed while away" in log_texts(app))
        await until(pilot, lambda: "said while ali was away" in log_texts(app))
        texts = log_texts(app)
        for line in ("before the cut", "said while ali was away", "typed while away"):
            assert texts.count(line) == 1
        assert app.query_one("#status").state == "connected"  # type: ignore[attr-defined]
        page = await bob.history("#lobby")
        assert [m.text for m in page.messages].count("typed while away") == 1


async def test_the_log_keeps_following_new_lines_after_the_banner_came_and_went(
    history_server: ChatServer,
) -> None:
    async with (
        behind_a_proxy(history_server) as (proxy, bob, app),
        app.run_test(size=(100, 20)) as pilot,
    ):
        await until(pilot, lambda: connected(app))
        for i in range(40):  # more than the screen holds
            await bob.send("#lobby", f"line {i}")
        await until(pilot, lambda: "line 39" in log_texts(app))
        log = app.query_one(ChatLog)
        await proxy.refuse()
        banner = app.query_one("#banner")
        await until(pilot, lambda: banner.has_class("-visible"))
        await proxy.accept()
        await until(pilot, lambda: not banner.has_class("-visible"))
        await bob.send("#lobby", "after the reconnection")
        await until(pilot, lambda: "after the reconnection" in log_texts(app))
        await pilot.pause()
        assert log.is_vertical_scroll_end and log.unseen == 0  # shown, not "1 new message"
