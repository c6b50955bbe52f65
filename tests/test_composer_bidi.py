"""The composer with right-to-left text: the buffer and the cursor stay logical, the drawing is
visual; the half-space (ZWNJ) is typed, kept, shown as a thin mark and sent."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.style import Style
from textual._xterm_parser import XTermParser
from textual.strip import Strip

from tests.app_support import connected, make_app, until
from tests.conftest import Connect
from tests.helpers import expect
from tests.test_composer import ComposerApp
from tuichat.app.bidi import ZWNJ, ZWNJ_MARK, Bidi
from tuichat.app.completion import complete
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.protocol import Message
from tuichat.server import ChatServer

PERSIAN_LETTERS = "ابپتجچخدرزسشعفقکگلمنوهی"


def cells(strip: Strip) -> list[tuple[str, Style | None]]:
    """Each drawn character of a row with its style."""
    return [(char, segment.style) for segment in strip for char in segment.text]


def cursor_cells(composer: ChatInput, row: int = 0) -> list[int]:
    """The columns of row `row` drawn in the cursor's style."""
    theme = composer._theme
    assert theme is not None and theme.cursor_style is not None
    wanted = theme.cursor_style
    return [
        x
        for x, (_, style) in enumerate(cells(composer.render_line(row)))
        if style is not None and wanted.bgcolor is not None and style.bgcolor == wanted.bgcolor
    ]


def row_text(composer: ChatInput, row: int = 0) -> str:
    return composer.render_line(row).text


async def test_persian_is_drawn_right_to_left_and_kept_in_the_order_typed() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"سلام (دنیا)")
        composer = app.composer
        assert composer.value == "سلام (دنیا)"  # logical
        drawn = row_text(composer).rstrip()
        assert drawn.endswith("(ﺎﯿﻧﺩ) ﻡﺎﻠﺳ")
        assert drawn.startswith(" ")  # right-aligned in the text column
        await pilot.press("enter")
        assert app.sent == ["سلام (دنیا)"]


async def test_latin_rows_are_drawn_as_before() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await pilot.press(*"hello (world)")
        assert row_text(app.composer).startswith("hello (world)")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.text(alphabet=PERSIAN_LETTERS + " abc12()", min_size=1, max_size=30))
async def test_the_cursor_is_drawn_on_the_character_it_is_before(text: str) -> None:
    """For every logical position, the cursor is drawn on the cell that shows the character
    after it (or, at the end, on the cell past the text, at the paragraph's end)."""
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        composer = app.composer
        composer.value = text
        await pilot.pause()
        line = Bidi().line(text + " ")
        drawn = row_text(composer)
        width = len(drawn)
        pad = width - len(line.text) if line.rtl else 0
        for column in range(len(text) + 1):
            composer.move_cursor((0, column))
            await pilot.pause()
            expected = pad + line.order.index(column)
            assert cursor_cells(composer) == [expected], (text, column)


async def test_a_typed_half_space_is_kept_shown_and_sent(
    server: ChatServer, connect: Connect
) -> None:
    reader = await connect("reza")  # (everyone starts in #lobby)
    app = make_app(server.address, "ali")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app))
        composer = app.query_one(ChatInput)
        # the bytes of a Persian keyboard's half-space key, through Textual's parser
        parser = XTermParser(debug=False)
        await pilot.press(*"می")
        for event in (*parser.feed(ZWNJ), *parser.feed("")):
            app.post_message(event)
        await until(pilot, lambda: ZWNJ in composer.value)
        await pilot.press(*"خواهم", "shift+space")  # after a letter: a half-space too
        await pilot.press(*"رم", "shift+space", "a", "shift+space", "b")
        assert composer.value == "می‌خواهم‌رم‌a b"
        marks = [c for c, style in cells(composer.render_line(0)) if c == ZWNJ_MARK]
        assert len(marks) == 3  # drawn while editing
        await pilot.press("enter")
        got = await expect(reader, Message)
        assert got.text == "می‌خواهم‌رم‌a b"
        assert unicodedata.normalize("NFC", got.text) == got.text


def test_tab_completes_a_persian_name_whatever_the_keyboard_typed() -> None:
    names = ["کامران", "علی‌رضا", "ali"]
    # Arabic kaf for keheh, and no half-space: the names they look like
    assert complete("\u0643\u0627", 2, names, []) == ("کامران: ", 8)
    assert complete("سلام علیر", 9, names, []) == ("سلام علی‌رضا ", 13)
    assert complete("#برنامهن", 8, [], ["#برنامه‌نویسی"]) == ("#برنامه‌نویسی ", 14)


async def test_the_arrows_move_the_way_they_point_on_a_right_to_left_line() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        composer = app.composer
        await pilot.press(*"سلام دنیا")
        assert composer.selection.end == (0, 9)
        before = cursor_cells(composer)
        await pilot.press("left")  # on screen: one cell to the left, logically one further
        assert composer.selection.end == (0, 9)  # (already at the end: it stays)
        await pilot.press("right", "right")  # towards the start of the line
        assert composer.selection.end == (0, 7)
        after = cursor_cells(composer)
        assert after[0] > before[0]  # the cursor went right on screen
        await pilot.press("left")
        assert composer.selection.end == (0, 8)
        composer.value = "hello"
        await pilot.press("left")  # a left-to-right line: as ever
        assert composer.selection.end == (0, 4)


async def test_a_click_puts_the_cursor_before_the_character_clicked() -> None:
    app = ComposerApp()
    async with app.run_test(size=(60, 12)) as pilot:
        composer = app.composer
        text = "سلام (دنیا)"
        await pilot.press(*text)
        line = Bidi().line(text + " ")
        pad = len(row_text(composer)) - len(line.text)  # right-aligned
        left = composer.content_region.x - composer.region.x
        top = composer.content_region.y - composer.region.y
        for logical in (0, 3, 5, 8, 10):
            x = left + pad + line.order.index(logical)
            await pilot.click(composer, offset=(x, top))
            await until(pilot, lambda logical=logical: composer.selection.end == (0, logical))  # type: ignore[misc]
        await pilot.click(composer, offset=(left + 1, top))  # left of the text: its end
        await until(pilot, lambda: composer.selection.end == (0, len(text)))
