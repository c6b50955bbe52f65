"""The search panel (ctrl+f, `/search`): a query, and the messages found, newest first.

The panel is a view: it asks for results with `SearchScreen.Wanted` (the app searches, and
hands them back with `shown` or `failed`), and dismisses with the hit chosen (None: closed).
Each hit is two rows: where and when it was said and by whom, then its text with the words
found highlighted, cut around the first of them. What comes from the server is drawn as
plain `Content` (never markup), each row in visual order: a right-to-left text reordered and
right-aligned, and in a right-to-left UI the first row mirrored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo

from rich.cells import cell_len, chop_cells
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.events import Key
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from tuichat.app.bidi import Bidi
from tuichat.app.colors import name_color
from tuichat.app.dates import local_digits
from tuichat.app.i18n import N_, _, is_rtl, ngettext, translate_bindings
from tuichat.app.moderation import when
from tuichat.app.widgets.bidi_input import BidiInput
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.chat.search import spans
from tuichat.protocol import SearchHit, SearchResults

MORE = "more"
"""The id of the option that asks for older hits."""
CONTEXT = 12
"""Characters kept before the first word found, when the text is cut to show it."""
FOUND_STYLE = "bold reverse"
"""How the words found stand out in a hit's text."""


def said(text: str) -> str:
    """The app's own words as the panel shows them: in a right-to-left language, a paragraph
    that reads right to left (RLM), whatever word it starts with."""
    return f"\u200f{text}" if text and is_rtl() else text


def excerpt(text: str, words: tuple[str, ...], width: int) -> tuple[str, list[tuple[int, int]]]:
    """`text` on one line, cut to `width` cells around the first word found (`…` where it
    is cut), and where the words found are in it."""
    flat = " ".join(text.split())
    found = spans(flat, words)
    start = max(found[0][0] - CONTEXT, 0) if found else 0
    if start and cell_len(flat) <= width:
        start = 0
    head = "…" if start else ""
    shown = head + flat[start:]
    shift = len(head) - start
    if cell_len(shown) > width:
        shown = chop_cells(shown, max(width - 1, 1))[0] + "…"
    kept = [(max(a + shift, 0), min(b + shift, len(shown))) for a, b in found]
    return shown, [(a, b) for a, b in kept if a < b]


def hit_prompt(
    hit: SearchHit,
    words: tuple[str, ...],
    width: int,
    *,
    bidi: Bidi,
    rtl_layout: bool,
    now: int,
    tz: tzinfo | None,
    calendar: str,
    dark: bool = True,
) -> Content:
    """A hit as the panel shows it: `#room · 12:10 · bob`, then its text."""
    pieces = [
        (bidi.name(hit.room, rtl_layout=rtl_layout), "bold"),
        (when(hit.ts, now, tz, calendar), "dim"),
        (bidi.display(hit.sender), f"bold {name_color(hit.sender, dark)}"),
    ]
    if rtl_layout:
        pieces.reverse()
    parts: list[str | tuple[str, str]] = []
    for text, style in pieces:
        if parts:
            parts.append((" · ", "dim"))
        parts.append((text, style))
    meta = Content.assemble(*parts)
    if rtl_layout:
        meta = Content(" " * max(width - meta.cell_length, 0)) + meta
    logical = f"* {hit.text}" if hit.action else hit.text
    text, found = excerpt(logical, words, width)
    rtl = bidi.is_rtl(text)
    line = bidi.line(text, rtl)
    marked = [any(a <= index < b for a, b in found) for index in line.order]
    body = Content.assemble(*_runs(line.text, marked))
    if rtl:
        body = Content(" " * max(width - body.cell_length, 0)) + body
    return Content("\n").join([meta, body])


def _runs(text: str, marked: Sequence[bool]) -> list[str | tuple[str, str]]:
    """`text` in runs of characters marked or not (the marked ones in `FOUND_STYLE`)."""
    runs: list[str | tuple[str, str]] = []
    start = 0
    for index in range(1, len(text) + 1):
        if index == len(text) or marked[index] != marked[start]:
            piece = text[start:index]
            runs.append((piece, FOUND_STYLE) if marked[start] else piece)
            start = index
    return runs


class SearchScreen(ModalScreen["SearchHit | None"]):
    """Asks what to look for and lists what was found; Enter on a hit dismisses with it, the
    last row asks for older hits, Escape closes."""

    DEFAULT_CSS = """
    SearchScreen {
        align: center middle;
    }
    SearchScreen > Vertical {
        width: 96%;
        max-width: 120;
        height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    SearchScreen .title {
        text-style: bold;
    }
    SearchScreen #search-status, SearchScreen .hint {
        color: $text-muted;
    }
    SearchScreen #search-hits {
        height: 1fr;
        border: none;
        padding: 0;
        scrollbar-gutter: stable;
    }
    SearchScreen #search-query {
        border: tall $primary-background;
    }
    """

    BINDINGS = [Binding("escape", "close", N_("Close"))]

    class Wanted(Message):
        """Hits of `query` are wanted: the newest, or (`before`) those after the page
        that ended there."""

        def __init__(self, screen: SearchScreen, query: str, before: str = "") -> None:
            super().__init__()
            self.screen = screen
            self.query = query
            self.before = before

    def __init__(
        self,
        query: str = "",
        *,
        bidi: Bidi | None = None,
        rtl_layout: bool = False,
        clock: Callable[[], int],
        tz: tzinfo | None = None,
        calendar: str = "gregorian",
    ) -> None:
        """`query`: what to look for at once ("": ask); `clock` gives the time (ms since the
        epoch) the hits' times are said from."""
        super().__init__()
        translate_bindings(self)
        self._bidi = bidi or Bidi()
        self._rtl_layout = rtl_layout
        self._clock = clock
        self._tz = tz
        self._calendar = calendar
        self._query = query
        """The query the hits shown are of."""
        self._words: tuple[str, ...] = ()
        self._hits: list[SearchHit] = []
        self._next = ""
        self._loading = False

    def compose(self) -> ComposeResult:
        bidi = self._bidi
        with Vertical():
            yield BidiText(said(_("Search messages")), bidi=bidi, classes="title")
            yield BidiInput(
                value=self._query,
                placeholder=_("words, and from:NAME or in:#ROOM"),
                bidi=bidi,
                id="search-query",
            )
            yield BidiText("", bidi=bidi, id="search-status")
            yield OptionList(id="search-hits")
            hint = _("Enter goes to the message · ↓ to the results · Escape closes")
            yield BidiText(said(hint), bidi=bidi, classes="hint")

    def on_mount(self) -> None:
        self.query_one("#search-query", BidiInput).focus()
        if self._query.strip():
            self.ask(self._query)

    @property
    def hits(self) -> list[SearchHit]:
        """The hits shown, newest first."""
        return self._hits

    def ask(self, query: str, before: str = "") -> None:
        """Ask the app for the hits of `query` (after `before`)."""
        self._loading = True
        if not before:
            self._query = query
        self._status(_("searching…"))
        self.post_message(self.Wanted(self, query, before))

    # --- what the app hands back ------------------------------------------

    def shown(self, query: str, words: tuple[str, ...], results: SearchResults, more: bool) -> None:
        """The hits of `query` (its folded `words`), newest first: a page after those shown
        (`more`), or the first."""
        if query != self._query:
            return  # (an answer to a query typed over since)
        self._loading = False
        self._words = words
        if more:
            self._hits.extend(results.hits)
        else:
            self._hits = list(results.hits)
        self._next = results.next if results.hits else ""  # (an empty page ends it)
        self._show_hits(keep=more)
        count = len(self._hits)
        if not count:
            self._status(_("nothing found"))
            return
        said = ngettext("{count} message found", "{count} messages found", count)
        shown = said.format(count=local_digits(str(count)))
        if self._next:
            shown = _("{found}; more below").format(found=shown)
        self._status(shown)
        hits = self.query_one("#search-hits", OptionList)
        if not more:
            hits.highlighted = 0
            hits.focus()

    def failed(self, query: str, problem: str) -> None:
        """Searching for `query` failed: say why."""
        if query == self._query:
            self._loading = False
            self._status(problem)

    # --- drawing ---------------------------------------------------------

    def _status(self, text: str) -> None:
        self.query_one("#search-status", BidiText).update(said(text))

    def _show_hits(self, *, keep: bool = False) -> None:
        hits = self.query_one("#search-hits", OptionList)
        highlighted = hits.highlighted if keep else None
        width = hits.scrollable_content_region.width  # (its scrollbar's gutter kept apart)
        if width < 10:
            width = max(self.app.size.width - 10, 10)
        now = self._clock()
        dark = self.app.current_theme.dark
        options: list[Option] = []
        for number, hit in enumerate(self._hits):
            prompt = hit_prompt(
                hit, self._words, width, bidi=self._bidi, rtl_layout=self._rtl_layout,
                now=now, tz=self._tz, calendar=self._calendar, dark=dark,
            )  # fmt: skip
            options.append(Option(prompt, id=str(number)))
        if self._next:
            more = self._bidi.display(_("older messages…"))
            if self._rtl_layout:
                more = " " * max(width - cell_len(more), 0) + more
            options.append(Option(Content(more), id=MORE))
        hits.clear_options()
        hits.add_options(options)
        if highlighted is not None and options:
            hits.highlighted = min(highlighted, len(options) - 1)

    def on_resize(self) -> None:
        if self._hits:
            self._show_hits(keep=True)

    # --- keys ----------------------------------------------------------------

    @on(Input.Submitted, "#search-query")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.ask(event.value.strip())

    @on(OptionList.OptionSelected, "#search-hits")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == MORE:
            self._more()
        elif event.option.id is not None:
            self.dismiss(self._hits[int(event.option.id)])

    @on(OptionList.OptionHighlighted, "#search-hits")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id == MORE:
            self._more()  # (older hits come on demand: when the list reaches its end)

    def _more(self) -> None:
        if self._next and not self._loading:
            self.ask(self._query, self._next)

    def on_key(self, event: Key) -> None:
        """Down goes from the query to the hits, Up from the first hit back to the query."""
        hits = self.query_one("#search-hits", OptionList)
        query = self.query_one("#search-query", BidiInput)
        if event.key == "down" and query.has_focus and hits.option_count:
            event.stop()
            hits.focus()
        elif event.key == "up" and hits.has_focus and not hits.highlighted:
            event.stop()
            query.focus()

    def action_close(self) -> None:
        self.dismiss(None)
