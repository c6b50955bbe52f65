"""Away and typing in the app: what another user does shows, and what we do reaches them."""

from __future__ import annotations

from tests.app_support import connected, log_texts, make_app, send_line, until
from tests.conftest import Connect
from tests.helpers import expect
from tuichat.app.app import ChatApp
from tuichat.app.config import Config
from tuichat.app.i18n import plain
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.client import ChatClient
from tuichat.protocol import Away
from tuichat.server import ChatServer


def typing_line(app: ChatApp) -> str:
    line = app.query_one("#typing", BidiText)
    return plain(line.text) if line.has_class("-visible") else ""


async def test_someone_away_and_typing_shows_in_the_sidebar_the_users_and_the_typing_line(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        bob = await connect("bob")
        await until(pilot, lambda: "bob" in app.query_one(Sidebar).text())
        await bob.set_away("lunch")
        await until(pilot, lambda: "bob away" in app.query_one(Sidebar).text())
        await send_line(pilot, "/users")
        await until(pilot, lambda: any("bob (away: lunch)" in t for t in log_texts(app)))
        bob.typing("#lobby")
        await until(pilot, lambda: typing_line(app) == "bob is typing…")
        await bob.send("#lobby", "back with sandwiches")  # their message ends it
        await until(pilot, lambda: typing_line(app) == "")
        await bob.set_away(None)
        await until(pilot, lambda: "bob away" not in app.query_one(Sidebar).text())


async def test_typing_is_told_to_the_others_and_away_is_ours_to_set(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press(*"hel")
        await until(pilot, lambda: bob.status.typing_in("#lobby") == ("ali",))
        app.query_one(ChatInput).value = ""  # (nothing sent: a typing notice is all bob got)
        await pilot.press(*"/away", "space", *"in a meeting", "enter")
        await expect(bob, Away, name="ali", away=True, reason="in a meeting")
        await until(pilot, lambda: any(t == "you are away: in a meeting" for t in log_texts(app)))
        await send_line(pilot, "/back")
        await expect(bob, Away, name="ali", away=False)


async def test_typing_can_be_turned_off(server: ChatServer, connect: Connect) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali", config=Config(name="ali", typing=False))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press(*"secret draft")
        await pilot.press("enter")
        await until(pilot, lambda: "secret draft" in log_texts(app))
        assert bob.status.typing_in("#lobby") == ()  # the message came, no notice before it
        assert app.client is not None and not app.client.send_typing


async def test_idle_minutes_make_us_away_and_a_key_brings_us_back(
    server: ChatServer, connect: Connect
) -> None:
    bob: ChatClient = await connect("bob")
    now = [1000.0]
    host, port = server.address

    async def connector(user: str) -> ChatClient:
        return await ChatClient.connect(user, host, port)

    app = ChatApp(
        connector, "ali", config=Config(name="ali", away_after=5), monotonic=lambda: now[0]
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        now[0] += 4 * 60
        app.check_away()
        await pilot.pause()
        assert bob.status.away_reason("ali") is None  # four minutes: not yet
        now[0] += 60
        app.check_away()
        await expect(bob, Away, name="ali", away=True, reason="idle for 5 minutes")
        await pilot.press("x")  # back at the keyboard
        await expect(bob, Away, name="ali", away=False)
