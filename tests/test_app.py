"""The Textual app driven with Pilot against a real server in the test's loop."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest

from tests.app_support import connected, log_texts, make_app, send_line, sidebar_users, until
from tests.conftest import Connect
from tests.helpers import events_until, expect
from tuichat.app.app import ChatApp
from tuichat.app.model import Kind
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.client import ChatClient
from tuichat.protocol import Left, Message, PrivateMessage
from tuichat.server import ChatServer


async def test_two_apps_chat_and_the_sidebar_follows_joins_and_exits(server: ChatServer) -> None:
    ali_app = make_app(server.address, "ali")
    async with ali_app.run_test(size=(100, 30)) as ali:
        await until(ali, lambda: connected(ali_app))
        assert sidebar_users(ali_app) == ("ali",)
        bob_app = make_app(server.address, "bob")
        async with bob_app.run_test(size=(100, 30)) as bob:
            await until(bob, lambda: connected(bob_app))
            await until(ali, lambda: sidebar_users(ali_app) == ("ali", "bob"))
            await bob.press(*"hi ali", "enter")
            await until(ali, lambda: "hi ali" in log_texts(ali_app))
            await until(bob, lambda: "hi ali" in log_texts(bob_app))
            await bob.press(*"/exit", "enter")
            await until(ali, lambda: sidebar_users(ali_app) == ("ali",))
        assert "bob quit #lobby" in log_texts(ali_app)
        kinds = {e.text: e.kind for e in ali_app.query_one(ChatLog).entries}
        assert kinds["hi ali"] is Kind.MESSAGE
        assert kinds["bob quit #lobby"] is Kind.SYSTEM


async def test_own_messages_and_mentions_look_different(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    bells: list[None] = []
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        app.bell = lambda: bells.append(None)  # type: ignore[method-assign]
        bob = await connect("bob")
        await send_line(pilot, "my own words")
        await bob.send("#lobby", "hey @ALI look")
        await bob.send("#lobby", "alibaba is not a mention")
        await until(pilot, lambda: "alibaba is not a mention" in log_texts(app))
        entries = {e.text: e for e in app.query_one(ChatLog).entries}
        assert entries["my own words"].kind is Kind.OWN
        assert entries["hey @ALI look"].mention
        assert not entries["alibaba is not a mention"].mention
        assert len(bells) == 1


async def test_slash_msg_reaches_only_its_target(server: ChatServer, connect: Connect) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    carol = await connect("carol")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/msg bob meet me at 5")
        received = await expect(bob, PrivateMessage)
        assert (received.sender, received.text) == ("ali", "meet me at 5")
        await until(pilot, lambda: "meet me at 5" in log_texts(app))
        assert app.current_room == "@bob"  # /msg opened the conversation with bob
        entry = next(e for e in app.query_one(ChatLog).entries if e.text == "meet me at 5")
        assert (entry.kind, entry.sender) == (Kind.PRIVATE_OUT, "bob")
        await send_line(pilot, "still just for you")  # typed in @bob: private too
        received = await expect(bob, PrivateMessage)
        assert (received.sender, received.text) == ("ali", "still just for you")
        await pilot.press("alt+1")
        assert app.current_room == "#lobby"
        assert "meet me at 5" not in log_texts(app)  # private messages stay in their own log
        await send_line(pilot, "public")
        seen = await events_until(carol, Message, text="public")
        assert not [e for e in seen if isinstance(e, PrivateMessage)]


async def test_palette_private_message_reaches_only_its_target(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    carol = await connect("carol")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: sidebar_users(app) == ("ali", "bob", "carol"))
        await pilot.press("ctrl+k")
        await pilot.press(*"private bob")
        from textual.command import CommandPalette

        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        palette = app.screen
        await until(pilot, lambda: palette.query_one("CommandList").option_count > 0)  # type: ignore[attr-defined]
        await pilot.press("enter")
        from tuichat.app.screens.prompt import PromptDialog

        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.press(*"via the palette", "enter")
        received = await expect(bob, PrivateMessage)
        assert (received.sender, received.text) == ("ali", "via the palette")
        await until(pilot, lambda: app.current_room == "@bob")
        await pilot.press("ctrl+p")  # back to the previous conversation: the lobby
        assert app.current_room == "#lobby"
        await send_line(pilot, "public")
        seen = await events_until(carol, Message, text="public")
        assert not [e for e in seen if isinstance(e, PrivateMessage)]


async def test_tab_completes_names_and_rooms(server: ChatServer, connect: Connect) -> None:
    app = make_app(server.address, "ali")
    await connect("bobby")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "bobby" in sidebar_users(app))
        chat_input = app.query_one(ChatInput)
        await pilot.press(*"bo", "tab")
        assert chat_input.value == "bobby: "
        chat_input.value = ""
        await pilot.press(*"/msg BO", "tab")
        assert chat_input.value == "/msg bobby "
        chat_input.value = ""
        await pilot.press(*"see #lo", "tab")
        assert chat_input.value == "see #lobby "
        assert chat_input.has_focus  # Tab completed instead of moving the focus


async def test_up_and_down_walk_the_input_history(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        chat_input = app.query_one(ChatInput)
        for line in ("first", "second"):
            await send_line(pilot, line)
        await pilot.press(*"draft")
        await pilot.press("up")
        assert chat_input.value == "second"
        await pilot.press("up")
        assert chat_input.value == "first"
        await pilot.press("down", "down")
        assert chat_input.value == "draft"


async def test_an_unknown_slash_command_shows_help_and_is_not_sent(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/shrug oops")
        await until(pilot, lambda: "unknown command /shrug" in log_texts(app))
        assert any(text.startswith("commands:") for text in log_texts(app))
        await send_line(pilot, "real")
        seen = await events_until(bob, Message, text="real")
        assert [e.text for e in seen if isinstance(e, Message)] == ["real"]


async def test_join_switch_and_part_rooms(server: ChatServer, connect: Connect) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    await bob.join("#dev")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev")
        await until(pilot, lambda: sidebar_users(app) == ("ali", "bob"))
        await bob.send("#dev", "welcome to dev")
        await until(pilot, lambda: "welcome to dev" in log_texts(app))
        await send_line(pilot, "/part")
        await until(pilot, lambda: app.current_room == "#lobby")
        assert "welcome to dev" not in log_texts(app)


@pytest.mark.parametrize("name", ["bob", "BOB"])
async def test_a_taken_name_opens_a_dialog_to_choose_another(
    server: ChatServer, connect: Connect, name: str
) -> None:
    await connect("bob")
    app = make_app(server.address, name)
    async with app.run_test(size=(100, 30)) as pilot:
        from tuichat.app.screens.prompt import PromptDialog

        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        dialog_input = app.screen.query_one("#answer")
        dialog_input.value = ""  # type: ignore[attr-defined]
        await pilot.press(*"robert", "enter")
        await until(pilot, lambda: connected(app))
        assert app.my_name == "robert"


async def test_a_server_going_away_shows_a_banner(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await server.stop()
        banner = app.query_one("#banner")
        await until(pilot, lambda: banner.has_class("-visible"))
        assert "going away" in str(banner.render())


async def test_scrolled_up_log_stays_put_and_counts_new_messages(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        for i in range(60):
            await bob.send("#lobby", f"line {i}")
        await until(pilot, lambda: "line 59" in log_texts(app))
        log = app.query_one(ChatLog)
        await until(pilot, lambda: log.is_vertical_scroll_end)
        log.scroll_to(y=0, animate=False)
        await pilot.pause()
        for i in range(3):
            await bob.send("#lobby", f"late {i}")
        await until(pilot, lambda: "late 2" in log_texts(app))
        assert log.scroll_y == 0
        assert log.unseen == 3
        await pilot.press("ctrl+end")
        await until(pilot, lambda: log.unseen == 0)


async def test_long_lines_rewrap_when_the_terminal_is_resized(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await bob.send("#lobby", "word " * 40)
        await until(pilot, lambda: any(t.startswith("word word") for t in log_texts(app)))
        log = app.query_one(ChatLog)
        await pilot.pause()
        wide = log.virtual_size.height
        await pilot.resize_terminal(60, 30)
        await until(pilot, lambda: log.virtual_size.height > wide)
        assert log.virtual_size.width <= 60
        assert len(log.entries) == len(log_texts(app))  # nothing lost, only re-wrapped


async def test_ctrl_q_says_goodbye_and_quits(server: ChatServer, connect: Connect) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press("ctrl+q")
        left = await expect(bob, Left, name="ali")
        assert left.reason == "quit"
    assert app.return_code == 0


async def test_a_flood_shows_slow_down_and_nothing_is_dropped_silently() -> None:
    from tuichat.server import ServerConfig
    from tuichat.server.config import RateLimits

    limits = RateLimits(messages_per_second=0.5, message_burst=3)
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, rate=limits))
    await server.start()
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        for i in range(5):
            await send_line(pilot, f"line {i}")

        def outcomes() -> tuple[list[str], list[str]]:
            texts = log_texts(app)
            shown = [t for t in texts if t.startswith("line ")]
            return shown, [t for t in texts if t.startswith("slow down")]

        # every line either goes through or is refused: nothing is dropped silently
        await until(pilot, lambda: sum(map(len, outcomes())) == 5)
        _, refused = outcomes()
        assert len(refused) >= 2
        kinds = {e.text: e.kind for e in app.query_one(ChatLog).entries}
        assert all(kinds[t] is Kind.ERROR for t in refused)
    await server.stop()


async def test_a_server_that_never_answers_is_not_called_unreachable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never says a word

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    host, port = listener.sockets[0].getsockname()[:2]

    async def connector(user: str) -> ChatClient:
        return await ChatClient.connect(user, host, port, timeout=0.3)

    app = ChatApp(connector, "ali", server_label=host, tz=UTC, ping_interval=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: bool(app._exit_renderables))
        [message] = [str(m) for m in app._exit_renderables]
    assert "accepted the connection but did not answer" in message
    assert "cannot reach" not in message
    assert app.return_code == 1
    listener.close()


async def test_lines_typed_faster_than_the_app_handles_them_stay_apart(
    server: ChatServer,
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        composer = app.query_one(ChatInput)
        for line in ("first line", "second line", "third line"):  # no pause in between
            composer.insert_text_at_cursor(line)
            await composer.action_submit()
        mine = ["first line", "second line", "third line"]
        await until(pilot, lambda: [t for t in log_texts(app) if t.endswith(" line")] == mine)
        assert composer.value == ""
