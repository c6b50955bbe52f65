"""The chat log: a Line-API scroll view that draws only the lines on screen.

Entries are laid out (wrapped) once per width, with a date line above the first entry and
above each that begins another day (in the log's time zone); a line is turned into a `Strip`
only when it becomes visible, and kept in a small cache, as are the wrapped lines
of the entries on screen. So 100,000 entries cost their text and an offset each,
and re-wrap when the terminal is resized; one huge entry is wrapped once, in time
linear in its length. Text is drawn as plain `Segment`s: nothing in it is markup.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable
from datetime import date, datetime, tzinfo

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.app.bidi import Bidi
from tuichat.app.colors import LogStyles, log_styles
from tuichat.app.dates import day_label, local_digits
from tuichat.app.model import Kind, LogEntry
from tuichat.app.wrap import fits, wrap

MIN_HANGING_WIDTH = 24
WRAPS = 256
"""Entries whose wrapped lines are kept (those on screen, and the newest)."""
NARROW_INDENT = 2


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

    unseen: reactive[int] = reactive(0)
    """Entries added while the user was scrolled up."""

    class ReachedTop(Message):
        """The user scrolled to the first line: older history may be wanted."""

        def __init__(self, log: ChatLog) -> None:
            super().__init__()
            self.log = log

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
        self._wraps: dict[int, list[str]] = {}  # entry index → its lines, the last WRAPS
        self._directions: dict[int, bytes] = {}  # entry index → 1 for each line that is RTL
        self._time_cache: dict[int, str] = {}
        self._day_cache: dict[int, date] = {}
        self._time_cells = _cells(self._format_time(0)) + 1 if timestamps else 0
        """Cells the time takes, with its space."""
        self.time_format: Callable[[int], str] = self._format_time
        self.calendar = "gregorian"
        """The calendar of the date lines ("gregorian" or "jalali")."""
        self.date_format: Callable[[date | None], str] = self._format_date
        self._styles: LogStyles | None = None
        self._name_styles: dict[tuple[str, bool], Style] = {}
        self.bidi = Bidi()
        """How right-to-left text is drawn (the app sets its `--bidi` mode)."""
        self.rtl_layout = False
        """Rows mirrored, the time at the right edge (a right-to-left UI)."""

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def redraw(self) -> None:
        """Draw every line again (how text is drawn changed)."""
        self._cache.clear()
        self._wraps.clear()
        self._directions.clear()
        self._time_cache.clear()
        self.refresh()

    def _theme_changed(self, _theme: object) -> None:
        self._styles = None  # every line is drawn again in the theme's colours
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
        """Show another list of entries (another room), scrolled to its end."""
        self._entries = entries
        self._relayout()
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def entries_added(self, trimmed: int = 0) -> None:
        """Lay out entries appended to the shown list since the last call, after `trimmed`
        entries were removed from its front; the view stays on what it showed."""
        at_end = self._at_end or self.is_vertical_scroll_end or self.max_scroll_y == 0
        if trimmed:
            self._entries_trimmed(trimmed, at_end)
            return
        before = len(self._starts)
        self._layout_from(before)
        added = len(self._starts) - before
        if not added:
            return
        self.virtual_size = Size(self._width, self._total)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.unseen += added
        self.refresh()

    def _entries_trimmed(self, trimmed: int, at_end: bool) -> None:
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
        self._directions.clear()
        self._layout_from(kept)
        self.virtual_size = Size(self._width, self._total)
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.scroll_to(y=max(self.scroll_y - removed_lines, 0), animate=False, force=True)
            self.unseen += len(self._entries) - kept
        self.refresh()

    def entries_prepended(self, count: int) -> None:
        """Lay out again after `count` entries were put in front; the view does not move."""
        at_end = self.is_vertical_scroll_end
        before = self._total
        self._relayout()
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        else:
            self.scroll_to(y=self.scroll_y + self._total - before, animate=False, force=True)

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
            self._directions.pop(changed, None)
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
                self.scroll_to(y=self._starts[index], animate=False, immediate=True, force=True)

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
        self._directions.clear()
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
                width - prefix >= MIN_HANGING_WIDTH and fits(entry.text, width - prefix)
            ):
                total += 1
            else:
                total += len(self._wrapped(position, entry, width))
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
            self.post_message(self.ReachedTop(self))

    # --- drawing -----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        line = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        if line >= self._total or not self._entries:
            return Strip.blank(width, self.rich_style)
        index = bisect_right(self._starts, line) - 1
        key = (index, line - self._starts[index])
        strip = self._cache.get(key)
        if strip is None:
            strip = self._render_entry_line(index, key[1], width)
            self._cache[key] = strip
        return strip

    def _rule(self, label: str, width: int, style: Style) -> Strip:
        """A rule across the log with `label` in its middle: ──── label ────."""
        base = self.rich_style
        label = f" {self.bidi.display(label)} "
        left = max((width - cell_len(label)) // 2, 2)
        rule = "─" * left + label + "─" * max(width - left - cell_len(label), 0)
        return Strip([Segment(rule, base + style)]).adjust_cell_length(width, base)

    def _render_entry_line(self, index: int, row: int, width: int) -> Strip:
        entry = self._entries[index]
        styles = self.styles_now
        if self._dated[index]:
            if row == 0:
                return self._rule(self.date_format(self._day(entry.ts)), width, styles.date)
            row -= 1
        base = self.rich_style
        if entry.kind is Kind.NEW:  # ──── new messages ────
            return self._rule(entry.text, width, styles.new)
        if entry.mention:
            base += styles.mention
        lines = self._wrapped(index, entry, self._width)
        text = lines[row] if row < len(lines) else ""
        bidi = self.bidi
        rtl = bool(self._directions[index][row]) if text and bidi.active else False
        drawn = bidi.display(text, rtl) if text else text
        body = Segment(drawn, base + self._text_style(entry, styles))
        if row == 0:
            pieces = self._label(entry, base)
            if self._timestamps:
                pieces.insert(0, Segment(self.time_format(entry.ts), base + styles.time))
        else:
            pieces = [Segment(" " * (self._indent(entry, self._width) - 1), base)]
        column = self._width - self._indent(entry, self._width)  # the text column's width
        if not self.rtl_layout:  # time, name, then the text (right-aligned if it reads RTL)
            segments = [Segment(f"{text} ", style) for text, style, _ in pieces]
            if rtl and drawn:
                segments.append(Segment(" " * max(column - _cells(drawn), 0), base))
            segments.append(body)
            return Strip(segments).adjust_cell_length(width, base)
        # a right-to-left layout: the row mirrored, its time at the right edge
        head = [_mirrored(piece) for piece in reversed(pieces)]
        head_cells = sum(_cells(piece.text) for piece in head)
        gap = Segment(" " * max(width - _cells(drawn) - head_cells, 0), base)
        segments = [body, gap, *head] if not rtl else [gap, body, *head]
        return Strip(segments).adjust_cell_length(width, base)

    def _label(self, entry: LogEntry, base: Style) -> list[Segment]:
        """The pieces before an entry's text (each is followed by a space)."""
        styles = self.styles_now
        key = (entry.sender, entry.history)
        color = self._name_styles.get(key)
        if color is None:
            if len(self._name_styles) > 4096:
                self._name_styles.clear()
            color = self._name_styles[key] = styles.name(entry.sender, history=entry.history)
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

    def _wrapped(self, index: int, entry: LogEntry, width: int) -> list[str]:
        """The lines of entry `index` at the layout width (wrapped once, then cached, with the
        direction of the paragraph each line belongs to in `_directions`)."""
        lines = self._wraps.get(index)
        if lines is None:
            prefix = self._prefix_cells(entry)
            paragraphs: list[int] = []
            if width - prefix >= MIN_HANGING_WIDTH:
                lines = wrap(entry.text, width - prefix, paragraphs)
            else:  # a narrow log: the label stands alone, the text follows below it
                lines = ["", *wrap(entry.text, max(width - NARROW_INDENT, 1), paragraphs)]
                paragraphs.insert(0, 0)
            wraps = self._wraps
            if len(wraps) >= WRAPS:
                first = next(iter(wraps))
                del wraps[first]
                self._directions.pop(first, None)
            wraps[index] = lines
            bidi = self.bidi
            if bidi.active and (bidi.upper_is_rtl or not entry.text.isascii()):  # (rule P1:)
                rtl = [bidi.is_rtl(p) for p in entry.text.split("\n")]  # each paragraph's own
                self._directions[index] = bytes(rtl[p] for p in paragraphs)
            else:
                self._directions[index] = bytes(len(lines))
        return lines

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


_ARROWS = str.maketrans("→←", "←→")


def _mirrored(piece: Segment) -> Segment:
    """A piece of the gutter as a right-to-left layout draws it: its space before it, its
    arrow turned and after the name."""
    text, style, _ = piece
    if text[:1] in "→←" and text[1:2] == " ":
        text = f"{text[2:]} {text[0]}".translate(_ARROWS)
    return Segment(f" {text}", style)


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)
