"""What the app looks like: SVG snapshots at fixed sizes, with the clock frozen.

The server runs in a thread with its own loop (snapshot tests run the app in a
loop of their own); the other users are clients on the server's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot

from tests.app_support import (
    FIXED_MS,
    connected,
    fixed_clock,
    log_texts,
    make_app,
    send_line,
    sidebar_counts,
    sidebar_users,
    until,
)
from tuichat.app.app import ChatApp
from tuichat.app.config import Config
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig

T = TypeVar("T")
SIZE = (100, 30)


class ServerThread:
    """A real server on its own loop in a thread, plus clients for the other users."""

    def __init__(self, db: str | None = None, clock: Callable[[], int] = fixed_clock) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = ServerConfig(host="127.0.0.1", port=0, server_name="snapserver", db=db)
        self.server = self.run(_make_server(config, clock))
        self.run(self.server.start())
        self.clients: dict[str, ChatClient] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the server's loop without blocking the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def connect(self, name: str) -> ChatClient:
        client = self.run(ChatClient.connect(name, *self.server.address))
        self.clients[name] = client
        return client

    def stop(self) -> None:
        for client in self.clients.values():
            self.run(client.abort())
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _typing(client: ChatClient, conversation: str) -> None:
    client.typing(conversation)  # (on the loop the client lives on)


async def _make_server(config: ServerConfig, clock: Callable[[], int]) -> ChatServer:
    return ChatServer(config, clock=clock)


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ServerThread]:
    server = ServerThread(db=str(tmp_path / "history.sqlite3"))
    yield server
    server.stop()


def ali_app(chat: ServerThread) -> ChatApp:
    return make_app(chat.server.address, "ali")


async def three_users_talking(pilot: Pilot[Any], chat: ServerThread) -> None:
    app = pilot.app
    assert isinstance(app, ChatApp)
    await until(pilot, lambda: connected(app))
    bob, carol = chat.connect("bob"), chat.connect("carol")
    await until(pilot, lambda: sidebar_users(app) == ("ali", "bob", "carol"))
    chat.run(bob.send("#lobby", "morning all! who broke the build?"))
    chat.run(carol.send("#lobby", "not me — ali, was it the new linter?"))
    await send_line(pilot, "guilty. fixing it now")
    await until(pilot, lambda: "guilty. fixing it now" in log_texts(app))
    chat.run(bob.send("#lobby", "hands ali a coffee", action=True))
    chat.run(
        carol.send(
            "#lobby",
            "a long line to show wrapping: the quick brown fox jumps over the lazy dog, "
            "again and again, until the line is much wider than the log itself",
        )
    )
    chat.run(bob.send("#lobby", "wide characters line up: 你好世界 🎉 ok"))
    await until(pilot, lambda: "wide characters line up: 你好世界 🎉 ok" in log_texts(app))


def test_main_screen_with_three_users(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await three_users_talking(pilot, chat)

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_main_screen_at_80x24(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await three_users_talking(pilot, chat)

    assert snap_compare(ali_app(chat), terminal_size=(80, 24), run_before=run_before)


def test_main_screen_at_200x60(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await three_users_talking(pilot, chat)

    assert snap_compare(ali_app(chat), terminal_size=(200, 60), run_before=run_before)


def test_palette_lists_private_message_targets(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await until(pilot, lambda: connected(app))  # type: ignore[arg-type]
        chat.connect("bob")
        chat.connect("carol")
        await until(pilot, lambda: sidebar_users(app) == ("ali", "bob", "carol"))  # type: ignore[arg-type]
        await pilot.press("ctrl+k", *"private")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await until(pilot, lambda: app.screen.query_one("CommandList").option_count == 2)  # type: ignore[attr-defined]

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_private_messages_in_the_log(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        await until(pilot, lambda: connected(app))
        bob = chat.connect("bob")
        await until(pilot, lambda: "bob" in sidebar_users(app))
        chat.run(bob.private("ali", "psst — lunch at noon?"))
        await until(pilot, lambda: "@bob" in app.privates and connected(app))
        await send_line(pilot, "/msg bob yes, the usual place")  # opens @bob
        await until(pilot, lambda: "yes, the usual place" in log_texts(app))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_sidebar_after_someone_left(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        await until(pilot, lambda: connected(app))
        chat.connect("bob")
        carol = chat.connect("carol")
        await until(pilot, lambda: sidebar_users(app) == ("ali", "bob", "carol"))
        chat.run(carol.close())
        await until(pilot, lambda: sidebar_users(app) == ("ali", "bob"))
        await until(pilot, lambda: "carol quit #lobby" in log_texts(app))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_name_taken_dialog(snap_compare: Any, chat: ServerThread) -> None:
    chat.connect("ali")

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_server_going_away_banner(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        await until(pilot, lambda: connected(app))
        await chat.run_async(chat.server.stop())
        await until(pilot, lambda: app.query_one("#banner").has_class("-visible"))
        await until(pilot, lambda: not connected(app))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_history_on_join_looks_distinct(snap_compare: Any, chat: ServerThread) -> None:
    bob = chat.connect("bob")
    for text in ("did anyone see the deploy?", "it went fine", "coffee later?"):
        chat.run(bob.send("#lobby", text))

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        await until(pilot, lambda: connected(app))
        chat.run(bob.send("#lobby", "oh hi ali, this one is live"))
        await until(pilot, lambda: "oh hi ali, this one is live" in log_texts(app))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_reconnecting_banner(snap_compare: Any, chat: ServerThread) -> None:
    app = make_app(chat.server.address, "ali", reconnect=True)

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: connected(app))
        await chat.run_async(chat.server.stop())  # gone, and it does not come back
        await until(pilot, lambda: app.query_one("#status").state == "reconnecting…")  # type: ignore[attr-defined]
        await until(pilot, lambda: app.query_one("#banner").has_class("-visible"))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_sidebar_with_unread_and_mention_counts(snap_compare: Any, chat: ServerThread) -> None:
    bob, carol = chat.connect("bob"), chat.connect("carol")
    chat.run(bob.join("#dev"))
    chat.run(carol.join("#ops"))

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        await until(pilot, lambda: connected(app))
        for room in ("#dev", "#ops"):
            await send_line(pilot, f"/join {room}")
            await until(pilot, lambda room=room: app.current_room == room)  # type: ignore[misc]
        await pilot.press("alt+1")
        await until(pilot, lambda: connected(app))
        chat.run(bob.send("#dev", "the deploy is done"))
        chat.run(bob.send("#dev", "ali, can you check the logs?"))
        chat.run(carol.send("#ops", "disk at 80% on db-2"))
        chat.run(bob.private("ali", "got a minute?"))
        wanted = {"#lobby": (0, 0), "#dev": (2, 1), "#ops": (1, 0), "@bob": (1, 0)}
        await until(pilot, lambda: sidebar_counts(app) == wanted and connected(app))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_composer_with_three_lines(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: connected(pilot.app))  # type: ignore[arg-type]
        await pilot.press(*"first line", "shift+enter", *"second line", "ctrl+j", *"third")

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)


def test_a_light_theme(snap_compare: Any, chat: ServerThread) -> None:
    app = make_app(chat.server.address, "ali", config=Config(name="ali", theme="textual-light"))

    async def run_before(pilot: Pilot[Any]) -> None:
        await three_users_talking(pilot, chat)
        chat.run(chat.clients["bob"].send("#lobby", "ali: the light theme reads well"))
        await until(pilot, lambda: "ali: the light theme reads well" in log_texts(app))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_a_narrow_terminal_folds_the_sidebar(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await three_users_talking(pilot, chat)

    assert snap_compare(ali_app(chat), terminal_size=(60, 20), run_before=run_before)


class DayClock:
    """A server clock moved on by hand: messages of other days."""

    def __init__(self) -> None:
        self.ms = FIXED_MS - 2 * 86_400_000  # two days before the app's frozen now

    def __call__(self) -> int:
        return self.ms


def test_date_lines_between_days(snap_compare: Any, tmp_path: Path) -> None:
    clock = DayClock()
    chat = ServerThread(db=str(tmp_path / "history.sqlite3"), clock=clock)
    try:
        bob = chat.connect("bob")
        chat.run(bob.send("#lobby", "tuesday: the release is out"))
        clock.ms += 86_400_000 + 3_600_000
        chat.run(bob.send("#lobby", "wednesday: two bug reports came in"))
        clock.ms += 86_400_000

        async def run_before(pilot: Pilot[Any]) -> None:
            app = pilot.app
            assert isinstance(app, ChatApp)
            await until(pilot, lambda: connected(app))
            chat.run(bob.send("#lobby", "thursday: both fixed"))
            await until(pilot, lambda: "thursday: both fixed" in log_texts(app))

        assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)
    finally:
        chat.stop()


def test_away_users_and_the_typing_line(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        await three_users_talking(pilot, chat)
        bob, carol = chat.clients["bob"], chat.clients["carol"]
        chat.run(bob.set_away("lunch"))
        await until(pilot, lambda: "bob away" in app.query_one(Sidebar).text())
        chat.run(_typing(carol, "#lobby"))
        await until(pilot, lambda: app.query_one("#typing").has_class("-visible"))

    assert snap_compare(ali_app(chat), terminal_size=SIZE, run_before=run_before)
