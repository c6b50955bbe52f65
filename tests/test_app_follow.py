"""The log keeps following new messages after every kind of shrink."""

from __future__ import annotations

from tests.app_support import connected, log_texts, make_app, until
from tests.conftest import Connect
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.server import ChatServer


async def test_the_log_follows_new_messages_after_every_kind_of_shrink(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    bob = await connect("bob")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        log = app.query_one(ChatLog)
        sent = 0

        async def more(count: int = 20) -> None:
            nonlocal sent
            for _ in range(count):
                sent += 1
                await bob.send("#lobby", f"line {sent}")
            await until(pilot, lambda: f"line {sent}" in log_texts(app))
            await pilot.pause()
            assert log.is_vertical_scroll_end, f"not following after line {sent}"
            assert log.unseen == 0

        await more(40)
        await pilot.resize_terminal(100, 20)  # the terminal shrinks
        await more()
        app._banner("connection lost; reconnecting…")  # a banner takes a row
        await pilot.pause()
        await more()
        app.query_one("#banner").remove_class("-visible")
        await pilot.pause()
        await more()
        app.action_show_help_panel()  # the keys panel takes the side
        await pilot.pause()
        await more()
        app.action_hide_help_panel()
        await pilot.resize_terminal(60, 14)
        await more()
        # messages that arrive while the log shrinks
        for height in (12, 10, 8):
            for _ in range(5):
                sent += 1
                await bob.send("#lobby", f"line {sent}")
            await pilot.resize_terminal(60, height)
            app._banner("reconnecting…")
            await more(5)
            app.query_one("#banner").remove_class("-visible")
