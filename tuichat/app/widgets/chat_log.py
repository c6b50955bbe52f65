"""The chat log: a Line-API scroll view that draws only the lines on screen.

Entries are laid out (wrapped) once per width, with a date line above the first entry and
above each that begins another day (in the log's time zone); a line is turned into a `Strip`
only when it becomes visible, and kept in a small cache, as are the wrapped lines
of the entries on screen. So 100,000 entries cost their text and an offset each,
and re-wrap when the terminal is resized; one huge entry is wrapped once, in time
linear in its length. Text is drawn as plain `Segment`s: nothing in it is markup.

A message shows what it is now: a reply has a row above it quoting what it answers (`╭ bob:
its first line`), an edited one says so after its text, a deleted one says only that, and
reactions have rows of their own under it (`👍 2  🎉 1`, those the user gave too in the
accent colour). Each piece of such a row (a name, a preview, a reaction) is isolated from the
others and reordered with the row's direction, the layout's, so that a Persian preview or
reaction reads right in either layout.

The log may have one message selected (`select`, with the focus while it does: its keys move
the selection and ask for a verb on it, `Chosen`), drawn on another background. Only the
selection's keys act on it: any other character typed is the user writing, and goes on to
the composer (`Typed`), as does every key after it. A delete is asked about first
(`confirming`): only `y` (or the Persian letter on its key) says yes, so that a word typed
by mistake while a message is selected ("added") deletes nothing.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import ClassVar

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.app.bidi import FSI, PDI, Bidi
from tuichat.app.colors import LogStyles, log_styles
from tuichat.app.dates import day_label, local_digits
from tuichat.app.i18n import N_, _, translate_bindings
from tuichat.app.model import Kind, LogEntry
from tuichat.app.verbs import drawn, mine_first, selectable
from tuichat.app.wrap import cells, fits, wrap

MIN_HANGING_WIDTH = 24
WRAPS = 256
"""Entries whose wrapped lines are kept (those on screen, and the newest)."""
NARROW_INDENT = 2
QUOTE_MARKS = ("╭ ", " ╮")
"""Before a reply's quote in a left-to-right layout, and after it in a right-to-left one."""
REACTION_GAP = "  "
"""Between two reactions of a row."""
EDITED = N_("(edited)")
"""After the text of an edited message (in English: shown through `_`)."""
DELETED = N_("message deleted")
"""What a deleted message shows instead of its text."""
EARLIER = N_("an earlier message")
"""What a reply quotes until the message it answers is loaded."""
YES_KEYS = frozenset({"y", "غ"})
"""The keys that say yes to a delete: `y`, and the letter a Persian layout has on it."""


@dataclass(slots=True)
class _Rows:
    """How an entry is laid out at a width: its text's lines, and the rows around them."""

    lines: list[str]
    """The text's lines (in a narrow log, the first is "": the label stands alone)."""
    rtl: bytes
    """For each line, 1 if its paragraph reads right to left."""
    quote: int = 0
    """Rows above the text: a reply's quote (0 or 1)."""
    mark_row: bool = False
    """The "(edited)" mark has a row of its own, after the text's (it does not fit after)."""
    reactions: tuple[tuple[int, int], ...] = ()
    """Each row of reactions under it: the range of the entry's reactions it shows."""

    @property
    def count(self) -> int:
        """The rows in all."""
        return self.quote + len(self.lines) + self.mark_row + len(self.reactions)


class ChatLog(ScrollView, can_focus=False):
    """Shows a list of `LogEntry` (but the hidden ones, which take no line), following the end
    unless the user scrolled up. It never takes the focus (a click on it leaves the composer
    where keys go; the app's keys and the mouse wheel scroll it)."""

    DEFAULT_CSS = """
    ChatLog {
        background: $surface;
        scrollbar-gutter: stable;
        overflow-x: hidden;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", N_("Select the message before"), show=False),
        Binding("down", "move(1)", N_("Select the message after"), show=False),
        Binding("pageup", "move_page(-1)", N_("Select a page up"), show=False),
        Binding("pagedown", "move_page(1)", N_("Select a page down"), show=False),
        Binding("home", "move_to(0)", N_("Select the first message"), show=False),
        Binding("end", "move_to(-1)", N_("Select the newest message"), show=False),
        # (the keys' Persian letters too: where a Persian layout types them)
        Binding("r,ق", "choose('reply')", N_("Reply"), show=False),
        Binding("e,ث", "choose('edit')", N_("Edit"), show=False),
        Binding("d,ی", "choose('delete')", N_("Delete"), show=False),
        Binding("plus", "choose('react')", N_("React"), show=False),
        Binding("enter", "choose('original')", N_("The message it answers"), show=False),
        Binding("escape", "choose('leave')", N_("Done"), show=False),
    ]
    """The keys of the selection (the log has the focus only while a message is selected);
    any other character typed goes on to the composer (`Typed`)."""

    unseen: reactive[int] = reactive(0)
    """Entries added while the user was scrolled up."""

    class ReachedTop(Message):
        """The user scrolled to the first line: older history may be wanted (`wanted`: by the
        user; false when the app scrolled there, to the "new messages" line)."""

        def __init__(self, log: ChatLog, wanted: bool = True) -> None:
            super().__init__()
            self.log = log
            self.wanted = wanted

    class ReachedBottom(Message):
        """The user scrolled to the last line of a log that shows older messages
        (`more_below`): newer history may be wanted."""

        def __init__(self, log: ChatLog) -> None:
            super().__init__()
            self.log = log

    class Selected(Message):
        """The selection moved to `entry` (None: the log has no selection any more)."""

        def __init__(self, entry: LogEntry | None) -> None:
            super().__init__()
            self.entry = entry

    class Chosen(Message):
        """A key of the selection asked for `verb` on `entry`: `reply`, `edit`, `delete`
        (asked about first), `react`, `original` (go to the message it answers), `leave`
        (the selection); or, while a delete is asked about (`confirming`), `confirm` (y:
        delete it) or `keep` (any other key)."""

        def __init__(self, verb: str, entry: LogEntry) -> None:
            super().__init__()
            self.verb = verb
            self.entry = entry

    class Typed(Message):
        """A key that is not one of the selection's was typed while a message was selected
        (a character), or after such a key: the user is writing, the key is the composer's
        (`key` and `character` as the `Key` event had them)."""

        def __init__(self, key: str, character: str | None) -> None:
            super().__init__()
            self.key = key
            self.character = character

    def __init__(
        self,
        *,
        tz: tzinfo | None = None,
        timestamps: str = "%H:%M",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._tz = tz
        self._timestamps = timestamps
        """A strftime format for each entry's time ("": none shown)."""
        self._time_step = 1 if any(d in timestamps for d in ("%S", "%c", "%T")) else 60
        """Seconds one shown time stands for (a format with seconds: 1; else a minute)."""
        self._entries: list[LogEntry] = []
        self._starts = array("q")  # first screen line of each entry
        self._dated = bytearray()  # 1 for each entry with a date line above it
        self._total = 0  # screen lines of the laid-out entries
        self._at_end = True  # following the end (the last scroll left us there)
        self._width = 0  # the width the layout was made for
        self._cache: LRUCache[tuple[int, int], Strip] = LRUCache(1024)
        self._wraps: dict[int, _Rows] = {}  # entry index → its rows, the last WRAPS
        self._time_cache: dict[int, str] = {}
        self._day_cache: dict[int, date] = {}
        self._time_cells = _cells(self._format_time(0)) + 1 if timestamps else 0
        """Cells the time takes, with its space."""
        self.time_format: Callable[[int], str] = self._format_time
        self.calendar = "gregorian"
        """The calendar of the date lines ("gregorian" or "jalali")."""
        self.date_format: Callable[[date | None], str] = self._format_date
        self._styles: LogStyles | None = None
        self._rich_style: Style | None = None
        self._name_styles: dict[tuple[str, bool], Style] = {}
        self.bidi = Bidi()
        """How right-to-left text is drawn (the app sets its `--bidi` mode)."""
        self.rtl_layout = False
        """Rows mirrored, the time at the right edge (a right-to-left UI)."""
        self.me = ""
        """The user's name (their reactions stand out)."""
        self._selected: LogEntry | None = None
        self.confirming = False
        """A delete of the selected message is asked about: the next key answers (`y` deletes
        it); selecting another message forgets the question."""
        self._placing = False
        """The log is being scrolled to an entry the app chose (`scroll_to_entry`)."""
        self.more_below = False
        """The entries shown stop before the newest message (older ones were paged back in):
        reaching the last line asks for what follows (`ReachedBottom`)."""
        self._passing = False
        """A key was typed through to the composer: every key after it goes there too, until
        the log loses the focus (keys read in one burst reach the log before the app moves
        the focus)."""
        translate_bindings(self)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _base_style(self) -> Style:
        """The log's own style (its background, its colour), worked out once per change of
        its styles rather than for each line drawn."""
        style = self._rich_style
        if style is None:
            style = self._rich_style = self.rich_style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._rich_style = None
        self._cache.clear()

    def redraw(self) -> None:
        """Draw every line again (how text is drawn changed)."""
        self._cache.clear()
        self._wraps.clear()
        self._time_cache.clear()
        self.refresh()

    def _theme_changed(self, _theme: object) -> None:
        self._styles = self._rich_style = None  # every line is drawn again in its colours
        self._name_styles.clear()
        self._cache.clear()
        self.refresh()

    @property
    def styles_now(self) -> LogStyles:
        """The log's styles in the app's current theme."""
        if self._styles is None:
            app = self.app
            self._styles = log_styles(app.theme_variables, app.current_theme.dark)
        return self._styles

    # --- what to show ------------------------------------------------------

    @property
    def entries(self) -> list[LogEntry]:
        """The entries shown (the list itself, shared with the caller)."""
        return self._entries

    def show(self, entries: list[LogEntry]) -> None:
        """Show another list of entries (another room), scrolled to its end (and nothing
        selected any more, unless the selection is in it)."""
        self._entries = entries
        if self._selected is not None and not any(e is self._selected for e in entries):
            self._selected = None
            self.post_message(self.Selected(None))
        self._relayout()
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def entries_added(self, trimmed: int = 0, *, follow: bool = True) -> None:
        """Lay out entries appended to the shown list since the last call, after `trimmed`
        entries were removed from its front; the view stays on what it showed, or (`follow`)
        follows the end if it was there (else counts them as `unseen`)."""
        at_end = follow and (self._at_end or self.is_vertical_scroll_end or self.max_scroll_y == 0)
        if trimmed:
            self._entries_trimmed(trimmed, at_end, follow)
            return
        before = len(self._starts)
        self._layout_from(before)
        added = len(self._starts) - before
        if not added:
            return
        self.virtual_size = Size(self._width, self._total)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif follow:
            self.unseen += added
        self.refresh()

    def _entries_trimmed(self, trimmed: int, at_end: bool, follow: bool) -> None:
        """Forget the layout of the first `trimmed` entries, then lay out the new ones."""
        starts = self._starts
        kept = max(len(starts) - trimmed, 0)
        removed_lines = starts[trimmed] if kept else self._total
        # the new first entry has a date line, as the first always does
        added = 1 if kept and not self._dated[trimmed] else 0
        shifted = (start - removed_lines + added for start in starts[trimmed + 1 :])
        self._starts = array("q", [0] * (kept > 0)) + array("q", shifted)
        self._dated = self._dated[trimmed:]
        if kept:
            self._dated[0] = 1
        self._total += added - removed_lines
        self._cache.clear()  # both are keyed by entry index, and every index moved
        self._wraps.clear()
        self._layout_from(kept)
        self.virtual_size = Size(self._width, self._total)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.scroll_to(y=max(self.scroll_y - removed_lines, 0), animate=False, force=True)
            if follow:
                self.unseen += len(self._entries) - kept
        self.refresh()

    def entries_prepended(self, count: int) -> None:
        """Lay out again after `count` entries were put in front (and maybe some of the newest
        taken away); the view does not move."""
        at_end = self.is_vertical_scroll_end and not self.more_below
        y = self.scroll_y
        self._relayout()
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif 0 < count < len(self._starts):  # (down by the lines the new entries take)
            self.scroll_to(y=y + self._starts[count], animate=False, immediate=True, force=True)

    def entries_changed(self, index: int) -> None:
        """Lay out again the entries from `index` on (one moved, or was said anew); the view
        stays where it was, unless it followed the end."""
        at_end = self._at_end or self.is_vertical_scroll_end or self.max_scroll_y == 0
        starts = self._starts
        index = max(min(index, len(starts)), 0)
        if index < len(starts):
            self._total = starts[index]
            del starts[index:]
            del self._dated[index:]
        self._cache.clear()
        for changed in [key for key in self._wraps if key >= index]:
            del self._wraps[changed]
        self._layout_from(index)
        self.virtual_size = Size(self._width, self._total)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self.refresh()

    def last_shown(self) -> int:
        """The index of the last entry on screen, in part at least (-1: none)."""
        if not self._entries:
            return -1
        if self._at_end or self.is_vertical_scroll_end or self.max_scroll_y == 0:
            return len(self._entries) - 1
        bottom = self.scroll_offset.y + max(self.scrollable_content_region.height, 1) - 1
        return min(bisect_right(self._starts, bottom) - 1, len(self._entries) - 1)

    def scroll_to_entry(self, index: int) -> None:
        """Scroll so that entry `index` is the top line, if the entries from it on are more
        than a screen; else stay at the end."""
        if 0 <= index < len(self._starts):
            height = self.scrollable_content_region.height
            if self._total - self._starts[index] > height:
                self._placing = True  # (the app put it there: not the user reaching the top)
                try:
                    y = self._starts[index]
                    self.scroll_to(y=y, animate=False, immediate=True, force=True)
                finally:
                    self._placing = False

    def clear(self) -> None:
        """Forget every entry of the shown list."""
        self._entries.clear()
        self._relayout()

    # --- layout ------------------------------------------------------------

    def _text_width(self) -> int:
        return max(self.scrollable_content_region.width, 1)

    def _relayout(self) -> None:
        self._starts = array("q")
        self._dated = bytearray()
        self._total = 0
        self._cache.clear()
        self._wraps.clear()
        self._width = self._text_width()
        self._layout_from(0)
        self.virtual_size = Size(self._width, self._total)
        self.refresh()

    def _layout_from(self, index: int) -> None:
        starts, dated = self._starts, self._dated
        width = self._width or self._text_width()
        total = self._total
        entries = self._entries
        shown = (e for e in reversed(entries[max(index - 64, 0) : index]) if not e.hidden)
        before = next(shown, None)  # (the day of the last entry shown before it)
        day = self._day(before.ts) if before is not None else None
        for position, entry in enumerate(entries[index:], index):
            starts.append(total)
            if entry.hidden:  # (no line, no date line: as if it were not there)
                dated.append(0)
                continue
            if entry.kind is not Kind.NEW:
                today = self._day(entry.ts)
                new_day = today != day
                day = today
            else:  # the "new messages" line: dated only as the first line of the log
                new_day = position == 0
                if new_day:
                    day = self._day(entry.ts)
            dated.append(new_day)
            total += new_day
            prefix = self._prefix_cells(entry)
            if entry.kind is Kind.NEW or (
                not entry.extras
                and width - prefix >= MIN_HANGING_WIDTH
                and fits(entry.text, width - prefix)
            ):
                total += 1
            else:
                total += self._rows(position, entry, width).count
        self._total = total

    def on_resize(self) -> None:
        at_end = self._at_end  # as it was before: a banner taking a row does not stop following
        if self._text_width() != self._width:
            self._relayout()
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._at_end = self.is_vertical_scroll_end or self.max_scroll_y == 0
        if self.unseen and self.is_vertical_scroll_end:
            self.unseen = 0
        if new <= 0 < old:
            self.post_message(self.ReachedTop(self, wanted=not self._placing))
        elif self.more_below and old < new and self.is_vertical_scroll_end:
            self.post_message(self.ReachedBottom(self))

    # --- drawing -----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        line = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        if line >= self._total or not self._entries:
            return Strip.blank(width, self._base_style())
        index = bisect_right(self._starts, line) - 1
        key = (index, line - self._starts[index])
        strip = self._cache.get(key)
        if strip is None:
            strip = self._render_entry_line(index, key[1], width)
            self._cache[key] = strip
        return strip

    def _rule(self, label: str, width: int, style: Style) -> Strip:
        """A rule across the log with `label` in its middle: ──── label ────."""
        base = self._base_style()
        label = f" {self.bidi.display(label)} "
        left = max((width - cell_len(label)) // 2, 2)
        rule = "─" * left + label + "─" * max(width - left - cell_len(label), 0)
        return _strip([Segment(rule, base + style)], width, base)

    def _render_entry_line(self, index: int, row: int, width: int) -> Strip:
        entry = self._entries[index]
        styles = self.styles_now
        if self._dated[index]:
            if row == 0:
                return self._rule(self.date_format(self._day(entry.ts)), width, styles.date)
            row -= 1
        base = self._base_style()
        if entry.kind is Kind.NEW:  # ──── new messages ────
            return self._rule(entry.text, width, styles.new)
        if entry is self._selected:
            base += styles.selected
        elif entry.mention:
            base += styles.mention
        layout = self._rows(index, entry, self._width)
        if row < layout.quote:
            return self._quote_row(entry, width, base)
        row -= layout.quote
        if row >= len(layout.lines):
            row -= len(layout.lines)
            if layout.mark_row and row == 0:
                edited = Segment(self.bidi.display(_(EDITED)), base + styles.mark)
                return self._extra_row(entry, [edited], width, base)
            first, last = layout.reactions[row - layout.mark_row]
            return self._reaction_row(entry, first, last, width, base)
        lines = layout.lines
        text = lines[row]
        bidi = self.bidi
        rtl = bool(layout.rtl[row]) if text and bidi.active else False
        drawn = bidi.display(text, rtl) if text else text
        body = Segment(drawn, base + self._text_style(entry, styles))
        if entry.edited and not entry.deleted and row == len(lines) - 1 and not layout.mark_row:
            mark = Segment(self.bidi.display(_(EDITED)), base + styles.mark)
            gap = Segment(" ", base)
            drawn += " " + mark.text
            bodies = [mark, gap, body] if rtl else [body, gap, mark]
        else:
            bodies = [body]
        if row == 0:
            pieces = self._label(entry, base)
            if self._timestamps:
                pieces.insert(0, Segment(self.time_format(entry.ts), base + styles.time))
        else:
            pieces = [Segment(" " * (self._indent(entry, self._width) - 1), base)]
        column = self._width - self._indent(entry, self._width)  # the text column's width
        if not self.rtl_layout:  # time, name, then the text (right-aligned if it reads RTL)
            segments = [Segment(f"{piece.text} ", piece.style) for piece in pieces]
            if rtl and drawn:
                segments.append(Segment(" " * max(column - _cells(drawn), 0), base))
            segments.extend(bodies)
            return _strip(segments, width, base)
        # a right-to-left layout: the row mirrored, its time at the right edge
        head = [_mirrored(piece) for piece in reversed(pieces)]
        head_cells = sum(_cells(piece.text) for piece in head)
        gap = Segment(" " * max(width - _cells(drawn) - head_cells, 0), base)
        segments = [*bodies, gap, *head] if not rtl else [gap, *bodies, *head]
        return _strip(segments, width, base)

    def _extra_row(
        self, entry: LogEntry, pieces: list[Segment], width: int, base: Style, *, indent: int = -1
    ) -> Strip:
        """A row of an entry besides its text (pieces already in visual order): in its text
        column (or `indent` cells in), at the column's start in the layout's direction."""
        if indent < 0:
            indent = self._indent(entry, self._width)
        margin = Segment(" " * indent, base)
        if not self.rtl_layout:
            return _strip([margin, *pieces], width, base)
        drawn = sum(_cells(piece.text) for piece in pieces)
        gap = Segment(" " * max(width - indent - drawn, 0), base)
        return _strip([gap, *pieces, margin], width, base)

    def _quote_row(self, entry: LogEntry, width: int, base: Style) -> Strip:
        """The row above a reply: `╭ bob: the first line of what it answers`, from the name
        column (dim), cut to fit."""
        styles = self.styles_now
        hanging = self._width - self._prefix_cells(entry) >= MIN_HANGING_WIDTH
        indent = self._time_cells if hanging else NARROW_INDENT
        room = max(self._width - indent - 3, 1)
        quote = entry.quote
        style = base + styles.quote
        if quote is None:
            pieces = [(_(EARLIER), style + styles.mark)]
        else:
            name_style = self._name_style(quote.sender, True)
            said = (_(DELETED), style + styles.mark) if quote.deleted else (quote.text, style)
            pieces = [(quote.sender, base + name_style), (": ", style), said]
        drawn = self._isolated_row(pieces, room)
        if not self.rtl_layout:
            drawn.insert(0, Segment(QUOTE_MARKS[0], style))
        else:
            drawn.append(Segment(QUOTE_MARKS[1], style))
        return self._extra_row(entry, drawn, width, base, indent=indent)

    def _reaction_row(
        self, entry: LogEntry, first: int, last: int, width: int, base: Style
    ) -> Strip:
        """A row of reactions under a message (its `first` to `last`): `👍 2  🎉 1`, those
        the user gave too in the accent colour."""
        styles = self.styles_now
        pieces: list[tuple[str, Style]] = []
        for reaction, mine in mine_first(entry.reactions[first:last], self.me):
            if pieces:
                pieces.append((REACTION_GAP, base))
            style = base + (styles.reaction_mine if mine else styles.reaction)
            pieces.append((_reaction_text(reaction.text, reaction.count), style))
        column = max(self._width - self._indent(entry, self._width), 1)
        return self._extra_row(entry, self._isolated_row(pieces, column), width, base)

    def _isolated_row(self, pieces: list[tuple[str, Style]], room: int) -> list[Segment]:
        """Pieces of a row in logical order, each isolated from the others, cut to `room`
        cells and reordered in the layout's direction: its segments, from the left."""
        text, styles = _fitted(pieces, room)
        drawn = self.bidi.line(text, self.rtl_layout)
        segments: list[Segment] = []
        for char, index in zip(drawn.text, drawn.order, strict=True):
            style = styles[index]
            if segments and segments[-1].style == style:
                segments[-1] = Segment(segments[-1].text + char, style)
            else:
                segments.append(Segment(char, style))
        return segments

    def _name_style(self, name: str, history: bool) -> Style:
        """The colour of `name` (fainter in history)."""
        key = (name, history)
        color = self._name_styles.get(key)
        if color is None:
            if len(self._name_styles) > 4096:
                self._name_styles.clear()
            color = self._name_styles[key] = self.styles_now.name(name, history=history)
        return color

    def _label(self, entry: LogEntry, base: Style) -> list[Segment]:
        """The pieces before an entry's text (each is followed by a space)."""
        styles = self.styles_now
        color = self._name_style(entry.sender, entry.history)
        sender = self.bidi.display(entry.sender)  # drawn on its own: isolated from the text
        kind = entry.kind
        if kind is Kind.PRIVATE_OUT:
            return [Segment(f"→ {sender}", base + styles.private)]
        if kind is Kind.PRIVATE_IN:
            return [Segment(f"← {sender}", base + styles.private)]
        if kind is Kind.SYSTEM:
            return [Segment("--", base + styles.system)]
        if kind is Kind.ERROR:
            return [Segment("!!", base + styles.error)]
        if kind is Kind.ACTION:
            return [Segment("*", base + styles.system), Segment(sender, base + color)]
        return [Segment(sender, base + color)]

    @staticmethod
    def _text_style(entry: LogEntry, styles: LogStyles) -> Style:
        if entry.deleted:
            return styles.mark
        if entry.history:
            return styles.history
        kind = entry.kind
        if kind is Kind.SYSTEM:
            return styles.system
        if kind is Kind.ERROR:
            return styles.error
        if kind is Kind.ACTION:
            return Style(italic=True)
        if kind is Kind.OWN:
            return styles.own_text
        return Style()

    # --- wrapping ----------------------------------------------------------

    def _prefix_cells(self, entry: LogEntry) -> int:
        kind = entry.kind
        if kind in (Kind.SYSTEM, Kind.ERROR):
            label = 3
        elif kind in (Kind.PRIVATE_IN, Kind.PRIVATE_OUT, Kind.ACTION):
            label = 3 + _cells(entry.sender)
        else:
            label = 1 + _cells(entry.sender)
        return self._time_cells + label  # "HH:MM " + label

    def _indent(self, entry: LogEntry, width: int) -> int:
        prefix = self._prefix_cells(entry)
        return prefix if width - prefix >= MIN_HANGING_WIDTH else NARROW_INDENT

    def _rows(self, index: int, entry: LogEntry, width: int) -> _Rows:
        """How entry `index` is laid out at the layout width: its text's lines with the
        direction of the paragraph each belongs to, and the rows around them (laid out once,
        then cached)."""
        rows = self._wraps.get(index)
        if rows is not None:
            return rows
        prefix = self._prefix_cells(entry)
        text = _(DELETED) if entry.deleted else entry.text
        paragraphs: list[int] = []
        if width - prefix >= MIN_HANGING_WIDTH:
            column = width - prefix
            lines = wrap(text, column, paragraphs)
        else:  # a narrow log: the label stands alone, the text follows below it
            column = max(width - NARROW_INDENT, 1)
            lines = ["", *wrap(text, column, paragraphs)]
            paragraphs.insert(0, 0)
        bidi = self.bidi
        if bidi.active and (bidi.upper_is_rtl or not text.isascii()):  # (rule P1:)
            rtl = [bidi.is_rtl(p) for p in text.split("\n")]  # each paragraph's own
            directions = bytes(rtl[p] for p in paragraphs)
        else:
            directions = bytes(len(lines))
        rows = _Rows(lines, directions, quote=1 if entry.reply else 0)
        if entry.edited and not entry.deleted:
            rows.mark_row = cells(lines[-1]) + 1 + cells(_(EDITED)) > column
        if entry.reactions and not entry.deleted:
            rows.reactions = _reaction_rows(entry, column)
        wraps = self._wraps
        if len(wraps) >= WRAPS:
            del wraps[next(iter(wraps))]
        wraps[index] = rows
        return rows

    # --- the selection -------------------------------------------------------

    @property
    def selected(self) -> LogEntry | None:
        """The message selected (None: none)."""
        return self._selected

    def select(self, entry: LogEntry | None) -> None:
        """Select `entry` (None: nothing), scrolled into view, and say so (`Selected`)."""
        if entry is self._selected:
            if entry is not None:
                self._show_selected()
            return
        self._selected = entry
        self.confirming = False
        self._cache.clear()
        self.refresh()
        if entry is not None:
            self._show_selected()
        self.post_message(self.Selected(entry))

    def _index_of_selected(self) -> int:
        entry = self._selected
        if entry is None:
            return -1
        entries = self._entries
        for index in range(len(entries) - 1, -1, -1):
            if entries[index] is entry:
                return index
        return -1

    def _show_selected(self) -> None:
        """Scroll so that the selected message is on screen, all of it if it fits."""
        index = self._index_of_selected()
        if index < 0 or index >= len(self._starts):
            return
        top = self._starts[index]
        bottom = self._starts[index + 1] if index + 1 < len(self._starts) else self._total
        height = max(self.scrollable_content_region.height, 1)
        y = self.scroll_offset.y
        if bottom - top >= height or top < y:
            y = top
        elif bottom > y + height:
            y = bottom - height
        else:
            return
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def select_last(self) -> bool:
        """Select the newest message on screen (or the newest of all); whether there is one."""
        entries = self._entries
        last = self.last_shown()
        for index in range(min(last, len(entries) - 1), -1, -1):
            if selectable(entries[index]):
                self.select(entries[index])
                return True
        return False

    def action_move(self, step: int) -> None:
        """Select the message `step` messages after the selected one (before: < 0); past the
        first, older history is asked for."""
        index = self._index_of_selected()
        if index < 0:
            self.select_last()
            return
        entries = self._entries
        count = abs(step)
        at = index
        found = index
        while count and 0 <= at + (1 if step > 0 else -1) < len(entries):
            at += 1 if step > 0 else -1
            if selectable(entries[at]):
                found, count = at, count - 1
        if found != index:
            self.select(entries[found])
        if step < 0 and found == self._first_selectable():  # (older ones may be wanted)
            self.post_message(self.ReachedTop(self))
        elif step > 0 and self.more_below and found == self._last_selectable():
            self.post_message(self.ReachedBottom(self))

    def _first_selectable(self) -> int:
        for index, entry in enumerate(self._entries):
            if selectable(entry):
                return index
        return -1

    def _last_selectable(self) -> int:
        for index in range(len(self._entries) - 1, -1, -1):
            if selectable(self._entries[index]):
                return index
        return -1

    def action_move_page(self, direction: int) -> None:
        """Select the message a page before (-1) or after (1) the selected one."""
        index = self._index_of_selected()
        if index < 0 or index >= len(self._starts):
            self.select_last()
            return
        height = max(self.scrollable_content_region.height - 1, 1)
        line = self._starts[index] + direction * height
        target = max(min(bisect_right(self._starts, line) - 1, len(self._entries) - 1), 0)
        entries = self._entries
        step = 1 if direction > 0 else -1
        at = target
        while 0 <= at < len(entries) and not selectable(entries[at]):
            at -= step  # (back towards the selection)
        if 0 <= at < len(entries) and at != index:
            self.select(entries[at])
        elif direction < 0:
            self.post_message(self.ReachedTop(self))
        elif self.more_below:
            self.post_message(self.ReachedBottom(self))

    def action_move_to(self, where: int) -> None:
        """Select the first message of the log (0) or the newest (-1)."""
        entries = self._entries
        order = range(len(entries)) if where == 0 else range(len(entries) - 1, -1, -1)
        for index in order:
            if selectable(entries[index]):
                self.select(entries[index])
                break
        if where == 0:
            self.post_message(self.ReachedTop(self))
        elif self.more_below:
            self.post_message(self.ReachedBottom(self))

    def action_choose(self, verb: str) -> None:
        """Ask for `verb` on the selected message (see `Chosen`)."""
        entry = self._selected
        if entry is not None:
            self.post_message(self.Chosen(verb, entry))

    def on_key(self, event: events.Key) -> None:
        """While a message is selected, a character that is not a key of the selection goes
        on to the composer (`Typed`), and so does every key after it; while a delete is asked
        about, `y` confirms it and any other key keeps the message (a character going on to
        the composer)."""
        selected = self._selected
        if self._passing:
            self._pass_on(event)
        elif selected is None:
            return
        elif self.confirming:
            self.confirming = False
            event.stop()
            event.prevent_default()
            self.post_message(self.Chosen("confirm" if event.key in YES_KEYS else "keep", selected))
            if event.key not in YES_KEYS and _typed(event):
                self._pass_on(event)
        elif _typed(event) and event.key not in self._bindings.key_to_bindings:
            self._pass_on(event)

    def _pass_on(self, event: events.Key) -> None:
        """Hand `event` on to the composer (`Typed`), and every key after it."""
        event.stop()
        event.prevent_default()
        self._passing = True
        self.post_message(self.Typed(event.key, event.character))

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """The wheel turned up at the first line (where the log may have been put): older
        history is wanted."""
        if self.scroll_y <= 0:
            self.post_message(self.ReachedTop(self))

    def on_blur(self) -> None:
        self._passing = False

    def on_click(self, event: events.Click) -> None:
        """While a message is selected, a click selects the one clicked."""
        if self._selected is None:
            return
        line = self.scroll_offset.y + event.y
        index = bisect_right(self._starts, line) - 1
        if 0 <= index < len(self._entries) and selectable(self._entries[index]):
            self.select(self._entries[index])

    def _day(self, ts: int) -> date | None:
        """The day of `ts` in the log's time zone (None: a time no calendar can show)."""
        quarter = ts // 900_000  # (every time zone's offset is a whole number of quarters)
        day = self._day_cache.get(quarter)
        if day is None:
            try:
                day = datetime.fromtimestamp(quarter * 900, self._tz).date()
            except (OverflowError, OSError, ValueError):
                return None
            if len(self._day_cache) > 4096:
                self._day_cache.clear()
            self._day_cache[quarter] = day
        return day

    def _format_date(self, day: date | None) -> str:
        """A date line's text: `Tuesday 1 December 2026`, in the UI's language and calendar."""
        return day_label(day, calendar=self.calendar)

    def _format_time(self, ts: int) -> str:
        step = self._time_step
        minute = ts // (step * 1000)
        text = self._time_cache.get(minute)
        if text is None:
            try:
                when = datetime.fromtimestamp(minute * step, self._tz)
                text = local_digits(when.strftime(self._timestamps))
            except (OverflowError, OSError, ValueError):
                text = "--:--"  # a time no calendar can show
            if len(self._time_cache) > 4096:
                self._time_cache.clear()
            self._time_cache[minute] = text
        return text


def _reaction_text(text: str, count: int) -> str:
    """A reaction as a row shows it: `👍 2` (drawn as every terminal measures it: `drawn`)."""
    return f"{drawn(text)} {local_digits(str(count))}"


def _reaction_rows(entry: LogEntry, column: int) -> tuple[tuple[int, int], ...]:
    """The rows the reactions of `entry` take in a column of `column` cells: the range of
    reactions each shows (at least one a row)."""
    rows: list[tuple[int, int]] = []
    start, used = 0, 0
    for index, reaction in enumerate(entry.reactions):
        width = cells(_reaction_text(reaction.text, reaction.count))
        if index > start and used + len(REACTION_GAP) + width > column:
            rows.append((start, index))
            start, used = index, width
        else:
            used += width if index == start else len(REACTION_GAP) + width
    rows.append((start, len(entry.reactions)))
    return tuple(rows)


def _fitted(pieces: list[tuple[str, Style]], room: int) -> tuple[str, list[Style]]:
    """The pieces of a row as one logical text, each piece that holds a letter or a digit
    in an isolate of its own (FSI … PDI), cut to `room` cells (the last piece ending in `…`);
    and the style of each of its characters."""
    chars: list[str] = []
    styles: list[Style] = []
    used = 0
    for text, style in pieces:
        text = text.replace("\n", " ")
        width = cells(text)
        cut = used + width > room
        if cut:
            left = room - used
            text = chop_cells(text, max(left - 1, 0))[0] + "…" if left > 0 else ""
        if any(char.isalnum() for char in text):
            text = f"{FSI}{text}{PDI}"
        chars.append(text)
        styles.extend([style] * len(text))
        used += cells(text)
        if cut:
            break
    return "".join(chars), styles


_ARROWS = str.maketrans("→←", "←→")


def _mirrored(piece: Segment) -> Segment:
    """A piece of the gutter as a right-to-left layout draws it: its space before it, its
    arrow turned and after the name."""
    text, style, _ = piece
    if text[:1] in "→←" and text[1:2] == " ":
        text = f"{text[2:]} {text[0]}".translate(_ARROWS)
    return Segment(f" {text}", style)


def _strip(segments: list[Segment], width: int, base: Style) -> Strip:
    """A line of `segments` exactly `width` cells wide (padded in `base`, or cut)."""
    used = sum(_cells(segment.text) for segment in segments)
    if used > width:
        return Strip(segments).adjust_cell_length(width, base)
    if used < width:
        segments.append(Segment(" " * (width - used), base))
    return Strip(segments, width)


def _typed(event: events.Key) -> bool:
    """Whether `event` types a character (a letter, a digit, a space...), not a key with
    alt or ctrl."""
    return event.is_printable and not event.key.startswith(("alt+", "ctrl+"))


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)
