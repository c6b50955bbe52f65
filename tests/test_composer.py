"""The composer (`ChatInput`): several lines, pastes, bursts of keys, history, completion and
the external editor; on its own in a small app, and in the real app against a real server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual._xterm_parser import XTermParser
from textual.app import App, ComposeResult
from textual.color import Color
from textual.notifications import SeverityLevel
from textual.widgets import Button

from tests.app_support import connected, log_texts, make_app, until
from tests.conftest import Connect
from tests.helpers import collect, expect
from tuichat.app.widgets.chat_input import ChatInput, run_in_terminal
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.chat import ChatLimits
from tuichat.protocol import Message
from tuichat.server import ChatServer

NAMES = ("ali", "bill", "bob", "Bobby")
ROOMS = ("#lobby", "#dev", "#design")
LIMITS = ChatLimits()


def candidates() -> tuple[Iterable[str], Iterable[str]]:
    return NAMES, ROOMS


class ComposerApp(App[None]):
    """The composer, a button to take the focus from it, and what it sent and said."""

    CSS = """
    #input { dock: bottom; border: tall $primary-background; }
    #input:focus { border: tall $primary; }
    """

    def __init__(self, composer: ChatInput | None = None) -> None:
        super().__init__()
        self.composer = composer or ChatInput(candidates, id="input", placeholder="Say")
        self.sent: list[str] = []
        self.notes: list[str] = []

    def compose(self) -> ComposeResult:
        yield Button("elsewhere", id="elsewhere")
        yield self.composer

    def on_mount(self) -> None:
        self.composer.focus()

    def on_chat_input_entered(self, event: ChatInput.Entered) -> None:
        self.sent.append(event.line)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        self.notes.append(message)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


def burst(app: App[Any], keys: Iterable[str]) -> None:
    """Post key events to the app as the driver does for keys read in one go: all of them,
    before the app has handled any."""
    for key in keys:
        character = "\r" if key == "enter" else key if len(key) == 1 else None
        app.post_message(events.Key(key, character))


def typed(text: str) -> list[str]:
    """The keys that type `text` (a line break is Enter)."""
    return ["enter" if c == "\n" else c for c in text]


# --- sending ------------------------------------------------------------------


async def test_a_burst_of_lines_gives_one_message_per_enter_in_order() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        burst(app, typed("one1\ntwo2\nthree3\n"))
        await until(pilot, lambda: len(app.sent) >= 3)
        await pilot.pause()
        assert app.sent == ["one1", "two2", "three3"]
        assert app.composer.value == ""


async def test_editing_keys_in_a_burst_act_on_what_was_typed_before_them() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        # a fast typist, or keys that arrive together over a slow link
        burst(app, [*"abc", "backspace", "X", "enter"])
        burst(app, [*"oops", "ctrl+u", *"hello", "enter"])
        burst(app, [*"one two", "ctrl+w", *"three", "enter"])
        burst(app, [*"ac", "left", "b", "enter"])
        await until(pilot, lambda: len(app.sent) >= 4)
        await pilot.pause()
        assert app.sent == ["abX", "hello", "one three", "abc"]


async def test_a_burst_of_lines_reaches_the_other_user_as_three_messages(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        burst(app, typed("one1\ntwo2\nthree3\n"))
        received = await collect(bob, Message, 3)
        assert [m.text for m in received] == ["one1", "two2", "three3"]


async def test_enter_on_nothing_or_only_spaces_sends_nothing() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press("enter")
        await pilot.press("space", "space", "shift+enter", "space", "enter")
        await pilot.pause()
        assert app.sent == []
        await pilot.press("h", "i", "enter")
        assert app.sent == ["hi"]


@pytest.mark.parametrize(
    "keys",
    [("shift+enter",), ("alt+enter",), ("ctrl+j",), ("ctrl+enter",), ("escape", "enter")],
)
async def test_new_line_keys_add_a_line_and_enter_sends_both(keys: tuple[str, ...]) -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press("a", *keys, "b")
        assert app.composer.value == "a\nb"
        assert app.sent == []
        await pilot.press("enter")
        assert app.sent == ["a\nb"]


@pytest.mark.parametrize(
    ("sent_by_terminal", "sends"),
    [
        ("\r", True),  # Enter
        ("\x1bOM", True),  # keypad Enter
        ("\n", False),  # Ctrl+J, and what terminals set up for Shift+Enter send
        ("\x1b[13;2u", False),  # Shift+Enter, kitty keyboard protocol
        ("\x1b[13;3u", False),  # Alt+Enter, kitty keyboard protocol
        ("\x1b[13;5u", False),  # Ctrl+Enter, kitty keyboard protocol
        ("\x1b[27;2;13~", False),  # Shift+Enter, xterm modifyOtherKeys (tmux extended-keys)
        ("\x1b[27;3;13~", False),  # Alt+Enter, the same
    ],
)
async def test_what_terminals_send_for_enter_and_its_chords(
    sent_by_terminal: str, sends: bool
) -> None:
    """The bytes go through Textual's own input parser, as a terminal's would."""
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        parser = XTermParser(debug=False)
        keys = [e for e in (*parser.feed("a" + sent_by_terminal + "b"), *parser.feed(""))]
        for event in keys:
            app.post_message(event)
        await until(pilot, lambda: app.composer.value.endswith("b") or app.sent != [])
        await pilot.pause()
        if sends:
            assert app.sent == ["a"]
            assert app.composer.value == "b"
        else:
            assert app.sent == []
            assert app.composer.value == "a\nb"


# --- pasting ------------------------------------------------------------------


async def test_a_paste_keeps_every_line_and_is_not_sent() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"say: ")
        app.post_message(events.Paste("one\r\ntwo\rthree\nfour"))
        await pilot.pause()
        assert app.composer.value == "say: one\ntwo\nthree\nfour"
        assert app.sent == []
        await pilot.press("enter")
        assert app.sent == ["say: one\ntwo\nthree\nfour"]


async def test_a_three_line_paste_reaches_the_other_user_as_one_three_line_message(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        app.post_message(events.Paste("first line\r\nsecond line\nthird line"))
        composer = app.query_one(ChatInput)
        await until(pilot, lambda: composer.value == "first line\nsecond line\nthird line")
        assert composer.outer_size.height == 3 + 2  # three lines and the border
        await pilot.press("enter")
        received = await expect(bob, Message)
        assert received.text == "first line\nsecond line\nthird line"
        assert (received.sender, received.room) == ("ali", "#lobby")
        await until(pilot, lambda: received.text in log_texts(app))
        assert composer.value == ""


async def test_a_text_over_the_limits_is_shown_as_such_and_enter_refuses_it() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        app.post_message(events.Paste("\n".join(f"line {n}" for n in range(1, 102))))
        await until(pilot, lambda: composer.has_class("-over"))
        assert f"101/{LIMITS.max_text_lines} lines" in str(composer.border_subtitle)
        error = Color.parse(app.theme_variables["error"])
        assert composer.styles.border_subtitle_color == error  # the note is in red
        await pilot.press("enter")
        assert app.sent == []
        assert app.notes == [
            f"This message has 101 lines, and a message may have at most "
            f"{LIMITS.max_text_lines}: shorten it or send it in parts."
        ]
        assert composer.value.count("\n") == 100  # kept, to be shortened
        await pilot.press("ctrl+shift+k")  # delete the last line: 100 lines is allowed
        await until(pilot, lambda: not composer.has_class("-over"))
        assert composer.border_subtitle == ""
        await pilot.press("enter")
        assert len(app.sent) == 1 and app.sent[0].count("\n") == 99


async def test_a_text_of_too_many_bytes_is_refused_with_its_size() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        text = "é" * (LIMITS.max_text_bytes // 2) + "!"  # two bytes each in UTF-8
        app.post_message(events.Paste(text))
        await until(pilot, lambda: composer.has_class("-over"))
        size = len(text.encode())
        assert f"{size}/{LIMITS.max_text_bytes} bytes" in str(composer.border_subtitle)
        await pilot.press("enter")
        assert app.sent == []
        assert f"{size} bytes long" in app.notes[-1]
        assert f"at most {LIMITS.max_text_bytes} bytes" in app.notes[-1]
        await pilot.press("backspace", "enter")
        assert app.sent == [text[:-1]]


# --- how it looks -------------------------------------------------------------


async def test_the_composer_grows_with_its_lines_up_to_five_then_scrolls() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(40, 20)) as pilot:
        heights = []
        for lines in (1, 3, 5, 8):
            composer.value = "\n".join(f"line {n}" for n in range(1, lines + 1))
            await pilot.pause()
            heights.append(composer.outer_size.height)
        assert heights == [3, 5, 7, 7]
        assert composer.max_scroll_y == 3  # the other three lines are a scroll away
        assert composer.scroll_y == 3  # and the cursor, at the end, is in view
        composer.value = "word " * 20  # 100 cells, 34 wide (with the cursor's cell, 33)
        await pilot.pause()
        assert composer.wrapped_document.height == 4  # six words a row
        assert composer.outer_size.height == 4 + 2
        assert composer.max_scroll_x == 0
        assert not composer.show_line_numbers


# --- history ------------------------------------------------------------------


async def test_up_and_down_walk_the_history_only_from_the_first_and_last_line() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"first", "enter", *"two", "shift+enter", *"lines", "enter")
        await pilot.press(*"draft", "shift+enter", *"more")
        await pilot.press("up")  # on the last line: moves to the first
        assert composer.value == "draft\nmore"
        assert composer.cursor_location[0] == 0
        await pilot.press("up")  # on the first line: the newest text sent
        assert composer.value == "two\nlines"
        assert composer.cursor_location == (0, 3)
        await pilot.press("up")
        assert composer.value == "first"
        await pilot.press("up")  # nothing older
        assert composer.value == "first"
        await pilot.press("down")  # on the last line (the only one)
        assert composer.value == "two\nlines"
        assert composer.cursor_location == (1, 5)
        await pilot.press("up")  # off the last line: the cursor moves
        assert (composer.value, composer.cursor_location[0]) == ("two\nlines", 0)
        await pilot.press("down", "down")
        assert composer.value == "draft\nmore"  # the draft is back


async def test_up_on_a_wrapped_line_moves_through_its_rows_first() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.press(*"old", "enter")
        composer.value = "word " * 20  # one line, wrapped onto four rows
        await pilot.pause()
        assert composer.wrapped_document.height == 4
        for _ in range(3):
            await pilot.press("up")
            assert composer.value == "word " * 20
        assert composer.cursor_location[0] == 0
        await pilot.press("up")  # now from the first row
        assert composer.value == "old"


# --- completion ---------------------------------------------------------------


async def test_tab_cycles_through_names_and_shift_tab_goes_back() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press("b", "tab")
        assert composer.value == "bill: "
        await pilot.press("tab")
        assert composer.value == "bob: "
        await pilot.press("tab")
        assert composer.value == "Bobby: "
        await pilot.press("tab")
        assert composer.value == "bill: "  # round the end
        await pilot.press("shift+tab")
        assert composer.value == "Bobby: "
        await pilot.press("h", "i")  # any other key takes the one shown
        assert composer.value == "Bobby: hi"
        assert composer.has_focus


async def test_tab_fills_what_the_names_share_then_cycles() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"line one", "shift+enter", *"see #d", "tab")
        assert composer.value == "line one\nsee #de"  # what #dev and #design share
        await pilot.press("tab")
        assert composer.value == "line one\nsee #design "
        await pilot.press("tab")
        assert composer.value == "line one\nsee #dev "
        composer.value = "bo"
        await pilot.press("tab")
        assert composer.value == "bob"  # bob and Bobby share "bob"
        await pilot.press("tab")
        assert composer.value == "bob: "
        await pilot.press("tab")
        assert composer.value == "Bobby: "
        await pilot.press("backspace", "backspace", "tab")
        assert composer.value == "Bobby: "  # a new word: Bobby is the only one


async def test_tab_and_shift_tab_never_take_the_focus_away() -> None:
    app = ComposerApp()
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press("shift+tab", "tab", "shift+tab")  # nothing to complete
        assert composer.has_focus
        await pilot.press(*"zz", "tab", "shift+tab", *"top")
        assert composer.has_focus
        assert composer.value == "zztop"  # no key went elsewhere


# --- the external editor -------------------------------------------------------

REWRITE = """\
import pathlib, sys
path = pathlib.Path(sys.argv[-1])
seen = path.read_text(encoding="utf-8")
path.write_text("edited: " + seen.upper() + "\\r\\nsecond line\\n", encoding="utf-8")
"""


async def test_ctrl_o_edits_the_text_in_the_editor_and_puts_it_back_unsent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "editor.py"
    script.write_text(REWRITE, encoding="utf-8")
    monkeypatch.setenv("VISUAL", f"{sys.executable} {script}")
    ran: list[Sequence[str]] = []

    def runner(command: Sequence[str]) -> int:
        ran.append(command)
        return run_in_terminal(command)

    app = ComposerApp(ChatInput(candidates, id="input", editor_runner=runner))
    composer = app.composer
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"draft", "shift+enter", *"two")
        await pilot.press("ctrl+o")
        assert composer.value == "edited: DRAFT\nTWO\nsecond line"
        assert app.sent == []
        [command] = ran
        assert list(command[:2]) == [sys.executable, str(script)]
        assert not await asyncio.to_thread(Path(command[-1]).exists)  # the file is gone
        await pilot.press("f4")  # the other key for it
        assert composer.value == "edited: EDITED: DRAFT\nTWO\nSECOND LINE\nsecond line"
        await pilot.press("enter")
        assert app.sent == ["edited: EDITED: DRAFT\nTWO\nSECOND LINE\nsecond line"]


@pytest.mark.parametrize(
    ("visual", "said"),
    [
        (f"{sys.executable} -c 'raise SystemExit(3)'", "the editor exited with status 3"),
        ("/nonexistent/editor", "cannot start the editor '/nonexistent/editor'"),
    ],
)
async def test_an_editor_that_fails_leaves_the_text_as_it_was(
    monkeypatch: pytest.MonkeyPatch, visual: str, said: str
) -> None:
    monkeypatch.setenv("VISUAL", visual)
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"keep me")
        await pilot.press("ctrl+o")
        assert app.composer.value == "keep me"
        assert said in app.notes[-1]


# --- in the real app ------------------------------------------------------------


async def test_page_up_in_the_composer_still_scrolls_the_log(
    server: ChatServer, connect: Connect
) -> None:
    bob = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        for n in range(60):
            await bob.send("#lobby", f"message {n}")
        await until(pilot, lambda: "message 59" in log_texts(app))
        log = app.query_one(ChatLog)
        await until(pilot, lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y)
        await pilot.press(*"typing", "pageup")
        assert log.scroll_y < log.max_scroll_y
        assert app.query_one(ChatInput).value == "typing"
