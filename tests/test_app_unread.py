"""The app's conversations: unread and mention counts, the "new messages" line, the keys that
move between conversations, private conversations, and one person's several devices (the app
is one device; another is a `ChatClient` signing in with the same key)."""

from __future__ import annotations

from textual import events

from tests.app_support import connected, log_texts, make_app, send_line, sidebar_counts, until
from tests.conftest import Connect
from tests.helpers import collect, expect
from tuichat.app.app import ChatApp
from tuichat.app.model import NEW_MESSAGES, Kind
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.client import ChatClient, Disconnected, SigningKey
from tuichat.protocol import Bye, Message, ReadMarker
from tuichat.server import ChatServer

SIZE = (100, 30)


def texts_of(app: ChatApp, conversation: str) -> list[str]:
    """The texts of a conversation's log, shown or not."""
    view = app.conversation(conversation)
    assert view is not None
    return [entry.text for entry in view.entries]


def new_line_above(app: ChatApp) -> str | None:
    """The text of the entry just below the "new messages" line on screen (None: no line)."""
    entries = app.query_one(ChatLog).entries
    kinds = [entry.kind for entry in entries]
    if Kind.NEW not in kinds:
        return None
    return entries[kinds.index(Kind.NEW) + 1].text


async def test_counts_follow_what_arrives_and_going_there_shows_the_line_and_clears_them(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    await bob.join("#dev")
    app = make_app(server.address, "ali")
    bells: list[None] = []
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        app.bell = lambda: bells.append(None)  # type: ignore[method-assign]
        await send_line(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev")
        await send_line(pilot, "hello dev")
        await until(pilot, lambda: "hello dev" in log_texts(app))
        await pilot.press("alt+1")
        await bob.send("#dev", "the build is green")
        await bob.send("#dev", "ALI: can you review?")
        await bob.private("ali", "psst")
        wanted = {"#lobby": (0, 0), "#dev": (2, 1), "@bob": (1, 0)}
        await until(pilot, lambda: sidebar_counts(app) == wanted and connected(app))
        assert bells  # the mention (and the private message) rang, and the sidebar shows it
        assert texts_of(app, "@bob").count("psst") == 1
        assert "psst" not in log_texts(app)  # not in the lobby on screen

        await pilot.press("alt+2")
        assert app.current_room == "#dev"
        assert new_line_above(app) == "the build is green"  # above the first unread, not ours
        await until(pilot, lambda: sidebar_counts(app)["#dev"] == (0, 0))
        await bob.send("#dev", "thanks")
        await until(pilot, lambda: "thanks" in log_texts(app))
        assert new_line_above(app) == "the build is green"  # it stays while we are here
        assert sidebar_counts(app)["#dev"] == (0, 0)  # what arrives on screen is read

        await pilot.press("alt+3")
        assert app.current_room == "@bob"
        assert new_line_above(app) == "psst"
        await until(pilot, lambda: sidebar_counts(app)["@bob"] == (0, 0))
        await pilot.press("alt+2")
        assert new_line_above(app) is None  # read: coming back shows no line
        assert NEW_MESSAGES not in texts_of(app, "@bob")  # and leaving took it away


async def test_more_unread_than_a_screen_opens_at_the_line_and_reads_what_is_shown(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    await bob.join("#dev")
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev" and connected(app))
        await pilot.press("alt+1")
        for i in range(40):
            await bob.send("#dev", f"news {i}")
        await until(pilot, lambda: sidebar_counts(app)["#dev"] == (40, 0))
        await pilot.press("alt+2")
        log = app.query_one(ChatLog)
        assert new_line_above(app) == "news 0"
        assert log.scroll_y > 0 and not log.is_vertical_scroll_end  # the line is at the top
        unread, _ = sidebar_counts(app)["#dev"]
        assert 0 < unread < 40  # what is on screen is read, what is below it not yet
        await pilot.press("ctrl+end")
        await until(pilot, lambda: sidebar_counts(app)["#dev"] == (0, 0))


async def test_alt_a_goes_to_mentions_then_private_then_the_rest(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    for room in ("#dev", "#ops"):
        await bob.join(room)
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app))
        for room in ("#dev", "#ops"):
            await send_line(pilot, f"/join {room}")
            await until(pilot, lambda room=room: app.current_room == room)  # type: ignore[misc]
        await pilot.press("alt+1")
        await bob.send("#dev", "plain news")  # earlier in the sidebar, but nothing for ali
        await bob.send("#ops", "ali, the disk is full")
        await bob.private("ali", "are you there?")
        wanted = {"#lobby": (0, 0), "#dev": (1, 0), "#ops": (1, 1), "@bob": (1, 0)}
        await until(pilot, lambda: sidebar_counts(app) == wanted and connected(app))
        visited = []
        for _ in range(3):
            await pilot.press("alt+a")
            visited.append(app.current_room)
            await until(pilot, lambda: sidebar_counts(app)[app.current_room] == (0, 0))
        assert visited == ["#ops", "@bob", "#dev"]
        await pilot.press("alt+a")
        assert app.current_room == "#dev"  # nothing left to read: it stays
        await until(pilot, lambda: any(n.message == "Nothing unread" for n in app._notifications))


async def test_alt_digits_and_ctrl_n_ctrl_p_walk_the_sidebar(
    server: ChatServer, connect: Connect
) -> None:
    await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev")
        await send_line(pilot, "/query bob")  # opens the conversation, sends nothing
        assert app.current_room == "@bob"
        await until(pilot, lambda: connected(app))
        assert list(sidebar_counts(app)) == ["#lobby", "#dev", "@bob"]
        steps = [
            ("alt+1", "#lobby"),
            ("alt+3", "@bob"),
            ("alt+2", "#dev"),
            ("alt+9", "#dev"),
            ("ctrl+n", "@bob"),
            ("ctrl+n", "#lobby"),
            ("ctrl+p", "@bob"),
            ("ctrl+p", "#dev"),
        ]  # alt+9: there is no 9th; ctrl+n and ctrl+p go round the ends
        for key, room in steps:
            await pilot.press(key)
            assert app.current_room == room, key
        assert app.query_one(ChatInput).value == ""  # the keys typed nothing


async def test_another_device_reading_clears_the_counts_here_and_ours_reach_it(
    server: ChatServer, connect: Connect
) -> None:
    key = SigningKey.generate()
    bob = await connect("bob")
    await bob.join("#dev")
    app = make_app(server.address, "ali", key=key)  # this device
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        phone = await ChatClient.connect("ali", *server.address, key=key)  # another device
        try:
            await phone.join("#dev")  # rooms are the person's: the app is in it at once
            await until(pilot, lambda: "#dev" in sidebar_counts(app) and connected(app))
            assert app.current_room == "#lobby"
            await bob.send("#dev", "one")
            await bob.send("#dev", "two for ali")
            sent = await bob.private("ali", "private one")
            wanted = {"#lobby": (0, 0), "#dev": (2, 1), "@bob": (1, 0)}
            await until(pilot, lambda: sidebar_counts(app) == wanted)

            last = (await collect(phone, Message, 2))[-1]
            phone.mark_read("#dev", last.seq)  # read on the phone
            phone.mark_read("@bob", sent.pid)
            cleared = {"#lobby": (0, 0), "#dev": (0, 0), "@bob": (0, 0)}
            await until(pilot, lambda: sidebar_counts(app) == cleared)

            await bob.send("#dev", "three")
            await until(pilot, lambda: sidebar_counts(app)["#dev"] == (1, 0))
            three = await expect(phone, Message, text="three")
            await pilot.press("alt+2")  # read here: the phone hears it
            marker = await expect(phone, ReadMarker, room="#dev")
            assert marker.seq == three.seq

            await phone.part("#dev")  # left on the phone: gone here too
            await until(pilot, lambda: "#dev" not in sidebar_counts(app))
            assert app.current_room == "#lobby"
            assert "left #dev on another device" in log_texts(app)
        finally:
            await phone.close()


async def test_markers_go_at_most_about_once_a_second(server: ChatServer, connect: Connect) -> None:
    key = SigningKey.generate()
    bob = await connect("bob")
    app = make_app(server.address, "ali", key=key)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        phone = await ChatClient.connect("ali", *server.address, key=key)
        try:
            for i in range(10):
                await bob.send("#lobby", f"line {i}")  # on screen: each is read as it comes
            last = (await collect(phone, Message, 10))[-1]
            markers: list[ReadMarker] = []
            while not markers or markers[-1].seq != last.seq:
                markers.append(await expect(phone, ReadMarker, room="#lobby"))
            assert len(markers) < 10  # the burst went as one or two, the last with the newest
        finally:
            await phone.close()


async def test_what_arrives_while_the_app_is_in_the_background_stays_unread(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        app.post_message(events.AppBlur())
        await until(pilot, lambda: not app.app_focus)
        await bob.send("#lobby", "while you were elsewhere")
        await until(pilot, lambda: sidebar_counts(app)["#lobby"] == (1, 0))
        app.post_message(events.AppFocus())
        await until(pilot, lambda: sidebar_counts(app)["#lobby"] == (0, 0))


async def test_a_private_message_sent_while_offline_is_unread_once_when_the_app_starts(
    server: ChatServer, connect: Connect
) -> None:
    key = SigningKey.generate()
    registering = await ChatClient.connect("ali", *server.address, key=key)  # the name is ali's
    await registering.close()
    bob = await connect("bob")
    await bob.private("ali", "sent while you were away")
    app = make_app(server.address, "ali", key=key)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "@bob" in app.privates and connected(app))
        await until(pilot, lambda: sidebar_counts(app) == {"#lobby": (0, 0), "@bob": (1, 0)})
        assert texts_of(app, "@bob").count("sent while you were away") == 1
        assert app.current_room == "#lobby"
        await pilot.press("alt+a")
        assert app.current_room == "@bob"
        assert log_texts(app).count("sent while you were away") == 1
        assert new_line_above(app) == "sent while you were away"


async def test_join_of_a_room_we_are_in_switches_to_it(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev")
        await pilot.press("alt+1")
        await send_line(pilot, "/join #DEV")
        assert app.current_room == "#dev"
        await send_line(pilot, "/join #lobby")
        assert app.current_room == "#lobby"
        assert not [e for e in app.query_one(ChatLog).entries if e.kind is Kind.ERROR]


async def test_slash_signout_signs_out_the_other_device(server: ChatServer) -> None:
    key = SigningKey.generate()
    app = make_app(server.address, "ali", key=key)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        laptop = await ChatClient.connect("ali", *server.address, key=key, reconnect=True)
        await send_line(pilot, "/signout")
        bye = await expect(laptop, Bye)
        assert bye.reason == "signed_out"
        await expect(laptop, Disconnected)  # and it does not come back by itself
        await until(pilot, lambda: "signed out 1 other device" in log_texts(app))
        assert app.client is not None and app.client.connected
        await laptop.abort()


async def test_signed_out_by_another_device_says_so_and_stays_out(server: ChatServer) -> None:
    key = SigningKey.generate()
    app = make_app(server.address, "ali", key=key, reconnect=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        phone = await ChatClient.connect("ali", *server.address, key=key)
        assert await phone.sign_out_others() == 1
        status = app.query_one("#status")
        await until(pilot, lambda: status.state == "disconnected")  # type: ignore[attr-defined]
        banner = app.query_one("#banner")
        assert banner.has_class("-visible") and "Signed out" in str(banner.render())
        assert any("will not reconnect" in text for text in log_texts(app))
        await phone.close()


async def test_a_room_joined_on_another_device_appears_without_being_shown(
    server: ChatServer,
) -> None:
    key = SigningKey.generate()
    app = make_app(server.address, "ali", key=key)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        phone = await ChatClient.connect("ali", *server.address, key=key)
        try:
            await phone.send("#lobby", "from the phone")  # our own words: never unread
            await phone.join("#ops")
            await until(pilot, lambda: "#ops" in app.rooms and connected(app))
            assert app.current_room == "#lobby"
            assert sidebar_counts(app) == {"#lobby": (0, 0), "#ops": (0, 0)}
            assert "joined #ops on another device" in log_texts(app)
        finally:
            await phone.close()
