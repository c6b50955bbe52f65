"""The log's window: a bounded number of entries per conversation, older pages read back from
the server when the user scrolls to the top (the newest going), newer ones when they scroll
back down, and what depends on messages outside it (verbs on them, a reply's original)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.app_support import connected, log_texts, make_app, send_line, sidebar_counts, until
from tuichat.app import model
from tuichat.app.app import ChatApp
from tuichat.app.model import Kind, RoomView
from tuichat.app.screens.search import SearchScreen
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.client import ChatClient
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

WINDOW = 100
"""The window of these tests (the app's is `model.MAX_LOG_LINES`): a few hundred messages
cross it many times over."""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    server = ChatServer(
        ServerConfig(
            port=0,
            server_name="window",
            db=str(tmp_path / "history.sqlite3"),
            rate=RateLimits.unlimited(),
        )
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "MAX_LOG_LINES", WINDOW)
    monkeypatch.setattr(model, "TRIM_TO", WINDOW * 9 // 10)
    monkeypatch.setattr(model, "TAIL_LINES", WINDOW // 5)
    monkeypatch.setattr(model, "BACKGROUND_LINES", WINDOW // 2)


async def say(client: ChatClient, first: int, last: int) -> dict[int, int]:
    """Say m{first} … m{last} in the lobby (in that order: one connection, not waiting for
    each to be acknowledged before the next); return the seq of each, by number."""
    numbers = range(first, last + 1)
    acks = await asyncio.gather(*(client.send("#lobby", f"m{n}") for n in numbers))
    return {n: ack.seq for n, ack in zip(numbers, acks, strict=True)}


def held(view: RoomView) -> list[tuple[int, str]]:
    """The room messages of the window: their seqs and texts, in the log's order."""
    return [(e.seq, e.text) for e in view.entries if e.kind in (Kind.MESSAGE, Kind.OWN)]


def in_order(view: RoomView, seqs: dict[int, int]) -> list[int]:
    """The numbers of the messages the window holds, checked to be one run of them, in order,
    each once, each the text of its seq (and at most a window of entries)."""
    numbers = {seq: n for n, seq in seqs.items()}
    counted = [(seq, text) for seq, text in held(view) if seq in numbers]
    shown = [numbers[seq] for seq, _ in counted]
    assert shown == list(range(shown[0], shown[0] + len(shown))), shown
    assert all(text == f"m{numbers[seq]}" for seq, text in counted)
    assert len(view.entries) <= WINDOW
    return shown


async def to_the_top(pilot: Pilot[object], log: ChatLog, view: RoomView) -> None:
    """Scroll to the first line, as the user does (there already: PgUp once more), once the
    page asked for before is in."""
    await until(pilot, lambda: not view.loading)
    if log.scroll_y > 0:
        log.scroll_to(y=0, animate=False)
    else:
        await pilot.press("pageup")


async def filled(app: ChatApp, pilot: object, bob: ChatClient) -> dict[int, int]:
    """150 messages before ali comes, 150 after: the window holds the newest."""
    seqs = await say(bob, 1, 150)
    await until(pilot, lambda: connected(app))  # type: ignore[arg-type]
    seqs |= await say(bob, 151, 300)
    await until(pilot, lambda: log_texts(app)[-1:] == ["m300"])  # type: ignore[arg-type]
    return seqs


async def test_the_window_stays_bounded_and_pages_back_and_forth_in_order(
    server: ChatServer,
) -> None:
    bob = await ChatClient.connect("bob", *server.address)
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        seqs = await filled(app, pilot, bob)
        view, log = app.rooms["#lobby"], app.query_one(ChatLog)
        assert log.entries is view.entries and not view.newer
        assert in_order(view, seqs)[-1] == 300
        assert log.virtual_size.height <= WINDOW + 2  # (laid out: the window, a date line)
        pages = 0
        while not view.history_complete:  # up to the start of the room, a page at a time
            oldest = view.oldest_seq
            await to_the_top(pilot, log, view)
            await until(pilot, lambda: view.oldest_seq < oldest)  # noqa: B023
            in_order(view, seqs)
            pages += 1
        assert in_order(view, seqs)[0] == 1 and pages >= 4
        assert log_texts(app)[0] == "start of the room"
        assert view.newer and log.more_below  # the newest fell out of the window
        unseen = app.query_one("#unseen")
        assert unseen.has_class("-visible") and "older messages" in str(unseen.render())
        while view.newer:  # back down to the newest, a page at a time
            end = view.window_end
            log.scroll_end(animate=False)
            await until(pilot, lambda: view.window_end > end or not view.newer)  # noqa: B023
            in_order(view, seqs)
        assert in_order(view, seqs)[-1] == 300 and not log.more_below
        await bob.send("#lobby", "live again")
        await until(pilot, lambda: log_texts(app)[-1:] == ["live again"])
        assert len(view.entries) <= WINDOW
    await bob.close()


async def test_verbs_on_messages_outside_the_window_show_once_they_are_read_back(
    server: ChatServer,
) -> None:
    bob = await ChatClient.connect("bob", *server.address)
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        seqs = await filled(app, pilot, bob)
        view, log = app.rooms["#lobby"], app.query_one(ChatLog)
        before = held(view)
        assert seqs[1] not in view.seqs
        await bob.react("#lobby", seqs[1], "👍")  # on messages long out of the window
        await bob.edit("#lobby", seqs[2], "m2, edited")
        await bob.delete("#lobby", seqs[3])
        await bob.send("#lobby", "after the verbs")
        await until(pilot, lambda: log_texts(app)[-1:] == ["after the verbs"])
        now = held(view)
        assert now[:-1] == before[len(before) - len(now) + 1 :]  # nothing else moved or changed
        while not view.history_complete:
            oldest = view.oldest_seq
            await to_the_top(pilot, log, view)
            await until(pilot, lambda: view.oldest_seq < oldest)  # noqa: B023
        first, second, third = (
            next(e for e in view.entries if e.seq == seqs[n]) for n in (1, 2, 3)
        )
        assert [(r.text, r.count) for r in first.reactions] == [("👍", 1)]  # (once, not twice)
        assert (second.text, second.edited) == ("m2, edited", True)
        assert third.deleted and not third.text
        # while the log shows the start, verbs on what it no longer holds change nothing here
        await bob.react("#lobby", seqs[300], "🎉")
        await bob.edit("#lobby", seqs[150], "m150, edited")  # (past the window, not in its tail)
        await bob.send("#lobby", "while ali reads old ones")
        await until(pilot, lambda: view.unseen_newer == 1)
        assert "while ali reads old ones" not in log_texts(app)
        assert app.query_one("#unseen").has_class("-visible")
        await pilot.press("ctrl+end")  # back to the newest at once
        await until(pilot, lambda: log_texts(app)[-1:] == ["while ali reads old ones"])
        assert not view.newer and len(view.entries) <= WINDOW
        newest = next(e for e in view.entries if e.seq == seqs[300])
        assert [(r.text, r.count) for r in newest.reactions] == [("🎉", 1)]
        assert log.is_vertical_scroll_end
    await bob.close()


async def test_going_to_the_original_of_a_reply_far_back_shows_it_with_its_neighbours(
    server: ChatServer,
) -> None:
    bob = await ChatClient.connect("bob", *server.address)
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        seqs = await filled(app, pilot, bob)
        view, log = app.rooms["#lobby"], app.query_one(ChatLog)
        await bob.send("#lobby", "answering m5", reply=seqs[5])
        await until(pilot, lambda: log_texts(app)[-1:] == ["answering m5"])
        reply = view.entries[-1]
        assert reply.reply == seqs[5] and reply.quote is None  # ("an earlier message")
        await pilot.press("alt+up")  # select it, then go to what it answers
        await until(pilot, lambda: log.selected is reply)
        await pilot.press("enter")
        await until(pilot, lambda: log.selected is not None and log.selected.seq == seqs[5])
        assert view.newer and in_order(view, seqs)[0] == 1  # the start of the room, around it
        assert len(view.entries) <= WINDOW
        await pilot.press("escape", "ctrl+end")
        await until(pilot, lambda: not view.newer and log_texts(app)[-1:] == ["answering m5"])
    await bob.close()


async def test_a_search_hit_far_back_is_shown_with_its_neighbours(server: ChatServer) -> None:
    bob = await ChatClient.connect("bob", *server.address)
    needle = await bob.send("#lobby", "a needle in the haystack")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        seqs = await filled(app, pilot, bob)
        view, log = app.rooms["#lobby"], app.query_one(ChatLog)
        await send_line(pilot, "/search needle")
        await until(
            pilot, lambda: isinstance(app.screen, SearchScreen) and len(app.screen.hits) == 1
        )
        await pilot.press("down", "enter")  # (to the hits, and the first of them)
        await until(pilot, lambda: log.selected is not None and log.selected.seq == needle.seq)
        assert view.newer and len(view.entries) <= WINDOW
        assert log_texts(app)[:2] == ["start of the room", "a needle in the haystack"]
        assert in_order(view, seqs)[0] == 1
    await bob.close()


async def test_a_room_not_on_screen_keeps_fewer_and_counts_what_it_dropped(
    server: ChatServer,
) -> None:
    bob = await ChatClient.connect("bob", *server.address)
    await bob.join("#side")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #side")
        await until(pilot, lambda: app.current_room == "#side")
        app.switch_room("#lobby")
        said = [f"hey ali, number {n}" if n % 50 == 0 else f"s{n}" for n in range(1, 301)]
        await asyncio.gather(*(bob.send("#side", text) for text in said))
        side = app.rooms["#side"]
        await until(pilot, lambda: side.entries[-1:] and side.entries[-1].text == said[-1])
        await until(pilot, lambda: sidebar_counts(app).get("#side") == (300, 6))
        assert len(side.entries) <= WINDOW // 2  # (what it dropped still counts)
        app.switch_room("#side")  # the newest, then older pages on scrolling up
        assert log_texts(app)[-1] == said[-1] and not side.newer
        oldest = side.oldest_seq
        await to_the_top(pilot, app.query_one(ChatLog), side)  # (PgUp: at the "new" line)
        await until(pilot, lambda: side.oldest_seq < oldest)
        texts = [e.text for e in side.entries if e.seq]
        assert texts == said[len(said) - len(texts) :]  # in order, none missing
    await bob.close()


async def test_a_private_conversation_pages_back_and_comes_back_to_the_newest(
    server: ChatServer,
) -> None:
    bob = await ChatClient.connect("bob", *server.address)
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        said = [f"p{n}" for n in range(1, 301)]
        await asyncio.gather(*(bob.private("ali", text) for text in said))
        await until(pilot, lambda: "@bob" in app.privates)
        view = app.privates["@bob"]
        await until(pilot, lambda: view.entries[-1:] and view.entries[-1].text == "p300")
        app.switch_room("@bob")
        log = app.query_one(ChatLog)
        assert len(view.entries) <= WINDOW
        while not view.history_complete:
            oldest = view.oldest_seq
            await to_the_top(pilot, log, view)
            await until(pilot, lambda: view.oldest_seq < oldest)  # noqa: B023
            texts = [e.text for e in view.entries if e.seq]
            assert texts == said[int(texts[0][1:]) - 1 :][: len(texts)]  # one run, in order
            assert len(view.entries) <= WINDOW
        assert view.newer and next(e.text for e in view.entries if e.seq) == "p1"
        log.scroll_end(animate=False)  # at the bottom: back to the newest at once
        await until(pilot, lambda: not view.newer and log_texts(app)[-1:] == ["p300"])
        assert len(view.entries) <= WINDOW
    await bob.close()
