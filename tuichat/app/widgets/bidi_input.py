"""One-line text fields that draw right-to-left text in visual order.

`BidiInput` is a Textual `Input` whose value and cursor stay logical (what is typed, stored
and submitted) while a value or placeholder holding right-to-left text is drawn as `Bidi`
orders it: shaped, reordered, right-aligned when it reads right to left, with the cursor and
selection on the cells of the characters they belong to, as the composer does. Text without
right-to-left letters (and all text in the `terminal` and `off` modes) is drawn by `Input`.

`BidiCommandPalette` is Textual's command palette with a `BidiCommandInput` for its search box.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.cells import get_character_cell_size
from rich.console import RenderableType
from rich.highlighter import Highlighter
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.command import CommandInput, CommandPalette, ProviderSource
from textual.geometry import Offset
from textual.strip import Strip
from textual.suggester import Suggester
from textual.validation import Validator
from textual.widgets import Input
from textual.widgets._input import InputType, InputValidationOn

from tuichat.app.bidi import ZWNJ, ZWNJ_MARK, Bidi, Line, has_rtl, shift_space, turned_arrow

ZWNJ_KEY = "zero_width_non_joiner"
"""The key Textual reports for a typed U+200C."""


@dataclass(frozen=True, slots=True)
class _Row:
    """The field's row as drawn in visual order."""

    line: Line
    """The drawn characters from the left, each with the logical index it shows."""
    lefts: tuple[int, ...]
    """The cell each drawn character starts at, from the left of the whole row."""
    widths: tuple[int, ...]
    """The cells each drawn character takes."""
    cursor: int
    """The drawn character the cursor is on (-1: none)."""
    shift: int
    """Added to a cell of the row to give its cell in the field (padding, or minus a crop)."""
    placeholder: bool
    """Whether the row is the placeholder (the value is empty)."""


class BidiInput(Input):
    """An `Input` that draws right-to-left text in visual order; `bidi` says how (the app's
    `--bidi` mode), and may be set at any time."""

    def __init__(
        self,
        value: str | None = None,
        placeholder: str = "",
        highlighter: Highlighter | None = None,
        password: bool = False,
        *,
        bidi: Bidi | None = None,
        restrict: str | None = None,
        type: InputType = "text",
        max_length: int = 0,
        suggester: Suggester | None = None,
        validators: Validator | Iterable[Validator] | None = None,
        validate_on: Iterable[InputValidationOn] | None = None,
        valid_empty: bool = False,
        select_on_focus: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
        tooltip: RenderableType | None = None,
        compact: bool = False,
    ) -> None:
        """`bidi`: how right-to-left text is drawn (`Bidi()` by default); the other
        arguments are `Input`'s."""
        self._bidi = bidi or Bidi()
        self._view_start: int | None = None
        """The first cell of the row shown while the value is wider than the field."""
        super().__init__(
            value,
            placeholder,
            highlighter,
            password,
            restrict=restrict,
            type=type,
            max_length=max_length,
            suggester=suggester,
            validators=validators,
            validate_on=validate_on,
            valid_empty=valid_empty,
            select_on_focus=select_on_focus,
            name=name,
            id=id,
            classes=classes,
            disabled=disabled,
            tooltip=tooltip,
            compact=compact,
        )

    @property
    def bidi(self) -> Bidi:
        """How right-to-left text is drawn."""
        return self._bidi

    @bidi.setter
    def bidi(self, bidi: Bidi) -> None:
        self._bidi = bidi
        self._view_start = None
        self.refresh()

    # --- layout --------------------------------------------------------------

    def _row(self) -> _Row | None:
        """The row in visual order, or None when `Input` draws it (logical order)."""
        row = self._visual_row()
        if row is None or row.placeholder:
            self._view_start = None
        return row

    def _visual_row(self) -> _Row | None:
        bidi = self._bidi
        if not bidi.active or self.password:
            return None
        value = self.value
        if value:
            suggestion = self._suggestion
            shown = suggestion if len(suggestion) > len(value) and self.has_focus else value + " "
            if not (ZWNJ in shown or _has_rtl(bidi, shown)):
                return None
            line = bidi.line(shown, bidi.is_rtl(value), marks=True)
            target = self.cursor_position
        else:
            if not _has_rtl(bidi, self.placeholder):
                return None
            line = bidi.line(self.placeholder)
            target = 0
        widths = tuple(map(_cells, line.text))
        lefts: list[int] = []
        cells = 0
        for width in widths:
            lefts.append(cells)
            cells += width
        drawn_at = {index: at for at, index in enumerate(line.order) if widths[at]}
        cursor = next(
            (
                drawn_at[index]
                for index in range(target, max(line.order, default=-1) + 1)
                if index in drawn_at
            ),
            -1,
        )
        field = self.scrollable_content_region.width
        if cells <= field:
            shift = field - cells if line.rtl else 0
            self._view_start = None
        elif not value:  # a placeholder too long: its start stays in view
            shift = field - cells if line.rtl else 0
        else:
            start = self._view_start
            if start is None:
                start = cells - field if line.rtl else 0
            if cursor >= 0:
                left, right = lefts[cursor], lefts[cursor] + widths[cursor]
                if left < start:
                    start = left
                elif right > start + field:
                    start = right - field
            start = max(0, min(start, cells - field))
            self._view_start = start
            shift = -start
        return _Row(line, tuple(lefts), widths, cursor, shift, not value)

    # --- drawing -------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """The field's row: in visual order if it holds right-to-left text, else `Input`'s."""
        row = self._row() if y == 0 else None
        if row is None:
            return super().render_line(y)
        field = self.scrollable_content_region.width
        styles = self._styles(row)
        segments = [
            Segment(" " if char == "\t" else char, style)  # (a tab takes one cell here)
            for char, style in zip(row.line.text, styles, strict=True)
        ]
        if row.shift > 0:
            segments.insert(0, Segment(" " * row.shift))
        strip = Strip(Segment.simplify(segments))
        if row.shift < 0:
            strip = strip.crop(-row.shift, -row.shift + field)
        return strip.extend_cell_length(field).apply_style(self.rich_style)

    def _styles(self, row: _Row) -> list[Style]:
        """The style of each drawn character of `row`."""
        line = row.line
        focused = self.has_focus
        cursor_style = self.get_component_rich_style("input--cursor")
        if row.placeholder:
            placeholder_style = self.get_component_rich_style("input--placeholder")
            styles = [placeholder_style] * len(line.text)
        else:
            value = self.value
            logical = self._logical_styles()
            suggestion_style = self.get_component_rich_style("input--suggestion")
            selection_style = self.get_component_rich_style("input--selection")
            start, end = sorted(self.selection)
            mark = Style(dim=True)
            styles = []
            for char, index in zip(line.text, line.order, strict=True):
                style = logical.get(index, Style.null())
                if index >= len(value) and len(self._suggestion) > len(value):
                    style += suggestion_style
                if char == ZWNJ_MARK and index < len(value) and value[index] == ZWNJ:
                    style += mark
                if focused and start <= index < end:
                    style += selection_style
                styles.append(style)
        if focused and self._cursor_visible and row.cursor >= 0:
            styles[row.cursor] += cursor_style
        return styles

    def _logical_styles(self) -> dict[int, Style]:
        """The highlighter's style of each logical character it styles."""
        if self.highlighter is None:
            return {}
        console = self.app.console
        styles: dict[int, Style] = {}
        for span in self._value.spans:
            style = console.get_style(span.style, default=Style.null())
            for index in range(span.start, span.end):
                styles[index] = styles.get(index, Style.null()) + style
        return styles

    @property
    def cursor_screen_offset(self) -> Offset:
        """Where the cursor is drawn on the screen (where an input method shows its text)."""
        row = self._row()
        if row is None or row.cursor < 0:
            return super().cursor_screen_offset
        x, y, _width, _height = self.content_region
        return Offset(x + row.lefts[row.cursor] + row.shift, y)

    def _cell_offset_to_index(self, offset: int) -> int:
        """The logical position of the character drawn on cell `offset` of the field (a
        click or a drag): before it, or the end of the value past the drawn text."""
        row = self._row()
        if row is None:
            return super()._cell_offset_to_index(offset)
        if row.placeholder:
            return 0
        cell = offset - row.shift
        drawn = [at for at, width in enumerate(row.widths) if width]
        if not drawn:
            return len(self.value)
        hit = drawn[0] if cell < row.lefts[drawn[0]] else drawn[-1]
        for at in drawn:
            if row.lefts[at] <= cell < row.lefts[at] + row.widths[at]:
                hit = at
                break
        return min(row.line.order[hit], len(self.value))

    # --- keys ----------------------------------------------------------------

    def check_consume_key(self, key: str, character: str | None) -> bool:
        """Printable keys, and the zero-width non-joiner (the Persian half-space)."""
        return key == ZWNJ_KEY or character == ZWNJ or super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        """Type a zero-width non-joiner, which `Input` drops as not printable, and turn the
        arrows round on a value that reads right to left (`Input._on_key` runs next for
        other keys)."""
        turned = self._visual_key(event.key)
        if turned != event.key:
            for binding in self._bindings.key_to_bindings.get(turned, ()):
                event.stop()
                event.prevent_default()
                self._restart_blink()
                await self.run_action(binding.action)
                return
        typed = self._format_character(event)
        if typed is None:
            return
        event.stop()
        event.prevent_default()
        self._restart_blink()
        self.replace(typed, *self.selection)

    def _visual_key(self, key: str) -> str:
        """On a value that reads right to left, Left moves towards its end and Right towards
        its start, as the arrows point on screen (as in the composer)."""
        turned = turned_arrow(key)
        if turned == key or self.password or not self._bidi.is_rtl(self.value):
            return key
        return turned

    def _format_character(self, event: events.Key) -> str | None:
        """The character a key types that `Input` would not: a ZWNJ, which Persian layouts
        put on Shift+Space (here Shift+Space types it after a letter of an Arabic-script
        word, and a space elsewhere)."""
        if event.key == ZWNJ_KEY or event.character == ZWNJ:
            return ZWNJ
        if event.key == "shift+space":
            return shift_space(self.value[: self.cursor_position][-1:])
        return None


class BidiCommandInput(CommandInput, BidiInput):
    """The command palette's search box, drawing right-to-left text in visual order (a
    `CommandInput` first, so that the palette's `CommandInput` selectors find it)."""


class BidiCommandPalette(CommandPalette):
    """Textual's command palette, its search box a `BidiCommandInput`."""

    def __init__(
        self,
        providers: ProviderSource | None = None,
        *,
        bidi: Bidi | None = None,
        placeholder: str = "Search for commands…",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`bidi`: how right-to-left text is drawn; the other arguments are
        `CommandPalette`'s (`placeholder` in logical order)."""
        super().__init__(providers, placeholder=placeholder, name=name, id=id, classes=classes)
        self._bidi = bidi or Bidi()

    @property
    def bidi(self) -> Bidi:
        """How right-to-left text is drawn (setting it redraws the search box)."""
        return self._bidi

    @bidi.setter
    def bidi(self, bidi: Bidi) -> None:
        self._bidi = bidi
        for search in self.query(BidiCommandInput):
            search.bidi = bidi

    def compose(self) -> ComposeResult:
        """Textual's palette, with a `BidiCommandInput` where it has its `CommandInput`."""
        for widget in super().compose():
            if type(widget) is CommandInput:
                widget = BidiCommandInput(
                    placeholder=widget.placeholder,
                    select_on_focus=widget.select_on_focus,
                    id=widget.id,
                    classes=" ".join(widget.classes) or None,
                    bidi=self._bidi,
                )
            yield widget


def _has_rtl(bidi: Bidi, text: str) -> bool:
    """Whether `text` needs drawing in visual order: it holds right-to-left letters."""
    return bool(text) and (has_rtl(text) or bidi.is_rtl(text))


def _cells(char: str) -> int:
    return 1 if char.isascii() else get_character_cell_size(char)
