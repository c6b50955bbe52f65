"""Persian in the app: right-to-left text drawn by the app (shaped, reordered, mirrored,
right-aligned) or left to the terminal, a test alphabet that reads right to left (upper-case
Latin), and the Persian UI laid out right to left. SVG snapshots at 80x24, the clock frozen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandInput, CommandPalette
from textual.pilot import Pilot

from tests.app_support import connected, log_texts, make_app, send_line, sidebar_users, until
from tests.conftest import Connect
from tests.test_app_snapshots import ServerThread
from tuichat.app.app import ChatApp
from tuichat.app.bidi import Bidi
from tuichat.app.config import Config
from tuichat.app.screens.bidi_check import BidiCheck
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.widgets.bidi_input import BidiInput
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.server import ChatServer

SIZE = (80, 24)
PERSIAN = (
    ("مریم", "سلام به همه! کسی می‌داند جلسه (کلاس برنامه‌نویسی) ساعت ۱۰ است؟"),  # noqa: RUF001
    ("سینا", "آره، ساعت 10 در اتاق ۲۰۴. لینک: https://example.com/class?id=42"),
    ("مریم", "ممنون 🙏 من با Python و asyncio کار می‌کنم."),
)
FAKE = (
    ("bob", "SALAM (DONYA) 123"),
    ("carol", "mixed: HELLO WORLD and back to latin"),
    ("bob", "A LONG RIGHT TO LEFT LINE THAT WRAPS: THE WORDS KEEP THEIR ORDER FROM THE RIGHT"),
)


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ServerThread]:
    server = ServerThread(db=str(tmp_path / "history.sqlite3"))
    yield server
    server.stop()


async def conversation(
    pilot: Pilot[Any], chat: ServerThread, lines: tuple[tuple[str, str], ...], typed: str
) -> None:
    app = pilot.app
    assert isinstance(app, ChatApp)
    await until(pilot, lambda: connected(app))
    senders = {name: chat.connect(name) for name in dict(lines)}
    await until(pilot, lambda: set(senders) <= set(sidebar_users(app)))
    for name, text in lines:
        chat.run(senders[name].send("#lobby", text))
    await until(pilot, lambda: lines[-1][1] in log_texts(app))
    await pilot.press(*typed)


def persian_app(chat: ServerThread, bidi: Bidi, lang: str = "en") -> ChatApp:
    return make_app(chat.server.address, "رضا", config=Config(name="رضا", lang=lang), bidi=bidi)


def test_persian_drawn_by_the_app(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await conversation(pilot, chat, PERSIAN, "می‌خواهم (فردا) بیایم")

    assert snap_compare(persian_app(chat, Bidi("app")), terminal_size=SIZE, run_before=run_before)


def test_persian_left_to_the_terminal(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await conversation(pilot, chat, PERSIAN, "می‌خواهم (فردا) بیایم")

    assert snap_compare(persian_app(chat, Bidi("off")), terminal_size=SIZE, run_before=run_before)


def test_the_test_alphabet_drawn_by_the_app(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await conversation(pilot, chat, FAKE, "TYPED (RIGHT) TO left")

    app = make_app(chat.server.address, "ali", bidi=Bidi("app", upper_is_rtl=True))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_test_alphabet_left_to_the_terminal(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await conversation(pilot, chat, FAKE, "TYPED (RIGHT) TO left")

    app = make_app(chat.server.address, "ali", bidi=Bidi("off", upper_is_rtl=True))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_persian_ui(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await conversation(pilot, chat, PERSIAN, "سلام")
        app = pilot.app
        assert isinstance(app, ChatApp)
        assert app.query_one(ChatLog).rtl_layout

    app = persian_app(chat, Bidi("app"), lang="fa")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_first_run_check(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, BidiCheck))

    config = Config(name="ali", lang="fa")
    app = make_app(chat.server.address, "ali", config=config, ask_bidi=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_the_answer_of_the_check_is_drawn_with_and_remembered(
    server: ChatServer,
) -> None:
    answers: list[str] = []
    app = make_app(server.address, "ali", ask_bidi=True, bidi_answered=answers.append)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BidiCheck))
        await pilot.press("2")  # the logical line read correctly: the terminal reorders
        await until(pilot, lambda: app.query_one(ChatLog).bidi.mode == "terminal")
        assert answers == ["terminal"]
        assert not isinstance(app.screen, BidiCheck)
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/bidi")
        await until(pilot, lambda: "right-to-left text: terminal" in log_texts(app))
        await send_line(pilot, "/bidi app")
        await until(pilot, lambda: app.query_one(ChatLog).bidi.mode == "app")
        assert app.query_one(ChatInput).bidi.mode == "app"
        await send_line(pilot, "/bidi check")
        await until(pilot, lambda: isinstance(app.screen, BidiCheck))
        await pilot.press("escape")  # no answer: nothing changes, nothing remembered
        await until(pilot, lambda: not isinstance(app.screen, BidiCheck))
        assert answers == ["terminal"] and app.bidi.mode == "app"
        await send_line(pilot, "/bidi sideways")
        await until(pilot, lambda: "usage: /bidi [app|terminal|off|check]" in log_texts(app))


async def test_no_check_unless_asked(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert not isinstance(app.screen, BidiCheck)


def log_rows(app: ChatApp) -> list[str]:
    """The log's rows as drawn."""
    log = app.query_one(ChatLog)
    return [log.render_line(y).text for y in range(log.scrollable_content_region.height)]


async def test_each_paragraph_has_its_own_direction_and_an_rlm_makes_a_line_read_rtl(
    server: ChatServer, connect: Connect
) -> None:
    mina = await connect("mina")
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await mina.send("#lobby", "ok\nسلام دنیا")  # noqa: RUF001
        await mina.send("#lobby", "Python زبان خوبی است.")  # the first strong letter is Latin
        await mina.send("#lobby", "\u200fPython زبان خوبی است.")  # an RLM first: right to left
        await until(pilot, lambda: "\u200fPython زبان خوبی است." in log_texts(app))
        rows = [row.rstrip() for row in log_rows(app)]
        width = max(len(row) for row in rows)
        ok = next(i for i, row in enumerate(rows) if row.endswith("mina ok"))
        assert rows[ok + 1].endswith(Bidi().display("سلام دنیا"))  # its own paragraph: RTL
        assert len(rows[ok + 1]) == width  # right-aligned
        ltr, rtl = (i for i, row in enumerate(rows) if "Python" in row)
        drawn = Bidi().display
        assert rows[ltr].endswith("mina " + drawn("Python زبان خوبی است.", False))
        assert rows[rtl].endswith(drawn("\u200fPython زبان خوبی است.", True))
        assert rows[rtl].split("mina", 1)[1].lstrip().startswith(".")  # its end, at the left
        assert len(rows[rtl]) == width


async def test_a_narrow_right_to_left_layout_keeps_the_name_and_time(
    server: ChatServer, connect: Connect
) -> None:
    mina = await connect("mina")
    app = make_app(server.address, "ali", config=Config(name="ali", lang="fa"))
    async with app.run_test(size=(30, 24)) as pilot:
        await until(pilot, lambda: connected(app))
        await mina.send("#lobby", "سلام به همه، امروز کلاس برنامه‌نویسی داریم")
        await until(pilot, lambda: any("امروز" in text for text in log_texts(app)))
        rows = [row.rstrip() for row in log_rows(app)]
        label = next(i for i, row in enumerate(rows) if "mina" in row)
        assert rows[label].rstrip()[-5:].replace(":", "").isdigit()  # the time, at the right
        assert Bidi().display("سلام به همه،") in rows[label + 1]  # the text below it


async def test_a_long_persian_toast_starts_on_its_first_line(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        words = "این پیام برای آزمودن است و باید در چند خط نشان داده شود تا خواننده آن را بخواند"
        lines = list(app._toast_lines(words))
        assert len(lines) > 1
        assert lines[0].endswith(Bidi().display("این پیام", True))  # its start, at the right
        assert len({len(line) for line in lines}) == 1  # every line right-aligned
        app.notify(words)
        await until(pilot, lambda: bool(app._notifications))


async def test_persian_typed_into_a_dialog_or_the_palette_reads_right(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        app.action_join_room()
        await until(pilot, lambda: bool(app.screen.query("#answer")))
        answer = app.screen.query_one("#answer", BidiInput)
        await pilot.press(*"#برنامه")
        assert answer.value == "#برنامه"  # logical
        assert answer.render_line(0).text.strip() == Bidi().display("#برنامه")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PromptDialog))
        await pilot.press("ctrl+k")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        search = app.screen.query_one(CommandInput)
        await pilot.press(*"خروج")
        assert search.value == "خروج"
        assert Bidi().display("خروج") in search.render_line(0).text
