"""One-line fields with right-to-left text: the value and the cursor stay logical, the drawing
is visual (shaped, reordered, right-aligned), clicks land on the character under them, a typed
half-space is kept; Latin text is drawn as `Input` draws it; the command palette's search box
does the same and the palette still filters and runs commands."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Callable
from functools import partial
from typing import Any

from rich.cells import cell_len
from textual._xterm_parser import XTermParser
from textual.app import App, ComposeResult
from textual.command import CommandInput, CommandList, CommandPalette, Hit, Hits, Provider
from textual.pilot import Pilot
from textual.widgets import Input

from tuichat.app.bidi import ZWNJ, ZWNJ_MARK, Bidi
from tuichat.app.widgets.bidi_input import BidiCommandInput, BidiCommandPalette, BidiInput

HELLO = "سلام (دنیا)"
HELLO_DRAWN = "(ﺎﯿﻧﺩ) ﻡﺎﻠﺳ"
PLACEHOLDER = "جست\u200cوجوی فرمان\u200cها…"  # noqa: RUF001
FORMS = (" ISOLATED FORM", " INITIAL FORM", " MEDIAL FORM", " FINAL FORM")
MIRRORED = {"(": ")", ")": "("}


class FieldApp(App[None]):
    """A `BidiInput` above a plain `Input`, both as wide as the screen (neither focused at
    first, and focusing one selects nothing)."""

    AUTO_FOCUS = None

    def __init__(self, *, value: str = "", placeholder: str = "", bidi: Bidi | None = None) -> None:
        super().__init__()
        self._value = value
        self._placeholder = placeholder
        self._bidi = bidi
        self.submitted: list[str] = []

    def compose(self) -> ComposeResult:
        bidi, value, placeholder = self._bidi, self._value, self._placeholder
        yield BidiInput(value, placeholder, bidi=bidi, select_on_focus=False, id="bidi")
        yield Input(value, placeholder, select_on_focus=False, id="plain")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False  # (the cursor stays drawn)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submitted.append(event.value)

    @property
    def field(self) -> BidiInput:
        return self.query_one("#bidi", BidiInput)

    @property
    def plain(self) -> Input:
        return self.query_one("#plain", Input)


async def until(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    """Let the app run until `condition()` holds (failing after five seconds)."""
    async with asyncio.timeout(5):
        while not condition():
            await pilot.pause()


def row(field: Input) -> str:
    return field.render_line(0).text


def cursor_cells(field: Input) -> list[int]:
    """The cells of the field's row drawn in the cursor's style."""
    wanted = field.get_component_rich_style("input--cursor").bgcolor
    assert wanted is not None
    found: list[int] = []
    x = 0
    for segment in field.render_line(0):
        for char in segment.text:
            if segment.style is not None and segment.style.bgcolor == wanted:
                found.append(x)
            x += cell_len(char)
    return found


def shows(drawn: str, logical: str) -> bool:
    """Whether a drawn character shows a logical one (a joined form of the letter, the mirror
    of a bracket, the mark of a half-space)."""
    if logical == ZWNJ:
        return drawn == ZWNJ_MARK
    if drawn in (logical, MIRRORED.get(logical)):
        return True
    name = unicodedata.name(drawn)
    for form in FORMS:
        name = name.removesuffix(form)
    return name == unicodedata.name(logical)


def gutter(field: Input) -> tuple[int, int]:
    """Where the field's text starts, from its top left corner (border and padding)."""
    return field.content_region.x - field.region.x, field.content_region.y - field.region.y


async def test_persian_is_drawn_right_to_left_and_kept_in_the_order_typed() -> None:
    app = FieldApp()
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        field.focus()
        await pilot.press(*HELLO)
        assert field.value == HELLO  # logical
        assert field.cursor_position == len(HELLO)
        drawn = row(field)
        assert len(drawn) == field.content_region.width
        assert drawn.endswith(HELLO_DRAWN)  # right-aligned
        assert drawn.strip() == HELLO_DRAWN
        assert cursor_cells(field) == [len(drawn) - len(HELLO_DRAWN) - 1]  # where it ends
        await pilot.press("enter")
        assert app.submitted == [HELLO]


async def test_the_cursor_is_drawn_on_the_character_it_is_before() -> None:
    """For every logical position, the cursor is on the cell showing the character after it
    (at the end: on the cell where the paragraph ends), and the input method is told so."""
    texts = [HELLO, "سلام abc (دنیا) 12", "hi سلام there", f"می{ZWNJ}خواهم"]
    app = FieldApp()
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        field.focus()
        for text in texts:
            field.value = text
            await pilot.pause()
            drawn = row(field)
            line = Bidi().line(text + " ", marks=True)
            pad = len(drawn) - len(line.text) if line.rtl else 0
            for position in range(len(text) + 1):
                field.cursor_position = position
                await pilot.pause()
                cell = pad + line.order.index(position)
                assert cursor_cells(field) == [cell], (text, position)
                if position < len(text):
                    assert shows(drawn[cell], text[position]), (text, position)
                assert field.cursor_screen_offset.x == field.content_region.x + cell
            end = cursor_cells(field)[0]
            assert end == (pad if line.rtl else len(line.text) - 1)  # the paragraph's end


async def test_a_click_puts_the_cursor_before_the_character_clicked() -> None:
    app = FieldApp(value=HELLO)
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        left, top = gutter(field)
        drawn = row(field)
        start = len(drawn) - len(HELLO_DRAWN)
        for x in range(start, len(drawn)):
            await pilot.click(field, offset=(left + x, top))
            position = field.cursor_position
            assert position < len(HELLO)
            assert shows(drawn[x], HELLO[position]), x
            assert cursor_cells(field) == [x]
        await pilot.click(field, offset=(left + 1, top))  # left of the text: its end
        assert field.cursor_position == len(HELLO)
        assert field.value == HELLO


async def test_a_typed_half_space_is_kept() -> None:
    app = FieldApp()
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        field.focus()
        await pilot.press(*"می", "zero_width_non_joiner", *"خواهم")
        assert field.value == f"می{ZWNJ}خواهم"
        # the bytes of a Persian keyboard's half-space key, through Textual's parser
        parser = XTermParser(debug=False)
        for event in (*parser.feed(ZWNJ), *parser.feed("")):
            app.post_message(event)
        await until(pilot, lambda: field.value.endswith(ZWNJ))
        await pilot.press(*"رم", "shift+space")  # after a letter: a half-space too
        await pilot.press("a", "shift+space", "b")  # elsewhere: a space
        assert field.value == f"می{ZWNJ}خواهم{ZWNJ}رم{ZWNJ}a b"
        assert row(field).count(ZWNJ_MARK) == 3  # each drawn while editing
        await pilot.press("enter")
        assert app.submitted == [field.value]


async def test_the_arrows_move_the_way_they_point_on_a_right_to_left_value() -> None:
    app = FieldApp(value=HELLO)
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        field.focus()
        await pilot.pause()
        before = cursor_cells(field)
        await pilot.press("right")  # towards the start, logically back
        assert field.cursor_position == len(HELLO) - 1
        assert cursor_cells(field)[0] > before[0]
        await pilot.press("left", "ctrl+right")
        assert field.cursor_position == HELLO.index("د")  # the start of the word before
        field.value = "hello"
        await pilot.press("left")
        assert field.cursor_position == 4


async def test_latin_text_is_drawn_as_input_draws_it() -> None:
    long = "lorem ipsum dolor sit amet " * 4
    app = FieldApp(value="hello (world) 12")
    async with app.run_test(size=(60, 12)) as pilot:
        field, plain = app.field, app.plain
        for value in ("", "hello (world) 12", long):
            field.value = plain.value = value
            app.set_focus(None)
            await pilot.pause()
            assert list(field.render_line(0)) == list(plain.render_line(0))  # unfocused
            focused = []
            for widget in (field, plain):
                widget.focus()
                await pilot.pause()
                widget.cursor_position = 3
                widget.action_end()
                await pilot.pause()
                focused.append(list(widget.render_line(0)))
            assert focused[0] == focused[1], value
        assert row(field).rstrip().endswith("amet")  # scrolled to the cursor, as Input does


async def test_a_long_persian_value_keeps_the_cursor_in_view() -> None:
    text = "سلام دنیا " * 10
    app = FieldApp(value=text)
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        field.focus()
        width = field.content_region.width
        for position in (len(text), *range(len(text) - 1, -1, -7), 0):
            field.cursor_position = position
            await pilot.pause()
            cells = cursor_cells(field)
            assert len(cells) == 1 and 0 <= cells[0] < width, position
            if position < len(text):
                assert shows(row(field)[cells[0]], text[position]), position
            offset = field.cursor_screen_offset.x - field.content_region.x
            assert offset == cells[0]
        assert shows(row(field)[-1], text[0])  # at the start: the right end is in view


async def test_a_persian_placeholder_is_drawn_right_to_left() -> None:
    app = FieldApp(placeholder=PLACEHOLDER)
    async with app.run_test(size=(60, 12)) as pilot:
        field = app.field
        drawn = row(field)
        assert drawn.endswith(Bidi().display(PLACEHOLDER))
        assert drawn.strip() == Bidi().display(PLACEHOLDER)
        field.focus()
        await pilot.pause()
        assert cursor_cells(field) == [len(drawn) - 1]  # before its first character
        assert field.value == ""


async def test_without_reordering_the_text_is_drawn_as_it_is() -> None:
    app = FieldApp(value=HELLO, bidi=Bidi("off"))
    async with app.run_test(size=(60, 12)) as pilot:
        field, plain = app.field, app.plain
        assert row(field).startswith(HELLO)
        assert list(field.render_line(0)) == list(plain.render_line(0))
        field.bidi = Bidi()  # (the mode may change after the field is made)
        await pilot.pause()
        assert row(field).endswith(HELLO_DRAWN)
        field.bidi = Bidi("terminal")
        await pilot.pause()
        assert row(field).startswith(HELLO)


# --- the command palette -----------------------------------------------------

COMMANDS = ("سلام دنیا", "خداحافظ")


class Greetings(Provider):
    """Two commands with Persian names; running one records its name."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, PaletteApp)
        matcher = self.matcher(query)
        for name in COMMANDS:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(app.ran.append, name), name)


class PaletteApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def open_palette(self) -> None:
        self.push_screen(
            BidiCommandPalette(
                providers=[Greetings], bidi=Bidi(), placeholder=PLACEHOLDER, id="--command-palette"
            )
        )


async def open_palette(app: PaletteApp, pilot: Pilot[None]) -> BidiCommandInput:
    app.open_palette()
    await until(pilot, lambda: isinstance(app.focused, BidiCommandInput))
    search = app.screen.query_one(CommandInput)
    await until(pilot, lambda: search.content_region.width > 0)  # (laid out)
    assert isinstance(search, BidiCommandInput) and search is app.focused
    search.cursor_blink = False
    return search


def options(app: PaletteApp) -> int:
    return app.screen.query_one(CommandList).option_count


async def test_the_palette_draws_persian_right_to_left_and_runs_a_command() -> None:
    app = PaletteApp()
    async with app.run_test(size=(60, 12)) as pilot:
        search = await open_palette(app, pilot)
        assert row(search).strip() == Bidi().display(PLACEHOLDER)
        await pilot.press("\u0627")  # (alef)
        await until(pilot, lambda: options(app) == 2)
        await pilot.press("backspace", *"خدا")
        await until(pilot, lambda: options(app) == 1)  # typing filters
        assert search.value == "خدا"
        drawn = row(search)
        assert drawn.endswith(Bidi().display("خدا")) and drawn.strip() == Bidi().display("خدا")
        palette = app.screen
        assert isinstance(palette, BidiCommandPalette)
        palette.bidi = Bidi("off")  # (the app's mode may change while it is open)
        await pilot.pause()
        assert row(search).startswith("خدا")
        await pilot.press("enter")
        await until(pilot, lambda: app.ran == ["خداحافظ"])
        await until(pilot, lambda: not isinstance(app.screen, CommandPalette))


async def test_escape_closes_the_palette() -> None:
    app = PaletteApp()
    async with app.run_test(size=(60, 12)) as pilot:
        await open_palette(app, pilot)
        await pilot.press(*"سلام")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CommandPalette))
        assert app.ran == []
